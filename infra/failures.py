"""Why a flow run failed, read back from the API: what `make run` and the demo print under a failed run.

`prefect deployment run --watch` ends with `Flow run finished in state 'Failed'.`; the reason is in the state message
and the run's error logs (and those of its subflows), which a user would otherwise have to find in the UI.
"""

from __future__ import annotations

from typing import Any

from infra.server import api_request

FINAL_OK = ("COMPLETED",)
ERROR_LEVEL = 40  # logging.ERROR


def _run_and_subflows(api_url: str, flow_run: dict[str, Any], auth: str | None) -> list[dict[str, Any]]:
    runs, frontier = [flow_run], [flow_run["id"]]
    while frontier:
        body = {"flow_runs": {"parent_flow_run_id": {"any_": frontier}}, "limit": 200}
        children = api_request(api_url, "POST", "flow_runs/filter", body, auth=auth)
        runs += children
        frontier = [child["id"] for child in children]
    return runs


def failure_report(
    api_url: str, flow_run_id: str, max_logs: int = 5, max_lines: int = 20, auth: str | None = None
) -> str:
    """The state and state message of the run and of each subflow that did not complete, then the last `max_logs`
    error log entries of them all (each cut to its last `max_lines` lines: a traceback ends with the error), or the
    last log entries of any level when there is no error entry. Empty for a completed run."""
    flow_run = api_request(api_url, "GET", f"flow_runs/{flow_run_id}", auth=auth)
    if flow_run["state_type"] in FINAL_OK:
        return ""
    runs = _run_and_subflows(api_url, flow_run, auth)
    lines = []
    for run in runs:
        if run["state_type"] not in FINAL_OK:
            message = ((run.get("state") or {}).get("message") or "").strip()
            lines.append(
                f"flow run {run['name']!r} ({run['id']}) is {run['state_name']}" + (f": {message}" if message else "")
            )
    ids = [run["id"] for run in runs]
    errors = {
        "logs": {"flow_run_id": {"any_": ids}, "level": {"ge_": ERROR_LEVEL}},
        "sort": "TIMESTAMP_DESC",
        "limit": max_logs,
    }
    logs = api_request(api_url, "POST", "logs/filter", errors, auth=auth)
    what = "error log entries"
    if not logs:
        every = {"logs": {"flow_run_id": {"any_": ids}}, "sort": "TIMESTAMP_DESC", "limit": max_logs}
        logs = api_request(api_url, "POST", "logs/filter", every, auth=auth)
        what = "log entries"
    if logs:
        lines.append(f"last {what} of the run:")
        for entry in reversed(logs):
            text = entry["message"].rstrip().splitlines()
            shown = (["    ..."] if len(text) > max_lines else []) + [f"    {line}" for line in text[-max_lines:]]
            lines += [f"  [{entry['timestamp'][:19]}] {entry['name']}:", *shown]
    return "\n".join(lines)

"""Fixtures for a real Prefect server on loopback and the served deployments.

- `prefect_server` (session): `prefect server start` on a free 127.0.0.1 port, SQLite in a temporary PREFECT_HOME,
  telemetry off, started and health-checked by the same code as `make up` (infra/server.py).
- `served_deployments` (session): `python -m infra.serve` against that server, waiting until every deployment whose
  flow file exists is registered.
- `run_deployment(server, "webtext/build-corpus", params, timeout)`: runs `prefect deployment run NAME --params JSON
  --watch` as a subprocess (exactly what a user types) and returns the flow run read back from the REST API.
- `read_artifacts(server, flow_run_id)`, `read_logs(server, flow_run_id)`, `api(server, method, path, body)`.

Every process is stopped by PID (its whole process tree) at the end of the session.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.deployments import present_specs
from infra.env import CLIENT_AUTH, REPO, prefect_env
from infra.processes import spawn, stop_tree
from infra.server import api_request, log_tail, start_private_server
from infra.services import StackError, wait_registered

__all__ = [
    "PrefectServer",
    "ServedDeployments",
    "prefect_server",
    "served_deployments",
    "run_deployment",
    "read_flow_run",
    "read_artifacts",
    "read_logs",
    "api",
]

SERVER_START_TIMEOUT = 180.0  # first start runs the migrations; 2 shared cores can make that slow
SERVE_START_TIMEOUT = 240.0  # the serve process imports every flow module (torch, lightning, ...)


@dataclass
class PrefectServer:
    api_url: str  # http://127.0.0.1:PORT/api
    ui_url: str  # http://127.0.0.1:PORT
    port: int
    home: Path  # PREFECT_HOME: database, logs, UI copy
    log_path: Path
    settings: dict[str, str]  # only the Prefect variables (PREFECT_HOME, PREFECT_API_URL, telemetry off)
    env: dict[str, str] = field(repr=False)  # a full environment for subprocesses that talk to this server

    def client_env(self, **extra: str) -> dict[str, str]:
        """A fresh copy of `env` (plus `extra`), for `subprocess.run(..., env=server.client_env())`."""
        return {**self.env, **extra}


@dataclass
class ServedDeployments:
    names: list[str]  # full names registered, e.g. ["webtext/build-corpus", "gpt2/train", "gpt2/evaluate"]
    pid: int
    log_path: Path

    def log(self) -> str:
        return log_tail(self.log_path, 200)


def api(server: PrefectServer, method: str, path: str, body: dict | None = None) -> Any:
    """Call the server's REST API (`path` relative to /api, with its auth string if it has one); decoded JSON."""
    return api_request(server.api_url, method, path, body, auth=server.env.get(CLIENT_AUTH))


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home, host = tmp_path_factory.mktemp("prefect-server"), "127.0.0.1"
    process, env = start_private_server(home, host, timeout=SERVER_START_TIMEOUT)
    port = httpx.URL(env["PREFECT_API_URL"]).port
    server = PrefectServer(
        api_url=env["PREFECT_API_URL"],
        ui_url=f"http://{host}:{port}",
        port=port,
        home=home,
        log_path=home / "server.log",
        settings=prefect_env(home, host, port),
        env=env,
    )
    try:
        yield server
    finally:
        stop_tree(process.pid)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def served_deployments(request: pytest.FixtureRequest) -> Iterator[ServedDeployments]:
    names = [spec.full_name for spec in present_specs({})]  # all three, whatever WEBTEXT_DEPLOYMENTS says
    if not names:
        pytest.skip("no flow module exists under flows/ yet, so there is nothing to serve")
    prefect_server: PrefectServer = request.getfixturevalue("prefect_server")  # only started when needed
    log_path = prefect_server.home / "serve.log"
    # Poll for scheduled runs every second instead of every 10 (pick-up lag is most of a short run's time).
    env = prefect_server.client_env(PREFECT_RUNNER_POLL_FREQUENCY="1")
    env.pop("WEBTEXT_DEPLOYMENTS", None)
    process = spawn([sys.executable, "-m", "infra.serve"], env, log_path, cwd=REPO)
    try:
        try:
            wait_registered(prefect_server.api_url, names, process, log_path, timeout=SERVE_START_TIMEOUT)
        except StackError as exc:
            pytest.fail(str(exc))
        yield ServedDeployments(names=names, pid=process.pid, log_path=log_path)
    finally:
        stop_tree(process.pid)
        process.wait(timeout=10)


def read_flow_run(server: PrefectServer, flow_run_id: str) -> dict:
    """The flow run as the API returns it (id, name, state_type, state_name, parameters, deployment_id, ...)."""
    return api(server, "GET", f"flow_runs/{flow_run_id}")


def read_logs(server: PrefectServer, flow_run_id: str) -> list[str]:
    """The log messages of the flow run and of its subflow runs (the UI shows those under the run), oldest first."""
    ids, frontier = [flow_run_id], [flow_run_id]
    while frontier:
        children = api(
            server, "POST", "flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": frontier}}, "limit": 200}
        )
        frontier = [child["id"] for child in children]
        ids += frontier
    messages: list[str] = []
    while True:  # the API returns at most 200 entries a call
        page = api(
            server,
            "POST",
            "logs/filter",
            {"logs": {"flow_run_id": {"any_": ids}}, "sort": "TIMESTAMP_ASC", "limit": 200, "offset": len(messages)},
        )
        messages += [entry["message"] for entry in page]
        if len(page) < 200:
            return messages


_UUID_LINE = re.compile(r"UUID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def run_deployment(server: PrefectServer, name: str, params: dict, timeout: float = 300.0) -> dict:
    """Run deployment `name` like a user: `prefect deployment run NAME --params JSON --watch`.

    Returns the finished flow run read back from the API (keys include id, state_type, state_name, parameters),
    plus `cli_output` (what the CLI printed). A failed run is returned, not raised: assert on `state_type`. Raises
    TimeoutError (with the CLI output and the run's logs) if the run does not finish within `timeout` seconds.
    """
    cmd = [
        sys.executable,
        "-m",
        "prefect",
        "deployment",
        "run",
        name,
        "--params",
        json.dumps(params),
        "--watch",
        "--watch-timeout",
        str(int(timeout)),
    ]
    env = server.client_env(COLUMNS="250")  # keep rich from wrapping the UUID line
    try:
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout + 60)
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise TimeoutError(
            f"`prefect deployment run {name}` did not return within {timeout + 60:.0f} s:\n{output}"
        ) from None
    match = _UUID_LINE.search(output)
    if match is None:
        raise RuntimeError(f"`prefect deployment run {name}` created no flow run (exit {done.returncode}):\n{output}")
    flow_run = read_flow_run(server, match.group(1))
    if flow_run["state_type"] not in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
        logs = "\n".join(read_logs(server, flow_run["id"]))
        raise TimeoutError(
            f"flow run {flow_run['id']} of {name} is still {flow_run['state_name']} after "
            f"{timeout:.0f} s.\nCLI output:\n{output}\nRun logs:\n{logs}"
        )
    flow_run["cli_output"] = output
    return flow_run


def _subflow_ids(server: PrefectServer, flow_run_id: str) -> list[str]:
    children = api(
        server, "POST", "flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    )
    ids = []
    for child in children:
        ids += [child["id"], *_subflow_ids(server, child["id"])]
    return ids


def read_artifacts(server: PrefectServer, flow_run_id: str, include_subflows: bool = False) -> list[dict]:
    """Artifacts the flow run (and with `include_subflows`, its subflow runs) created, oldest first.

    Each is the API's dict (key, type, description, data, flow_run_id, task_run_id, ...); a table artifact's `data`,
    which the API stores as a JSON string, is decoded into a list of row dicts (or a dict of columns).
    """
    run_ids = [flow_run_id, *(_subflow_ids(server, flow_run_id) if include_subflows else [])]
    artifacts = api(
        server,
        "POST",
        "artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": run_ids}}, "sort": "CREATED_DESC", "limit": 200},
    )[::-1]
    for artifact in artifacts:
        if artifact["type"] == "table" and isinstance(artifact["data"], str):
            artifact["data"] = json.loads(artifact["data"])
    return artifacts


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class RunsPage:
    rows: dict[str, str]  # run name -> text of its row on the UI's runs page
    hosts: set[str]  # every host the page contacted
    screenshot: Path
    login_text: str | None = None  # with `auth`: the page the UI showed instead of the runs, before the login


def ui_runs_page(server: PrefectServer, run_names: list[str], screenshot: Path, auth: str | None = None) -> RunsPage:
    """Load the Prefect UI's runs page in headless Debian Chromium and read the row of each named run once it shows
    as Completed; with `auth`, first expect the UI's login form and log in with it. Skips the test when Chromium is
    not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    hosts: set[str] = set()
    rows: dict[str, str] = {}
    login_text = None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.route("**/*amplitude.com/**", lambda route: route.abort())  # the v2 UI's analytics, if ever loaded
            page.on("request", lambda request: hosts.add(httpx.URL(request.url).host))
            page.goto(f"{server.ui_url}/runs", wait_until="networkidle")
            if auth is not None:
                password = page.get_by_placeholder("admin:pass")  # the classic UI's login form
                password.wait_for(timeout=30_000)
                login_text = page.locator("body").inner_text()
                password.fill(auth)
                page.get_by_role("button", name="Login").click()
                page.wait_for_url("**/runs**", timeout=30_000)
            for run_name in run_names:
                name = page.get_by_text(run_name, exact=True)
                name.first.wait_for(timeout=30_000)
                # The smallest element holding the run's name and its state badge is the run's row.
                row = page.locator("div", has=name).filter(has_text="Completed").last
                row.wait_for(timeout=30_000)
                rows[run_name] = row.inner_text()
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    return RunsPage(rows, hosts, screenshot, login_text)

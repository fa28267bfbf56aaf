"""Faults seen through a served deployment, as a user sees them: a SIGKILLed flow-run process during extraction
ends the run (and its subflow) within seconds and leaves no process behind; a failed run's reason is printed by
`make run` / `python -m infra.run`; library warnings reach the run's logs in the API."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from prefect_fixtures import api, read_flow_run, read_logs

from corpus.reddit import write_submissions
from corpus.warc import RollingWarcWriter

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server

# trafilatura takes seconds on each of these (20,000 nested blocks): extraction is surely running when we kill.
SLOW_PAGE = (
    "<html><body>"
    + "".join(
        f"<div><table><tr><td><p>paragraph {i} with some words in it</p></td></tr></table></div>" for i in range(20000)
    )
    + "</body></html>"
).encode()


def _slow_pages_warc(directory: Path, n: int) -> Path:
    writer = RollingWarcWriter(directory, "slow")
    for i in range(n):
        url = f"https://slow{i}.example.com/page"
        writer.write_page(
            link_url=url,
            target_uri=url,
            fetched_at=datetime(2017, 6, 1, tzinfo=UTC),
            method="GET",
            request_target="/page",
            request_headers=[("Host", f"slow{i}.example.com")],
            status=200,
            reason="OK",
            response_headers=[("Content-Type", "text/html; charset=utf-8")],
            body=SLOW_PAGE,
        )
    writer.close()
    (warc,) = directory.glob("*.warc.gz")
    return warc


def _flow_run_process(serve_pid: int, before: set[int], cli: subprocess.Popen, timeout: float) -> psutil.Process:
    """The `python -m prefect.engine` child that the serve process starts for the run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert cli.poll() is None, "the run ended before its process was found"
        for child in psutil.Process(serve_pid).children():
            if child.pid not in before and "prefect.engine" in " ".join(child.cmdline()):
                return child
        time.sleep(0.1)
    raise AssertionError("the serve process started no flow-run process")


def _busy_extraction_workers(flow: psutil.Process) -> list[psutil.Process]:
    """Processes two levels below the flow run (flow run -> Dask worker -> extraction worker) that are working."""
    found = []
    for proc in flow.children(recursive=True):
        try:
            if proc.ppid() != flow.pid and sum(proc.cpu_times()[:2]) > 0.5:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.slow
def test_sigkill_of_the_flow_run_during_extraction_ends_the_run_and_leaves_no_process(
    prefect_server, served_deployments, tmp_path
):
    warc = _slow_pages_warc(tmp_path / "warc", 8)
    params = {
        "warc_inputs": [str(warc)],
        "out_dir": str(tmp_path / "out"),
        "pages_per_part": 1,
        "n_workers": 2,
        "extract_timeout_s": 600.0,
    }
    before = {child.pid for child in psutil.Process(served_deployments.pid).children()}
    cli_log = tmp_path / "cli.log"
    with open(cli_log, "w") as out:
        cli = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "deployment",
                "run",
                "webtext/build-corpus",
                "--params",
                json.dumps(params),
                "--watch",
            ],
            env=prefect_server.client_env(COLUMNS="250"),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        flow = _flow_run_process(served_deployments.pid, before, cli, timeout=120)
        deadline = time.monotonic() + 240
        while not _busy_extraction_workers(flow):
            assert time.monotonic() < deadline, "extraction never started"
            assert cli.poll() is None, "the run ended before extraction was busy"
            time.sleep(0.1)
        processes = flow.children(recursive=True)  # everything the run started, collected before the kill
        flow.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            cli.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        watch_s = time.monotonic() - killed_at
        _, alive = psutil.wait_procs(processes, timeout=max(0.0, 10 - (time.monotonic() - killed_at)))
        survivors = [f"{p.pid} {' '.join(p.cmdline())[:100]}" for p in alive if p.is_running()]
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    output = cli_log.read_text()
    assert not survivors, f"processes of the killed run still alive 10 s after the kill: {survivors}"
    assert watch_s < 30, f"`prefect deployment run --watch` returned {watch_s:.0f} s after the kill:\n{output}"
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", output).group(1)
    run = read_flow_run(prefect_server, run_id)
    assert run["state_type"] == "CRASHED", (run["state_name"], output)
    subflows = api(
        prefect_server, "POST", "flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    )
    assert [s["name"] for s in subflows] and all(s["state_type"] == "CRASHED" for s in subflows), [
        (s["name"], s["state_name"]) for s in subflows
    ]
    tasks = api(
        prefect_server,
        "POST",
        "task_runs/filter",
        {"flow_runs": {"id": {"any_": [run_id, *(s["id"] for s in subflows)]}}},
    )
    assert not [t["name"] for t in tasks if t["state_type"] in ("RUNNING", "PENDING", "SCHEDULED")]


def test_a_failed_run_prints_its_reason(prefect_server, served_deployments, tmp_path):
    missing = tmp_path / "no-such-corpus"
    done = subprocess.run(
        [sys.executable, "-m", "infra.run", "gpt2/train", "-p", f"corpus={missing}", "-p", "max_steps=1"],
        env=prefect_server.client_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "finished in state 'Failed'" in output
    assert re.search(
        r"flow run '[\w-]+' \([0-9a-f-]{36}\) is Failed: .*corpus directory "
        rf"{re.escape(str(missing))} does not exist",
        output,
    ), output
    assert "last error log entries of the run:" in output and "FileNotFoundError" in output, output

    # The demo says the same when one of its runs fails.
    from infra.demo import DemoError, require_completed

    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", output).group(1)
    with pytest.raises(
        DemoError,
        match=rf"(?s)gpt2/train ended Failed .*corpus directory {re.escape(str(missing))} "
        r"does not exist.*FileNotFoundError",
    ):
        require_completed("gpt2/train", read_flow_run(prefect_server, run_id), prefect_server.api_url)


def test_library_warnings_reach_the_run_logs(prefect_server, served_deployments, tmp_path):
    dump = write_submissions(
        tmp_path / "RS_2017-06.zst",
        [
            {
                "id": "a",
                "subreddit": "news",
                "score": 5,
                "url": "https://example.com/a",
                "is_self": False,
                "over_18": False,
                "created_utc": 1_496_300_000,
                "title": "A",
            }
        ],
    )
    # a second, hand-made NDJSON dump whose line 2 is cut short
    broken = tmp_path / "RS_2017-07.ndjson"
    broken.write_text(
        json.dumps(
            {
                "id": "b",
                "subreddit": "news",
                "score": 1,
                "url": "https://example.com/b",
                "is_self": False,
                "over_18": False,
                "created_utc": 1_496_300_000,
            }
        )
        + "\n"
        + '{"id": "c", "subreddit": "ne\n'
    )
    from prefect_fixtures import run_deployment

    run = run_deployment(
        prefect_server,
        "webtext/build-corpus",
        {"dumps": [str(dump), str(broken)], "out_dir": str(tmp_path / "out"), "min_karma": 1000},
        timeout=300,
    )
    logs = read_logs(prefect_server, run["id"])
    assert any(f"{broken}:2: skipped malformed line" in message for message in logs), "\n".join(logs)

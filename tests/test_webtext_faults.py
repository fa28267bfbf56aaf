"""Flow `webtext` on bad input and faults, against a real Prefect server: every failure says what went wrong and
names the input, before any work where it can, and a build that ends empty is Failed with the stage named in the run's
logs and the dataset card. (The library halves are in test_reddit_links, test_buildlock, test_build_stages.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.reddit import write_submissions

REPO = Path(__file__).resolve().parents[1]

# Each case is one flow run of `webtext` in this process; prints one JSON line per run: state and flow run id.
RUN_FLOWS = """
import json, sys
from flows.webtext import webtext

for params in json.loads(sys.argv[1]):
    state = webtext(**params, return_state=True)
    print(json.dumps({"type": state.type.value, "message": state.message,
                      "flow_run_id": str(state.state_details.flow_run_id)}), flush=True)
"""

HOLD = """
import sys
from corpus.buildlock import build_lock

with build_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def run_flows(server, cases: list[dict]) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_FLOWS, json.dumps(cases)],
        cwd=REPO,
        env=server.client_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def submission(i: int, score: object) -> dict:
    return {
        "id": f"s{i}",
        "subreddit": "news",
        "score": score,
        "url": f"https://site{i}.example.com/story",
        "is_self": False,
        "over_18": False,
        "created_utc": 1_400_000_000 + i,
        "title": f"Story {i}",
    }


@pytest.mark.slow
@pytest.mark.server
def test_bad_inputs_fail_the_run_with_a_message_naming_them_before_any_work(prefect_server, tmp_path):
    from prefect_fixtures import read_logs

    big = write_submissions(tmp_path / "RS_2014-05.zst", [submission(i, 5) for i in range(20_000)])
    truncated = tmp_path / "RS_2014-06.zst"
    truncated.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    # where a check is missing, this one builds quickly (to an empty corpus) and the assertions below fail
    dump = write_submissions(tmp_path / "RS_2014-07.zst", [submission(1, 1)])
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(held)], cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == "held\n"
        cases = {
            "truncated": (
                {"dumps": [str(big), str(truncated)], "out_dir": str(tmp_path / "t")},
                [f"Reddit dump {truncated} is truncated", "1 of 2 Reddit dumps"],
            ),
            "port": (
                {
                    "dumps": [str(dump)],
                    "out_dir": str(tmp_path / "p"),
                    "connect_to": {"site1.example.com:443": "127.0.0.1:99999"},
                },
                ["connect_to entry 'site1.example.com:443': '127.0.0.1:99999'", "1 to 65535"],
            ),
            "min_karma": (
                {"dumps": [str(dump)], "out_dir": str(tmp_path / "k"), "min_karma": -5},
                ["min_karma must be an integer of at least 1", "-5"],
            ),
            "extractor": (
                {"dumps": [str(dump)], "out_dir": str(tmp_path / "e"), "extractor": "dragnet"},
                ["extractor must be one of combined, trafilatura,", "got 'dragnet'"],
            ),
            "file": ({"dumps": [str(dump)], "out_dir": str(a_file)}, [f"out_dir {a_file} is a file, not a folder"]),
            "proc": ({"dumps": [str(dump)], "out_dir": "/proc/webtext"}, ["out_dir /proc/webtext cannot be created"]),
            "held": (
                {"dumps": [str(dump)], "out_dir": str(held)},
                [f"out_dir {held} is in use by another build: PID {holder.pid} on host"],
            ),
        }
        runs = run_flows(prefect_server, [params for params, _ in cases.values()])
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert len(runs) == len(cases)
    for (name, (_, expected)), run in zip(cases.items(), runs):
        assert run["type"] == "FAILED", (name, run)
        logs = "\n".join(read_logs(prefect_server, run["flow_run_id"]))
        for text in expected:
            assert text in run["message"] and text in logs, (name, text, run["message"])
    # nothing was done where the parameters were refused; the truncated dump's partner was read and is kept
    assert not any((tmp_path / name).exists() for name in ("p", "k", "e")) and not (held / "links").exists()
    work = tmp_path / "t" / "links" / ".links.parquet.work"
    assert [f.name.split(".")[0] for f in work.iterdir() if (f / "_DONE").exists()] == ["RS_2014-05"]
    assert not (tmp_path / "t" / "links" / "links.parquet").exists()


@pytest.mark.slow
@pytest.mark.server
def test_a_build_that_ends_with_no_documents_fails_naming_the_stage_with_everything_kept(prefect_server, tmp_path):
    from prefect_fixtures import read_artifacts, read_logs

    dump = write_submissions(tmp_path / "RS_2014-05.zst", [submission(1, 1), submission(2, 2), submission(3, "lots")])
    out = tmp_path / "out"
    params = {"dumps": [str(dump)], "out_dir": str(out), "n_workers": 1}
    first, again = run_flows(prefect_server, [params, params])
    reason = (
        "the corpus is empty: the links stage kept 0 links of 3 submissions (dropped: below_min_karma: 2, "
        "invalid_score: 1)"
    )
    for run in (first, again):  # the re-run finds the finished (empty) build and says the same
        assert run["type"] == "FAILED" and reason in run["message"], run
        logs = read_logs(prefect_server, run["flow_run_id"])
        assert any(line == f"webtext: {reason}" for line in logs), logs
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["warnings"] == [reason] and manifest["totals"]["documents"] == 0
    card = {a["key"]: a for a in read_artifacts(prefect_server, first["flow_run_id"])}["webtext-dataset-card"]
    assert f"> **Warning:** {reason}." in card["data"]
    assert (out / "links" / "links.parquet").exists() and (out / "fetch" / "_SUCCESS.json").exists()

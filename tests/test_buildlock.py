"""One build at a time per out_dir (corpus.buildlock): real build processes on one folder; the second is refused at
once naming the folder and the holder; a SIGKILLed holder leaves a lock file that does not block the next build."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from corpus.build import build_from_warcs
from corpus.buildlock import LOCK_FILE, BuildLockedError, OutDirError, build_lock, prepare_out_dir

REPO = Path(__file__).resolve().parents[1]

# A real build_from_warcs in its own process; with a stage name, it stops at the start of that stage (holding
# out_dir, mid-build) and prints "paused" until a line comes on stdin.
BUILD = """
import json, sys
from pathlib import Path
import corpus.build as build
from corpus.build import BuildConfig, build_from_warcs
from corpus.extract import ExtractConfig

warc, out, pause_at = sys.argv[1:]
if pause_at:  # a function of corpus.build, or a stage's method ("ExtractStage.finish")
    *owner_path, name = pause_at.split(".")
    owner = build
    for attr in owner_path:
        owner = getattr(owner, attr)
    real = getattr(owner, name)
    def paused(*args, **kwargs):
        print("paused", flush=True)
        sys.stdin.readline()
        return real(*args, **kwargs)
    setattr(owner, name, paused)
config = BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1), pages_per_part=2)
result = build_from_warcs([Path(warc)], Path(out), config)
print(json.dumps(result.manifest["totals"]), flush=True)
"""


def write_html_warc(path: Path, pages: list[tuple[str, str]]) -> Path:
    """A gzipped WARC file of HTML responses, one per (url, html) (also used by test_bench_extract)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, html in pages:
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(url, "response", payload=io.BytesIO(html.encode()), http_headers=headers)
            writer.write_record(record)
    return path


def random_page(i: int, words_per_page: int = 300) -> str:
    """An HTML page of random words, distinct for each `i` (nothing for dedup to merge; also used by
    test_build_stages)."""
    rng = random.Random(i)
    words = " ".join(
        rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]) + str(rng.randrange(1000))
        for _ in range(words_per_page)
    )
    return (
        f"<html><head><title>Page {i}</title></head><body><article><h1>Story {i}</h1><p>{words}.</p>"
        f"</article></body></html>"
    )


def write_warc(path: Path, n: int, words_per_page: int = 300) -> Path:
    """`n` HTML pages of distinct random words (also used by test_build_stages)."""
    pages = [(f"https://site{i}.example.com/story", random_page(i, words_per_page)) for i in range(n)]
    return write_html_warc(path, pages)


def start_build(warc: Path, out: Path, pause_at: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", BUILD, str(warc), str(out), pause_at],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_build(warc: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BUILD, str(warc), str(out), ""], cwd=REPO, text=True, capture_output=True, timeout=300
    )


def wait_paused(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line == "paused\n", line + proc.stderr.read()


def shard_digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("*.parquet"))}


@pytest.fixture
def warc(tmp_path):
    return write_warc(tmp_path / "pages.warc.gz", 6)


def test_a_second_build_on_one_folder_is_refused_at_once_naming_the_folder_and_the_holder(warc, tmp_path):
    out = tmp_path / "out"
    first = start_build(warc, out, pause_at="run_stages")
    try:
        wait_paused(first)
        second = run_build(warc, out)
        assert second.returncode != 0
        error = second.stderr.strip().splitlines()[-1]
        assert error.startswith("corpus.buildlock.BuildLockedError: ")
        assert (
            f"out_dir {out.resolve()} is in use by another build: PID {first.pid} on host {socket.gethostname()}, "
            f"started 20" in error
        )
        assert not (out / "extract").exists()  # refused before any work (the first is paused before extraction)
        first.stdin.write("\n")
        first.stdin.close()
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert json.loads(first.stdout.read())["documents"] == 6
    again = run_build(warc, out)  # the lock went with the finished build
    assert again.returncode == 0, again.stderr


def test_a_lock_left_by_a_sigkilled_build_does_not_block_the_next_one(warc, tmp_path):
    reference = tmp_path / "reference"
    assert run_build(warc, reference).returncode == 0
    out = tmp_path / "out"
    killed = start_build(warc, out, pause_at="ExtractStage.finish")  # its extraction worker (a fork) is alive by then
    try:
        wait_paused(killed)
        children = psutil.Process(killed.pid).children(recursive=True)
        assert children, "the extraction pool should have a worker process"
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        holder = json.loads((out / LOCK_FILE).read_text())  # the file stays, naming a dead holder
        assert holder["pid"] == killed.pid and not psutil.pid_exists(killed.pid)
        rerun = run_build(warc, out)
        assert rerun.returncode == 0, rerun.stderr
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
        for child in children if "children" in locals() else []:
            if child.is_running():
                child.kill()
    assert shard_digests(out) == shard_digests(reference)


def test_in_one_process_a_second_hold_is_refused_and_released_holds_are_reusable(tmp_path):
    with build_lock(tmp_path / "out") as held:
        assert json.loads((held / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(BuildLockedError, match=f"PID {os.getpid()}"):
            with build_lock(tmp_path / "out"):
                pass
    assert (held / LOCK_FILE).read_text() == ""  # released: no holder shown
    with build_lock(tmp_path / "out"):
        pass


def test_an_out_dir_that_is_a_file_or_cannot_be_written_is_a_clear_error_before_any_work(tmp_path):
    a_file = tmp_path / "corpus.parquet"
    a_file.write_text("not a folder")
    with pytest.raises(OutDirError, match=f"out_dir {a_file} is a file, not a folder"):
        build_from_warcs([], a_file)
    with pytest.raises(OutDirError, match=f"out_dir {a_file / 'sub'} cannot be created: {a_file} is a file"):
        prepare_out_dir(a_file / "sub")
    with pytest.raises(OutDirError, match="out_dir /proc/webtext cannot be created"):
        build_from_warcs([], Path("/proc/webtext"))
    with pytest.raises(OutDirError, match="out_dir /proc is not writable"):
        build_from_warcs([], Path("/proc"))
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutDirError, match=f"out_dir {locked} is not writable"):
            build_from_warcs([], locked)

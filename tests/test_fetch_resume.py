"""Kill a fetch process mid-crawl: the re-run loses nothing logged, fetches only what is missing, archives each
page exactly once, and leaves no temporary files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from hostile_server import HostileServer

from corpus.fetch import FetchConfig, fetch_urls
from corpus.warc import iter_html_records

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from pathlib import Path
from corpus.fetch import FetchConfig, fetch_urls
urls, out, connect_to = json.loads(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
fetch_urls(urls, out, FetchConfig(concurrency=4, per_host=1, min_delay_s=0.0, connect_to=connect_to))
"""


def test_killed_fetch_resumes_without_loss_or_duplicates(tmp_path):
    with HostileServer() as server:
        connect_to = {"*.resume.test": f"127.0.0.1:{server.port}"}
        urls = [f"http://h{i % 6}.resume.test/slow?ms=150&n={i}" for i in range(48)]
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(urls), str(tmp_path), json.dumps(connect_to)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        journal = tmp_path / "log.journal.jsonl"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and child.poll() is None:
                if journal.exists() and journal.read_text().count("\n") >= 12:
                    break
                time.sleep(0.05)
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()

        # What the killed run left: a journal of finished URLs and an open WARC file, no log.parquet yet.
        committed = {json.loads(line)["url"] for line in journal.read_text().splitlines() if line.endswith("}")}
        assert 12 <= len(committed) < len(urls)
        assert list((tmp_path / "warc").glob("*.warc.gz.open")) and not (tmp_path / "log.parquet").exists()

        summary = fetch_urls(
            urls, tmp_path, FetchConfig(concurrency=8, per_host=2, min_delay_s=0.0, connect_to=connect_to)
        )
        assert summary.skipped == len(committed)
        assert summary.fetched == len(urls) - len(committed)
        refetched = sum(
            server.hits[(f"h{i % 6}.resume.test", url.split(".test", 1)[1])] > 1 for i, url in enumerate(urls)
        )
        assert refetched <= 4, "only the URLs in flight at the kill (concurrency 4) are fetched twice"

    rows = pq.read_table(tmp_path / "log.parquet").to_pylist()
    assert sorted(row["url"] for row in rows) == sorted(urls)
    assert {row["outcome"] for row in rows} == {"ok"}
    assert not list((tmp_path / "warc").glob("*.open")) and not journal.exists()
    pages = list(iter_html_records(sorted((tmp_path / "warc").glob("*.warc.gz"))))
    assert sorted(page.link_url for page in pages) == sorted(urls)
    # every logged location points at the page's own records
    for row in rows:
        with open(tmp_path / "warc" / row["warc_file"], "rb") as handle:
            handle.seek(row["warc_offset"])
            chunk = handle.read(row["warc_length"])
        [page] = iter_html_records_from_bytes(chunk, tmp_path / "one.warc.gz")
        assert page.link_url == row["url"]


def iter_html_records_from_bytes(data: bytes, path: Path):
    path.write_bytes(data)
    return list(iter_html_records([path]))

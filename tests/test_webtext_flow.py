"""Flow `webtext` end to end: through the `webtext/build-corpus` deployment on real pages served under their original
URLs (via connect_to), from a generated Pushshift-format .zst dump; then SIGKILL in the middle of extraction, re-run,
and the same shards byte for byte; then a re-run of the finished build does nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from hostile_server import HostileServer, make_tls_files

from corpus.build import doc_id, fetched_warcs
from corpus.extract import extract_with
from corpus.filters import drop_reason
from corpus.reddit import write_submissions
from corpus.urls import canonicalize_url

REPO = Path(__file__).resolve().parents[1]
N_PAGES = 6
WIKI_URL = "https://en.wikipedia.org/wiki/Web_crawler"
EXACT_COPY_URL = "https://copycat.example.net/stories/copied"
NEAR_COPY_URL = "https://nearcopy.example.org/stories/edited"
WIKI_TEXT = " ".join(
    f"A web crawler, sometimes called a spider or spiderbot, is an Internet bot that systematically browses the World "
    f"Wide Web and is typically operated by search engines for the purpose of Web indexing. Section {i} explains the "
    f"policies of selection, revisiting, politeness and parallelization that shape the crawl."
    for i in range(8)
)
WIKI_PAGE = (
    f"<!DOCTYPE html><html lang=en><head><title>Web crawler - Wikipedia</title></head><body>"
    f"<div id=content><h1>Web crawler</h1><div id=mw-content-text><p>{WIKI_TEXT}</p></div></div>"
    f"<div id=footer>Text is available under the Creative Commons Attribution-ShareAlike License</div>"
    f"</body></html>"
).encode()


@dataclass
class Scenario:
    dump: Path
    connect_to: dict[str, str]
    ca_file: str
    expected_urls: set[str]  # final (as submitted) URLs of the documents that must come out
    expected_links: dict[str, int]  # link-stage counts that must hold
    n_links: int
    too_short: int


def _mutate_one_word(html: bytes, snippet: str) -> bytes:
    words = snippet.split()
    edited = " ".join(words[:-1] + [words[-1][::-1] + "x"])
    assert snippet.encode() in html
    return html.replace(snippet.encode(), edited.encode())  # everywhere: also in the meta description


@pytest.fixture(scope="module")
def scenario(web_pages_dir, tmp_path_factory):
    """Pages, the dump that links to them, and a TLS + plain HTTP server routing their hosts to loopback."""
    manifest = [e for e in json.loads((web_pages_dir / "manifest.json").read_text()) if e["url"].startswith("http")]
    long_pages, short_pages = [], []
    for entry in manifest:  # pick the pages by what the library says about them, in manifest order
        body = (web_pages_dir / entry["file"]).read_bytes()
        text = extract_with(body, entry["url"]).text
        if text and drop_reason(text) is None and len(text.split()) > 250:
            if any(s.encode() in body and len(s.split()) >= 3 for s in entry["with"]) and len(long_pages) < N_PAGES:
                long_pages.append((entry, body))
        elif text and drop_reason(text) == "too_short" and len(short_pages) < 2:
            short_pages.append((entry, body))
        if len(long_pages) == N_PAGES and len(short_pages) == 2:
            break
    original, edited_source = long_pages[0], long_pages[1]
    snippet = next(s for s in edited_source[0]["with"] if s.encode() in edited_source[1] and len(s.split()) >= 3)
    served = {entry["url"]: body for entry, body in long_pages + short_pages}
    served[WIKI_URL] = WIKI_PAGE
    served[EXACT_COPY_URL] = original[1]
    served[NEAR_COPY_URL] = _mutate_one_word(edited_source[1], snippet)
    nsfw_page = "https://adult.example.com/private"
    served[nsfw_page] = original[1]

    t = 1_400_000_000
    records = []
    for i, (entry, _) in enumerate(long_pages + short_pages):
        records.append(
            {
                "id": f"p{i}",
                "subreddit": "news",
                "score": 40 + i,
                "url": entry["url"],
                "is_self": False,
                "over_18": False,
                "created_utc": t + i,
                "title": f"Story {i}",
                "domain": "x",
            }
        )
    records += [
        {
            "id": "w1",
            "subreddit": "science",
            "score": 90,
            "url": WIKI_URL,
            "is_self": False,
            "over_18": False,
            "created_utc": t,
            "title": "Wikipedia",
        },
        {
            "id": "c1",
            "subreddit": "news",
            "score": 4,
            "url": EXACT_COPY_URL,
            "is_self": False,
            "over_18": False,
            "created_utc": t + 500,
            "title": "Copy",
        },
        {
            "id": "c2",
            "subreddit": "news",
            "score": 2,
            "url": NEAR_COPY_URL,
            "is_self": False,
            "over_18": False,
            "created_utc": t + 600,
            "title": "Near copy",
        },
        {
            "id": "c3",
            "subreddit": "politics",
            "score": 2,
            "url": NEAR_COPY_URL + "?utm_source=reddit",
            "is_self": False,
            "over_18": False,
            "created_utc": t + 700,
            "title": "Near copy again",
        },  # karma 2 + 2 = 4 after canonicalizing
        {
            "id": "l1",
            "subreddit": "news",
            "score": 1,
            "url": "https://lowkarma.example.com/a",
            "is_self": False,
            "over_18": False,
            "created_utc": t,
            "title": "Low karma",
        },
        {
            "id": "n1",
            "subreddit": "nsfw",
            "score": 500,
            "url": nsfw_page,
            "is_self": False,
            "over_18": True,
            "created_utc": t,
            "title": "NSFW",
        },
        {
            "id": "s1",
            "subreddit": "AskReddit",
            "score": 900,
            "url": "https://www.reddit.com/r/AskReddit/comments/s1/",
            "is_self": True,
            "over_18": False,
            "created_utc": t,
            "title": "Self post",
        },
        {
            "id": "m1",
            "subreddit": "pics",
            "score": 800,
            "url": "https://i.imgur.com/abcdef.jpg",
            "is_self": False,
            "over_18": False,
            "created_utc": t,
            "title": "Picture",
        },
        {
            "id": "m2",
            "subreddit": "videos",
            "score": 700,
            "url": "https://www.youtube.com/watch?v=abc",
            "is_self": False,
            "over_18": False,
            "created_utc": t,
            "title": "Video",
        },
        {
            "id": "a1",
            "subreddit": "news",
            "score": 50,
            "url": "https://late.example.com/2019",
            "is_self": False,
            "over_18": False,
            "created_utc": 1_550_000_000,
            "title": "After the cutoff",
        },
    ]
    tmp = tmp_path_factory.mktemp("webtext-scenario")
    dump = write_submissions(tmp / "RS_2014-05.zst", records)

    # Only the submitted form of each URL is served: the fetcher must ask for it, not for the canonical form
    # (no www., no trailing slash), which a real site may not serve.
    hosts = sorted({httpx.URL(u).host for u in served})
    tls = make_tls_files(hosts, tmp / "tls")
    pages = {
        (httpx.URL(u).host, httpx.URL(u).raw_path.decode("ascii")): (body, "text/html; charset=utf-8")
        for u, body in served.items()
    }
    with HostileServer(pages=pages, tls=tls) as server:
        connect_to = {}
        for host in hosts:
            connect_to[f"{host}:80"] = f"127.0.0.1:{server.port}"
            connect_to[f"{host}:443"] = f"127.0.0.1:{server.tls_port}"
        yield Scenario(
            dump=dump,
            connect_to=connect_to,
            ca_file=str(tls.ca_file),
            expected_urls={entry["url"] for entry, _ in long_pages},
            expected_links={"self_post": 1, "nsfw": 1, "after_cutoff": 1, "blocked_domain": 2, "below_min_karma": 1},
            n_links=len(long_pages) + len(short_pages) + 3,
            too_short=len(short_pages),
        )


def _params(scenario: Scenario, out_dir: Path, **extra) -> dict:
    return {
        "dumps": [str(scenario.dump)],
        "out_dir": str(out_dir),
        "connect_to": scenario.connect_to,
        "ca_file": scenario.ca_file,
        "min_delay_s": 0.0,
        "pages_per_part": 4,
        "n_workers": 2,
        "val_fraction": 0.25,
        "extract_timeout_s": 60.0,
        **extra,
    }


def _shard_digests(out_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out_dir / "shards").glob("*.parquet"))}


def _check_build(scenario: Scenario, out_dir: Path) -> dict:
    manifest = json.loads((out_dir / "manifest.json").read_text())
    rows = [r for p in sorted((out_dir / "shards").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert {r["url"] for r in rows} == scenario.expected_urls  # where each page was fetched
    assert {r["link_url"] for r in rows} == {canonicalize_url(u) for u in scenario.expected_urls}
    assert {r["id"] for r in rows} == {doc_id(canonicalize_url(u)) for u in scenario.expected_urls}
    assert all(r["karma"] >= 40 and r["subreddits"] == ["news"] and r["n_words"] > 250 for r in rows)
    stages = {s["stage"]: s for s in manifest["stages"]}
    assert [s["stage"] for s in manifest["stages"]] == [
        "links",
        "fetch",
        "extract",
        "filter",
        "dedup",
        "wikipedia",
        "shards",
    ]
    links = stages["links"]
    assert links["out"] == scenario.n_links
    assert {k: v for k, v in links["dropped"].items() if v} == scenario.expected_links
    assert stages["fetch"]["in"] == scenario.n_links and stages["fetch"]["out"] == scenario.n_links
    assert stages["extract"]["out"] == scenario.n_links
    assert stages["filter"]["dropped"] == {"too_short": scenario.too_short}
    assert stages["dedup"]["dropped"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert not (out_dir / "dedup" / "_work").exists()
    assert stages["wikipedia"]["dropped"] == {"wikipedia": 1}
    assert stages["shards"]["out"] == len(scenario.expected_urls) == manifest["totals"]["documents"]
    for shard in manifest["shards"]:
        path = out_dir / "shards" / shard["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
    assert (out_dir / "shards" / "README.md").read_text().startswith("# WebText-style corpus")
    return manifest


@pytest.mark.slow
@pytest.mark.server
def test_build_corpus_deployment_end_to_end_then_sigkill_and_resume(
    scenario, prefect_server, served_deployments, tmp_path, request
):
    from prefect_fixtures import _subflow_ids, read_artifacts, read_logs, run_deployment

    # The reference fetches in 3 parts and dedups in partitions of 2 documents on 3 Dask workers; the resumed build
    # below runs on 1 worker with one dedup partition: the shards must not depend on how the work was split.
    reference = tmp_path / "reference"
    run = run_deployment(
        prefect_server,
        "webtext/build-corpus",
        # extract_lede=True (not the default) here and in the resumed build below: the parameter reaches the
        # extraction config
        _params(scenario, reference, n_workers=3, fetch_part_count=3, dedup_partition_docs=2, extract_lede=True),
        timeout=420,
    )
    assert run["state_type"] == "COMPLETED", "\n".join(read_logs(prefect_server, run["id"]))
    manifest = _check_build(scenario, reference)
    assert manifest["config"]["extract"]["lede"] is True

    artifacts = {a["key"]: a for a in read_artifacts(prefect_server, run["id"], include_subflows=True) if a["key"]}
    fetch_table = {row["outcome"]: row["urls"] for row in artifacts["webtext-fetch-outcomes"]["data"]}
    assert fetch_table == {"ok": scenario.n_links}
    stage_table = [row["stage"] for row in artifacts["webtext-stage-counts"]["data"]]
    assert stage_table == [s["stage"] for s in manifest["stages"]]
    assert artifacts["webtext-dataset-card"]["data"].startswith("# WebText-style corpus")
    assert {"webtext-extract-index-progress", "webtext-extract-pages-progress"} <= set(artifacts)
    logs = "\n".join(
        line
        for run_id in [run["id"], *_subflow_ids(prefect_server, run["id"])]
        for line in read_logs(prefect_server, run_id)
    )
    assert re.search(r"fetch: 3 parts by host", logs) and re.search(r"fetch: \d+ in, \d+ out", logs)
    assert re.search(r"dedup: \d+ partitions", logs) and re.search(r"dedup-verify: \d+/\d+ parts done", logs)

    # SIGKILL the flow process in the middle of extraction, then re-run. These runs use an existing Dask cluster
    # (`dask_address`), as a scaled-out build would; it outlives the killed flow. The pages come from the reference
    # run's WARC files, so the shards must match the reference byte for byte.
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.daemon": False}):  # extraction workers are its children
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    request.addfinalizer(cluster.close)
    warcs = [str(p) for p in fetched_warcs(reference)]
    assert len({p.split("/parts/")[1].split("/")[0] for p in warcs}) > 1, "the reference fetched in several parts"
    crashed = tmp_path / "crashed"
    params = _params(
        scenario,
        crashed,
        warc_inputs=warcs,
        pages_per_part=2,
        dask_address=cluster.scheduler_address,
        extract_lede=True,
    )
    script = "import json, sys; from flows.webtext import webtext; webtext(**json.loads(sys.argv[1]))"
    env = prefect_server.client_env()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(params)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list((crashed / "extract").glob("0*.parquet"))) < 2:
            assert proc.poll() is None, "the flow ended before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    parts_before = {p.name: p.stat().st_mtime_ns for p in (crashed / "extract").glob("0*.parquet")}
    assert parts_before, "no extraction part was finished before the kill"
    assert not (crashed / "extract" / "_SUCCESS.json").exists(), "the kill came after extraction"
    assert not (crashed / "manifest.json").exists()

    rerun = subprocess.run(
        [sys.executable, "-c", script, json.dumps(params)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert _shard_digests(crashed) == _shard_digests(reference)
    kept = {p.name: p.stat().st_mtime_ns for p in (crashed / "extract").glob("0*.parquet") if p.name in parts_before}
    assert kept == parts_before, "parts finished before the crash must be kept, not redone"

    again = subprocess.run(
        [sys.executable, "-c", script, json.dumps(params)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0
    assert "nothing to do" in again.stdout + again.stderr
    assert _shard_digests(crashed) == _shard_digests(reference)


@pytest.mark.parametrize("parts,count", [(1, 8), (7, 8), (8, 8), (9, 8), (100, 8), (1000, 12), (5, 1)])
def test_a_steps_parts_go_to_at_most_the_task_count_in_order_and_evenly(parts, count):
    """The flow maps runs of consecutive parts, not parts, to Prefect tasks: a task costs ~0.2 CPU-s and flow-process
    memory, so 100,000s of parts must not become 100,000s of tasks."""
    from flows.webtext import batches

    runs = batches(list(range(parts)), count)
    assert [p for run in runs for p in run] == list(range(parts))
    assert len(runs) == min(parts, count) and all(runs), "as many tasks as allowed, none empty"
    sizes = [len(run) for run in runs]
    assert max(sizes) - min(sizes) <= 1

"""The fetch stage in parts (corpus.fetch_parts through build.FetchStage): every host is in exactly one part, the parts
together fetch every link once with the same outcome as one part does, and a finished part is not fetched again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile_server import HostileServer

from corpus import fetch_parts
from corpus.build import FetchStage, fetched_warcs
from corpus.fetch import FetchConfig
from corpus.stages import begin, map_in_process, run_stage
from corpus.urls import url_host
from corpus.warc import iter_html_records

PATHS = ["/story/{i}", "/not-found?n={i}", "/image.png?n={i}", "/hop?n=2&i={i}", "/story/{i}"]


def _write_links(out_dir: Path, hosts: int = 9, per_host: int = 5) -> list[str]:
    """links/links.parquet with `hosts` sites (half of them also as www.) and a mix of outcomes."""
    urls = [
        f"http://{'www.' if (i // hosts) % 2 and i % 2 else ''}news{i % hosts}.co.uk"
        + PATHS[i % len(PATHS)].format(i=i)
        for i in range(hosts * per_host)
    ]
    (out_dir / "links").mkdir(parents=True)
    columns = {
        "url": urls,
        "original_urls": [[u] for u in urls],
        "karma": [3 + i for i in range(len(urls))],
        "subreddits": [["news"] for _ in urls],
        "title": [f"story {i}" for i in range(len(urls))],
        "first_created_utc": [1_400_000_000 + i for i in range(len(urls))],
    }
    pq.write_table(pa.table(columns), out_dir / "links" / "links.parquet")
    return urls


def _log(out_dir: Path) -> dict[str, tuple]:
    rows = [r for log in fetch_parts.logs(out_dir / "fetch") for r in pq.read_table(log).to_pylist()]
    assert len(rows) == len({r["url"] for r in rows}), "a URL was logged twice"
    return {r["url"]: (r["outcome"], r["http_status"], r["final_url"]) for r in rows}


def test_a_host_is_in_exactly_one_part_and_the_parts_cover_the_links(tmp_path):
    urls = _write_links(tmp_path, hosts=30, per_host=4)
    plan = fetch_parts.plan(tmp_path / "links" / "links.parquet", tmp_path / "fetch", 4)
    part_of_site: dict[str, set[int]] = {}
    seen = []
    source = {row["url"]: row for row in pq.read_table(tmp_path / "links" / "links.parquet").to_pylist()}
    for k in range(4):
        table = pq.read_table(tmp_path / "fetch" / "parts" / f"{k:05d}" / "links.parquet")
        assert table.num_rows == plan["part_links"][k]
        for row in table.to_pylist():  # each link's Reddit metadata goes with it, for the filter stage's join
            assert {m: row[m] for m in fetch_parts.METADATA} == {m: source[row["url"]][m] for m in fetch_parts.METADATA}
        for url in table.column("start").to_pylist():
            part_of_site.setdefault(url_host(url).removeprefix("www."), set()).add(k)
        seen += table.column("url").to_pylist()
    assert sorted(seen) == sorted(urls) and plan["links"] == len(urls)
    assert len(part_of_site) == 30 and sum(1 for u in urls if "//www." in u) >= 10
    assert all(len(parts) == 1 for parts in part_of_site.values()), "news1.co.uk and www.news1.co.uk split apart"
    assert sum(1 for n in plan["part_links"] if n) > 1
    # a re-run keeps the plan it made (its parts hold what was fetched), whatever it is asked for now
    assert fetch_parts.plan(tmp_path / "links" / "links.parquet", tmp_path / "fetch", 7) == plan
    with pytest.raises(ValueError, match="fetch parts must be at least 1"):
        fetch_parts.plan(tmp_path / "links" / "links.parquet", tmp_path / "other", 0)


def test_a_plan_that_fails_leaves_no_part_files(tmp_path):
    links = tmp_path / "links.parquet"
    pq.write_table(pa.table({"url": ["http://news1.co.uk/a"]}), links)  # no original_urls column
    with pytest.raises(Exception, match="original_urls"):
        fetch_parts.plan(links, tmp_path / "fetch", 3)
    assert [p for p in (tmp_path / "fetch").rglob("*") if p.is_file()] == []  # no plan, links or temporary files
    # a file without the Reddit metadata the filter stage joins is refused by name, not cast into a cryptic error
    pq.write_table(pa.table({"url": ["http://news1.co.uk/a"], "original_urls": [["http://news1.co.uk/a"]]}), links)
    with pytest.raises(
        ValueError, match=r"links.parquet is not a links file of the links stage: no column karma, subr"
    ):
        fetch_parts.plan(links, tmp_path / "fetch", 3)


def _config(server: HostileServer) -> FetchConfig:
    """The fetcher against the test server, every .co.uk host routed to it, no politeness delay."""
    return FetchConfig(
        concurrency=8,
        per_host=1,
        min_delay_s=0.0,
        progress_interval_s=3600,
        connect_to={"*.co.uk": f"127.0.0.1:{server.port}"},
    )


def run_fetch(out: Path, links_key: str, config: FetchConfig, parts: int) -> tuple[str, dict]:
    key, stats = run_stage(FetchStage(out, config, parts), links_key, map_in_process)
    return key, stats.to_dict()


def test_parts_fetch_every_link_once_with_the_outcome_of_one_part(tmp_path):
    with HostileServer() as server:
        config = _config(server)
        results = {}
        for parts in (1, 3):
            out = tmp_path / f"parts{parts}"
            urls = _write_links(out)
            _, stats = run_fetch(out, "links-key", config, parts=parts)
            results[parts] = (_log(out), stats)
            pages = Counter(page.link_url for page in iter_html_records(fetched_warcs(out)))
            ok = {u for u, (outcome, _, _) in results[parts][0].items() if outcome == "ok"}
            assert set(pages) == ok and set(pages.values()) == {1}, "every ok page archived exactly once"
            part_folders = {p.parent.parent.name for p in fetched_warcs(out)}
            assert len(part_folders) == 1 if parts == 1 else len(part_folders) > 1
    (log1, stats1), (log3, stats3) = results[1], results[3]
    assert set(log1) == set(urls)
    assert log3 == log1
    assert stats3 == stats1 and stats1["in"] == len(urls)
    assert set(stats1["outcomes"]) >= {"ok", "http_error", "unsupported_content_type"}


def test_a_finished_part_is_not_fetched_again(tmp_path):
    with HostileServer() as server:
        config = _config(server)
        urls = _write_links(tmp_path)
        stage = FetchStage(tmp_path, config, 3)
        begin(stage.stage_dir, stage.key("links-key"))
        assert stage.plan("links-key") == 3
        plan = json.loads((tmp_path / "fetch" / "_plan.json").read_text())
        done = fetch_parts.fetch_part(tmp_path / "fetch", 0, config)
        assert sum(done.values()) == plan["part_links"][0] > 0
        log0 = tmp_path / "fetch" / "parts" / "00000" / "log.parquet"
        before = log0.stat().st_mtime_ns
        # the run that follows the crash: asked for one part, it keeps the plan of three and part 0 as it was
        _, stats = run_fetch(tmp_path, "links-key", config, parts=1)
        assert log0.stat().st_mtime_ns == before
        assert stats["in"] == len(urls) == sum(stats["outcomes"].values())


def test_fetched_pages_are_joined_with_their_own_parts_links_not_the_whole_link_list(tmp_path):
    """The filter stage's Reddit-metadata join reads the links of the fetch part that fetched a page (memory and time
    per part set by fetch_part_count): it works with links.parquet gone, and every page finds its link."""
    from corpus.build import BuildConfig, ExtractStage, FilterStage
    from corpus.extract import ExtractConfig
    from corpus.filters import FilterConfig

    with HostileServer() as server:
        urls = _write_links(tmp_path)
        fetch_key, stats = run_fetch(tmp_path, "links-key", _config(server), parts=3)
    assert len({fetch_parts.part_links(w) for w in fetched_warcs(tmp_path)}) > 1, "pages in several parts"
    (tmp_path / "links" / "links.parquet").unlink()  # the filter parts must not need it
    config = BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1), filter=FilterConfig(min_words=1))
    extract_key, extracted = run_stage(ExtractStage(tmp_path, config), fetch_key, map_in_process)
    _, filtered = run_stage(FilterStage(tmp_path, config, "links-key", fetched=True), extract_key, map_in_process)
    assert filtered.items_in == extracted.items_out > 0 and "not_in_links" not in filtered.dropped
    karma = {url: 3 + i for i, url in enumerate(urls)}
    rows = [r for p in sorted((tmp_path / "filter").glob("0*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert rows and all(r["karma"] == karma[r["link_url"]] and r["subreddits"] == ["news"] for r in rows)

"""The mini web: deterministic generation, a real Pushshift dump, a Host-routed server whose failure pages behave as
designed, real English prose wrapped in boilerplate, and a ground truth that the real harvester and fetcher meet."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
import zstandard

from corpus.fetch import FetchConfig, fetch_urls, robots_allowed
from corpus.links import harvest_links
from corpus.netsafety import ConnectTo
from corpus.reddit import iter_submissions
from corpus.urls import canonicalize_url
from infra.env import REPO
from infra.miniweb import DEFAULT_ARTICLES, SMALL_ARTICLES, MiniWeb, MiniWebServer, build_miniweb, serve_miniweb
from infra.miniweb.build import MIN_ARTICLES
from infra.miniweb.prose import jaccard, load_passages
from infra.miniweb.sites import COOKIE_NOTICE
from infra.processes import stop_tree

SEED = 7
STOP_WORDS = frozenset(
    "the of and a to in is it that as for be by on or an are with this not which its at from if can when than "
    "any all has have was but so no may must only also these such other then their there one".split()
)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> MiniWeb:
    return build_miniweb(SEED, SMALL_ARTICLES, tmp_path_factory.mktemp("miniweb"))


@pytest.fixture(scope="module")
def server(web: MiniWeb):
    with serve_miniweb(web, slow_seconds=8) as running:
        yield running


def get(server: MiniWebServer, url: str) -> httpx.Response:
    """GET `url` the way the fetcher does: TCP to the address connect_to names, the URL's host in the Host header."""
    parts = urlsplit(url)
    address = ConnectTo(server.connect_to).lookup(parts.hostname, parts.port or 80)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return httpx.get(f"http://{address.host}:{address.port}{target}", headers={"Host": parts.netloc}, timeout=5)


def links_by_role(web: MiniWeb) -> dict[str, list[dict]]:
    roles: dict[str, list[dict]] = {}
    for link in web.expectations()["links"]:
        roles.setdefault(link["role"], []).append(link)
    return roles


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path, web: MiniWeb) -> None:
    again = build_miniweb(SEED, SMALL_ARTICLES, tmp_path / "again")
    assert tree(again.root) == tree(web.root)
    other = build_miniweb(SEED + 1, SMALL_ARTICLES, tmp_path / "other")
    assert tree(other.root)["expectations.json"] != tree(web.root)["expectations.json"]
    assert [p.read_bytes() for p in other.dumps] != [p.read_bytes() for p in web.dumps]


def test_an_existing_mini_web_is_reused_and_a_different_one_replaced(tmp_path: Path) -> None:
    first = build_miniweb(SEED, MIN_ARTICLES, tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    time.sleep(0.01)
    assert build_miniweb(SEED, MIN_ARTICLES, tmp_path).manifest == first.manifest
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps
    bigger = build_miniweb(SEED, MIN_ARTICLES + 4, tmp_path)
    assert bigger.n_articles == MIN_ARTICLES + 4
    assert MiniWeb.load(tmp_path).manifest == bigger.manifest


@pytest.mark.parametrize("n", [MIN_ARTICLES - 1, 10_000])
def test_a_size_out_of_range_is_a_clear_error(tmp_path: Path, n: int) -> None:
    with pytest.raises(ValueError, match=rf"n_articles must be between {MIN_ARTICLES} and \d+.*got {n}"):
        build_miniweb(SEED, n, tmp_path)
    assert not (tmp_path / "miniweb.json").exists()


def test_load_of_a_missing_mini_web_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "miniweb.json"))):
        MiniWeb.load(tmp_path)


def test_the_dump_is_pushshift_zst_by_month(web: MiniWeb) -> None:
    expected = web.expectations()
    stamp_types: Counter[str] = Counter()
    total = 0
    for dump in web.dumps:
        raw = dump.read_bytes()
        assert raw[:4] == b"\x28\xb5\x2f\xfd", f"{dump} is not a zstd frame"
        lines = zstandard.ZstdDecompressor().decompressobj().decompress(raw).decode().splitlines()
        stamp_types.update(type(json.loads(line)["created_utc"]).__name__ for line in lines)
        records = list(iter_submissions(dump))
        assert len(records) == len(lines)
        month = re.fullmatch(r"RS_(\d{4}-\d{2})\.zst", dump.name).group(1)
        for record in records:
            assert {
                "id",
                "subreddit",
                "score",
                "url",
                "is_self",
                "over_18",
                "created_utc",
                "title",
                "domain",
            } <= record.keys()
            assert time.strftime("%Y-%m", time.gmtime(record["created_utc"])) == month
        total += len(records)
    assert total == expected["counts"]["submissions"]
    assert set(stamp_types) == {"int", "float", "str"}  # as mixed as the real dumps


def test_link_harvesting_meets_the_ground_truth(web: MiniWeb, tmp_path: Path) -> None:
    expected = web.expectations()
    stats = harvest_links(web.dumps, tmp_path / "links.parquet")
    kept = pq.read_table(tmp_path / "links.parquet").to_pylist()
    want = {canonicalize_url(link["url"]): link for link in expected["links"] if link["harvest"] == "kept"}
    assert {row["url"] for row in kept} == set(want)
    assert {row["url"]: row["karma"] for row in kept} == {url: link["karma"] for url, link in want.items()}
    assert {k: v for k, v in stats.dropped.items() if v} == expected["counts"]["harvest_dropped"]
    roles = links_by_role(web)
    for role in ("low_karma", "nsfw", "after_cutoff", "self_post", "media", "document_file"):
        assert roles[role] and all(link["harvest"] != "kept" for link in roles[role]), role
    assert any(row["n_submissions"] > 1 for row in kept), "some karma is summed over URL variants"


def test_the_server_answers_by_host_header(web: MiniWeb, server: MiniWebServer) -> None:
    article = links_by_role(web)["article"][-1]
    page = get(server, article["final_url"])
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    served = {p["host"] + p["path"]: p["file"] for p in web.manifest["pages"]}
    parts = urlsplit(article["final_url"])
    assert page.content == (web.root / "sites" / served[parts.hostname + parts.path]).read_bytes()
    assert article["title"] in page.text
    other_host = httpx.get(f"{server.url}{parts.path}", headers={"Host": "wire.example.net"}, timeout=5)
    assert other_host.status_code == 404
    assert httpx.get(f"{server.url}{parts.path}", headers={"Host": "unknown.example"}, timeout=5).status_code == 404
    www = httpx.get(f"{server.url}{parts.path}?utm_source=x", headers={"Host": f"www.{parts.hostname}"}, timeout=5)
    assert www.content == page.content
    index = get(server, f"http://{parts.hostname}/")
    assert index.status_code == 200 and article["title"] in index.text


def test_every_expected_document_is_served(web: MiniWeb, server: MiniWebServer) -> None:
    flaky = {link["url"] for link in links_by_role(web)["flaky"]}
    for url in web.expectations()["corpus_urls"]:
        response = get(server, url)
        if url in flaky:  # 500 the first time, as designed; a retry gets the page
            assert response.status_code == 500
            response = get(server, url)
        assert response.status_code == 200, url


def test_failure_pages_behave_as_designed(web: MiniWeb) -> None:
    roles = links_by_role(web)
    with serve_miniweb(web, slow_seconds=3) as fresh:
        flaky = roles["flaky"][0]["url"]
        assert [get(fresh, flaky).status_code for _ in range(3)] == [500, 200, 200]

        for _ in range(2):
            unavailable = get(fresh, roles["unavailable"][0]["url"])
            assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "1"

        for link in roles["not_found"]:
            assert get(fresh, link["url"]).status_code == 404

        moved = next(link for link in roles["article"] if link["final_url"] != link["url"])
        redirect = get(fresh, moved["url"])
        assert redirect.status_code == 301
        assert redirect.headers["location"] == moved["final_url"]

        # Slow: the headers come at once, the body drips for slow_seconds; a deadline is the only defence.
        parts = urlsplit(roles["slow"][0]["url"])
        started = time.monotonic()
        with httpx.stream("GET", f"{fresh.url}{parts.path}", headers={"Host": parts.hostname}, timeout=5) as r:
            assert r.status_code == 200
            received = 0
            for chunk in r.iter_bytes():
                received += len(chunk)
                if time.monotonic() - started > 1.0:
                    break
            assert received < int(r.headers["content-length"]) / 2
        assert time.monotonic() - started < 5.0  # the client, not the server, decided when to stop

        with pytest.raises(httpx.ConnectError):
            get(fresh, roles["refused"][0]["url"])


def test_robots_txt_excludes_exactly_the_robots_links(web: MiniWeb, server: MiniWebServer) -> None:
    roles = links_by_role(web)
    forum = roles["robots"][0]["url"]
    robots_txt = get(server, f"http://{urlsplit(forum).hostname}/robots.txt").content
    user_agent = FetchConfig().user_agent
    assert not robots_allowed(robots_txt, user_agent, forum)
    for link in roles["article"] + roles["slow"]:
        if urlsplit(link["url"]).hostname == urlsplit(forum).hostname:
            assert robots_allowed(robots_txt, user_agent, link["url"])
    assert get(server, "http://blog.example.org/robots.txt").status_code == 404  # no robots.txt: all allowed


def test_the_real_fetcher_meets_the_ground_truth(web: MiniWeb, tmp_path: Path) -> None:
    links = [link for link in web.expectations()["links"] if link["fetch"] is not None]
    with serve_miniweb(web) as fresh:  # slow pages drip for the default 120 s: only the deadline below ends them
        config = FetchConfig(
            connect_to=fresh.connect_to, min_delay_s=0.05, deadline_s=5.0, backoff_base_s=0.1, max_retry_after_s=1.0
        )
        summary = fetch_urls([canonicalize_url(link["url"]) for link in links], tmp_path, config)
    outcomes = {row["url"]: row["outcome"] for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    assert outcomes == {canonicalize_url(link["url"]): link["fetch"] for link in links}
    assert summary.outcomes == web.expectations()["counts"]["fetch"]


def test_the_prose_is_real_english() -> None:
    passages = load_passages()
    assert len(passages) >= DEFAULT_ARTICLES
    for passage in passages:
        assert passage.n_words >= 150, passage.key
        words = re.findall(r"[a-z]+", " ".join(b.text for b in passage.blocks if b.kind != "code").lower())
        ratio = sum(w in STOP_WORDS for w in words) / len(words)
        assert 0.2 < ratio < 0.6, f"{passage.key}: stop-word ratio {ratio:.2f} is not English prose"
    # A shuffled vocabulary has the words but not the language: the same check rejects it.
    vocabulary = sorted({w for p in passages for w in re.findall(r"[a-z]+", p.plain_text().lower())})
    assert sum(w in STOP_WORDS for w in vocabulary) / len(vocabulary) < 0.05


def test_pages_carry_boilerplate_around_the_article(web: MiniWeb, server: MiniWebServer) -> None:
    passages = {p.key: p for p in load_passages()}
    hosts = set()
    for link in web.expectations()["links"]:
        if link["role"] not in ("article", "split_karma", "wikipedia"):
            continue
        parts = urlsplit(link["final_url"])
        page = get(server, link["final_url"]).text
        passage = passages[link["passage"]]
        paragraph = next(b.text for b in passage.blocks if b.kind == "paragraph" and "**" not in b.text)
        assert html.escape(paragraph) in page
        visible_words = len(re.sub(r"<script.*?</script>|<[^>]+>", " ", page, flags=re.S).split())
        assert visible_words - passage.n_words >= 60, f"{link['url']}: too little around the article"
        if "wikipedia" in parts.hostname:
            assert "From Wikipedia, the free encyclopedia" in page or "CC BY-SA" in page
        else:
            assert COOKIE_NOTICE in page and "<nav" in page and "footer" in page
        hosts.add(parts.hostname)
    assert len(hosts) >= 5


def test_copies_are_duplicates_and_distinct_articles_are_not(web: MiniWeb) -> None:
    passages = {p.key: p for p in load_passages()}
    links = web.expectations()["links"]
    pairs = (("syndicated", "syndicated_copy", "near_duplicate"), ("mirrored", "mirror_copy", "exact_duplicate"))
    for role, copy_role, reason in pairs:
        for original in (link for link in links if link["role"] == role):
            copy = next(l for l in links if l["role"] == copy_role and l["passage"] == original["passage"])
            assert sorted([original["dedup"], copy["dedup"]]) == sorted(["kept", reason])
            loser = original if original["dedup"] == reason else copy
            winner = copy if loser is original else original
            assert loser["duplicate_of"] == winner["url"] and winner["karma"] >= loser["karma"]
            if role == "syndicated":
                assert copy["jaccard"] >= 0.85
    survivors = [link for link in links if link["in_corpus"]]
    texts = [passages[link["passage"]].plain_text() for link in survivors]
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            assert jaccard(texts[i], texts[j]) < 0.1, (survivors[i]["url"], survivors[j]["url"])


def test_the_command_line_generates_the_same_web_and_serves_it(web: MiniWeb, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.miniweb", "--out", str(out), "--seed", str(SEED), "--small", "--serve"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("{"):
            line = process.stdout.readline()
            assert line, "the CLI exited early:\n" + "".join(lines)
            lines.append(line)
        connect_to = json.loads(lines[-1])
        url = web.expectations()["corpus_urls"][0]
        parts = urlsplit(url)
        target = ConnectTo(connect_to).lookup(parts.hostname, 80)
        page = httpx.get(f"http://{target.host}:{target.port}{parts.path}", headers={"Host": parts.hostname}, timeout=5)
        assert page.status_code == 200
    finally:
        stop_tree(process.pid)
        process.wait(timeout=10)
    assert tree(out) == tree(web.root)  # another process, the same bytes

"""The fetcher against a hostile local server: every failure ends with its own outcome, and ok pages reach the WARC."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hostile_server import HostileServer, closed_port, page_for
from warcio.archiveiterator import ArchiveIterator

from corpus.fetch import LOG_SCHEMA, OUTCOMES, FetchConfig, detect_charset, fetch_urls
from corpus.warc import iter_html_records

ROBOTS = {
    "robots.hostile.test": "User-agent: *\nDisallow: /private\n",
    "slow.hostile.test": "User-agent: *\nCrawl-delay: 1\n",
    "ua.hostile.test": "User-agent: WebTextBot\nDisallow: /\n\nUser-agent: *\nDisallow:\n",
}


def fast_config(server: HostileServer, **overrides) -> FetchConfig:
    """Small timeouts and caps so the whole hostile suite takes seconds."""
    settings = dict(
        concurrency=16,
        per_host=4,
        min_delay_s=0.0,
        connect_timeout_s=2.0,
        read_timeout_s=1.0,
        deadline_s=1.5,
        max_bytes=1 << 20,
        max_decompressed_bytes=1 << 20,
        max_retries=2,
        backoff_base_s=0.05,
        backoff_max_s=0.2,
        max_retry_after_s=2.0,
        progress_interval_s=0.5,
        connect_to={
            "*.hostile.test": f"127.0.0.1:{server.port}",
            "refused.test": f"127.0.0.1:{closed_port()}",
            "www.wwwonly.test": f"127.0.0.1:{server.port}",
        },
    )
    settings.update(overrides)
    return FetchConfig(**settings)


@pytest.fixture(scope="module")
def server():
    with HostileServer(robots=ROBOTS) as running:
        yield running


def h(host: str, path: str) -> str:
    return f"http://{host}.hostile.test{path}"


@pytest.fixture(scope="module")
def hostile_run(server, tmp_path_factory):
    """One crawl over every hostile endpoint (they run concurrently, so the suite takes a few seconds)."""
    expected = {
        h("ok", "/ok"): ("ok", 200, 1),
        h("drip", "/drip"): ("timeout", None, 1),
        h("endless", "/endless"): ("too_large", 200, 1),
        h("bomb", "/gzip-bomb"): ("too_large", 200, 1),
        h("loop", "/loop"): ("too_many_redirects", None, 1),
        h("hops", "/hop?n=5"): ("ok", 200, 1),
        h("redir", "/no-location"): ("http_error", 302, 1),  # a 3xx with nowhere to go is the page's answer
        h("redir", "/not-modified"): ("http_error", 304, 1),
        h("gzip", "/gzipped"): ("ok", 200, 1),
        h("robotsbomb", "/ok"): ("ok", 200, 1),
        h("redir", "/to-loopback"): ("blocked_address", None, 1),
        h("redir", "/to-metadata"): ("blocked_address", None, 1),
        h("redir", "/to-ipv6-loopback"): ("blocked_address", None, 1),
        h("robots", "/private/page"): ("robots_disallowed", None, 1),
        h("robots", "/public"): ("ok", 200, 1),
        h("ua", "/anything"): ("robots_disallowed", None, 1),
        h("retry", "/retry-after"): ("ok", 200, 2),
        h("retry", "/always-429"): ("http_error", 429, 3),
        h("retry", "/retry-after-long"): ("http_error", 429, 1),
        h("flaky", "/unavailable-once"): ("ok", 200, 2),
        h("flaky", "/error-once"): ("ok", 200, 2),  # 500 is retried like 503
        h("media", "/untyped-html"): ("ok", 200, 1),  # no Content-Type: the body is sniffed
        h("media", "/untyped-binary"): ("unsupported_content_type", 200, 1),
        h("endless", "/declared-large"): ("too_large", 200, 1),
        h("media", "/image.png"): ("unsupported_content_type", 200, 1),
        h("charset", "/bad-charset"): ("decode_error", 200, 1),
        h("ok", "/not-found"): ("http_error", 404, 1),
        h("slow", "/a"): ("ok", 200, 1),
        h("slow", "/b"): ("ok", 200, 1),
        h("slow", "/c"): ("ok", 200, 1),
        "http://does-not-exist.invalid/": ("dns_error", None, 1),
        "http://wwwonly.test/ok": ("ok", 200, 1),  # only www.wwwonly.test resolves: the www. fallback
        "http://refused.test/": ("connection_error", None, 3),
        f"http://localhost:{server.port}/ok": ("blocked_address", None, 1),
        f"http://127.0.0.1:{server.port}/ok": ("blocked_address", None, 1),
        "http://10.1.2.3/": ("blocked_address", None, 1),
        "http://[::ffff:127.0.0.1]/": ("blocked_address", None, 1),
        "ftp://example.com/file": ("invalid_url", None, 1),
        "http://xn--/": ("invalid_url", None, 1),  # a malformed IDNA label
        h("redir", "/to-bad-host"): ("http_error", None, 1),  # ... as a redirect's target
        h("redir", "/to-mailto"): ("http_error", None, 1),  # the URL was valid: where it redirects is not
    }
    out = tmp_path_factory.mktemp("hostile")
    reports: list[dict] = []
    began = time.monotonic()  # the server's clock: its request times are compared with it
    summary = fetch_urls(list(expected) + [h("ok", "/ok")], out, fast_config(server), progress=reports.append)
    rows = {row["url"]: row for row in pq.read_table(out / "log.parquet").to_pylist()}
    return expected, out, summary, rows, reports, began


def test_every_hostile_endpoint_ends_with_its_outcome(hostile_run):
    expected, _, summary, rows, _, _ = hostile_run
    assert set(rows) == set(expected), "exactly one row per distinct URL (the repeated /ok is not fetched twice)"
    got = {url: (row["outcome"], row["http_status"], row["attempts"]) for url, row in rows.items()}
    assert got == expected
    assert all(row["outcome"] in OUTCOMES for row in rows.values())
    assert sum(summary.outcomes.values()) == len(expected) == summary.fetched == summary.logged


def test_log_schema_and_errors_explain_failures(hostile_run):
    _, out, _, rows, _, _ = hostile_run
    assert pq.read_schema(out / "log.parquet").names == LOG_SCHEMA.names
    assert "169.254.169.254" in rows[h("redir", "/to-metadata")]["error"]
    assert rows[h("redir", "/to-metadata")]["final_url"].startswith("http://169.254.169.254/")
    assert "::1" in rows[h("redir", "/to-ipv6-loopback")]["error"]
    assert (
        "cannot resolve www.does-not-exist.invalid" in rows["http://does-not-exist.invalid/"]["error"]
    )  # the fallback
    assert "decompressed" in rows[h("bomb", "/gzip-bomb")]["error"]
    # refused on its Content-Length alone: the body's first bytes were never waited for
    assert rows[h("endless", "/declared-large")]["error"] == f"Content-Length {64 << 20} exceeds {1 << 20}"
    assert rows[h("charset", "/bad-charset")]["error"].startswith("no charset decodes the body as text")
    assert rows[h("endless", "/endless")]["bytes"] > 1 << 20
    assert rows[h("bomb", "/gzip-bomb")]["bytes"] < 100_000
    assert rows[h("gzip", "/gzipped")]["bytes"] < len(page_for("gzip.hostile.test", "/gzipped"))
    for row in rows.values():
        assert row["fetched_at"].endswith("Z")
        assert (row["warc_file"] is not None) == (row["outcome"] == "ok")


def test_ok_pages_are_in_the_warc_with_their_link_url(hostile_run):
    expected, out, summary, rows, _, _ = hostile_run
    assert not list((out / "warc").glob("*.open")) and not (out / "log.journal.jsonl").exists()
    pages = list(iter_html_records(sorted((out / "warc").glob("*.warc.gz"))))
    ok = {url for url, (outcome, _, _) in expected.items() if outcome == "ok"}
    assert sorted(page.link_url for page in pages) == sorted(ok)
    assert next(p.url for p in pages if "hops" in p.link_url) == h("hops", "/hop?n=0")  # the final URL
    assert rows[h("hops", "/hop?n=5")]["final_url"] == h("hops", "/hop?n=0")
    assert rows["http://wwwonly.test/ok"]["final_url"] == "http://www.wwwonly.test/ok"
    for page in pages:
        host = page.url.split("/")[2]
        path = "/" + page.url.split("/", 3)[3]
        assert page.url == page.link_url or "hops" in page.link_url or "wwwonly" in page.link_url
        assert page.status == 200
        assert page.body == page_for(host, path)
        if "untyped" in path:  # no Content-Type: taken for HTML by its body, its charset detected
            assert page.content_type == "" and page.charset == "ascii"
        else:
            assert page.charset == "utf-8" and page.content_type.startswith("text/html")
    # each response is preceded by its request as sent: the request line's target, and the response's status line
    records = []
    for path in sorted((out / "warc").glob("*.warc.gz")):
        with open(path, "rb") as stream:
            records += [
                (
                    r.rec_type,
                    r.rec_headers.get_header("WARC-Target-URI"),
                    r.http_headers.protocol,
                    r.http_headers.statusline,
                )
                for r in ArchiveIterator(stream)
                if r.rec_type in ("request", "response")
            ]
    for (kind, uri, method, line), (next_kind, next_uri, _, status) in zip(records[::2], records[1::2]):
        assert (kind, next_kind, uri) == ("request", "response", next_uri)
        assert method == "GET" and line == "/" + uri.split("/", 3)[3] + " HTTP/1.1" and status == "200 OK", uri


def test_robots_fetched_once_per_host_and_crawl_delay_honoured(server, hostile_run):
    assert server.hits[("slow.hostile.test", "/robots.txt")] == 1
    assert server.hits[("robots.hostile.test", "/robots.txt")] == 1
    began = hostile_run[-1]
    times = sorted(server.request_times("slow.hostile.test"))
    assert len(times) == 3
    # Crawl-delay: 1. The k-th page request starts at least k delays after the crawl began, and the server sees it
    # after it started: a bound that load cannot break (gaps between two arrivals can shrink when one comes late).
    early = {k: round(t - began, 3) for k, t in enumerate(times) if t < began + k * 1.0}
    assert not early, f"page requests that came before k x Crawl-delay (k: seconds after the start): {early}"


def test_progress_reports_counts_and_rate(hostile_run):
    expected, _, _, _, reports, _ = hostile_run
    final = reports[-1]
    assert final["done"] == len(expected) and final["total"] == len(expected) + 1 and final["skipped"] == 1
    assert sum(final["outcomes"].values()) == final["done"] and final["rate"] > 0


def test_retry_after_is_waited_for_and_one_past_the_bound_ends_the_url(server, tmp_path):
    """429 with Retry-After, in seconds and as an HTTP-date: the retry comes no sooner than asked (the backoff alone
    would retry within 0.3 s here); a Retry-After past max_retry_after_s is not waited for, the URL ends at once."""
    waits = {
        h("wait", "/retry-after?s=3"): 3.0,  # exactly at the bound: still honoured
        h("waitdate", "/retry-after?s=3&form=date"): 2.0,
    }  # the date has whole seconds: 2-3 s ahead
    too_long = [h("toolong", "/retry-after?s=3600"), h("toolongdate", "/retry-after?s=3600&form=date")]
    summary = fetch_urls(list(waits) + too_long, tmp_path, fast_config(server, max_retry_after_s=3.0))
    assert summary.outcomes == {"ok": 2, "http_error": 2}
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    for url, asked in waits.items():
        assert rows[url]["attempts"] == 2
        first, retry = server.request_times(url.split("/")[2])
        assert retry - first >= asked, (url, retry - first)
    for url in too_long:
        assert (rows[url]["outcome"], rows[url]["http_status"], rows[url]["attempts"]) == ("http_error", 429, 1)
        assert "exceeds the bound" in rows[url]["error"], rows[url]["error"]
        assert len(server.request_times(url.split("/")[2])) == 1


def test_a_retry_after_holds_off_the_whole_host(server, tmp_path):
    """A host that answers 429 with Retry-After is asked nothing else until then, not only not that URL again."""
    host = "holdoff.hostile.test"
    urls = [f"http://{host}/retry-after?s=2", *(f"http://{host}/page{i}" for i in range(4))]
    fetch_urls(urls, tmp_path, fast_config(server, per_host=2, max_retry_after_s=5.0))
    with server.lock:
        arrivals = sorted((t, path) for t, name, path in server.requests if name == host and path != "/robots.txt")
    refused = next(t for t, path in arrivals if path.startswith("/retry-after"))
    pages = [(round(t - refused, 3), path) for t, path in arrivals if path.startswith("/page")]
    # two slots: one page may be asked along with the 429'd URL, before its answer came; the others wait 2 s
    during = [(dt, path) for dt, path in pages if 0 <= dt < 2.0]
    assert len(pages) == 4 and len(during) <= 1, f"pages asked during the hold-off (s after the 429): {during}"


def test_private_addresses_allowed_when_asked(server, tmp_path):
    url = f"http://127.0.0.1:{server.port}/ok"
    summary = fetch_urls([url], tmp_path, fast_config(server, allow_private_addresses=True))
    assert summary.outcomes == {"ok": 1}


def test_min_delay_spaces_requests_to_one_host(server, tmp_path):
    """The delay spaces request starts to one host, robots.txt and redirect hops included: the k-th request to it
    starts no sooner than k delays after the crawl began. The server sees each request after it started, so its
    arrival times obey that bound exactly, however a loaded machine bunches them up (gaps between two arrivals do
    not: a late arrival shortens the next gap). Links name the host without `www.` and the requests go to its `www.`
    form, so the delay must follow the host actually requested."""
    delay = 0.25
    paced = "www.paced.hostile.test"
    pages = [(f"http://paced.hostile.test/p{i}", f"http://{paced}/p{i}") for i in range(4)]
    hops = [("http://paced.hostile.test/hop?n=2", f"http://{paced}/hop?n=2")]  # 3 requests, each waits its turn
    others = [h(f"other{i}", "/ok") for i in range(5)]
    began = time.monotonic()
    summary = fetch_urls(pages + hops + others, tmp_path, fast_config(server, min_delay_s=delay, per_host=2))
    assert summary.outcomes == {"ok": 10}
    with server.lock:
        arrivals = sorted(t for t, host, _ in server.requests if host == paced)
    assert len(arrivals) == 1 + 4 + 3  # robots.txt, the pages, the hops
    early = {k: round(t - began, 3) for k, t in enumerate(arrivals) if t < began + k * delay}
    assert not early, f"requests to {paced} that came too soon (k: seconds after start, bound k x {delay}): {early}"


def test_rerun_skips_urls_with_an_outcome(server, tmp_path):
    urls = [h("again", f"/r{i}") for i in range(4)]
    first = fetch_urls(urls[:2], tmp_path, fast_config(server))
    second = fetch_urls(urls, tmp_path, fast_config(server))
    assert (first.fetched, second.fetched, second.skipped, second.logged) == (2, 2, 2, 4)
    assert server.hits[("again.hostile.test", "/r0")] == 1
    pages = list(iter_html_records(sorted((tmp_path / "warc").glob("*.warc.gz"))))
    assert sorted(page.link_url for page in pages) == sorted(urls)


def test_a_crawler_error_ends_its_url_not_the_crawl(server, tmp_path, monkeypatch, caplog):
    """An exception the crawler did not foresee (a bug, a library's surprise) is that URL's outcome, with its name
    in `error` and its traceback in the log; the other URLs are fetched, and a re-run does not stop at it again.
    The fault is injected: every answer the hostile server gives is already handled."""
    from corpus import fetch

    real_read = fetch._Crawler._read

    async def read(self, visit, response):
        if visit.current_url.endswith("/broken"):
            raise KeyError("planted")
        return await real_read(self, visit, response)

    monkeypatch.setattr(fetch._Crawler, "_read", read)
    urls = [h("bug", "/broken"), h("bug", "/fine")]
    with caplog.at_level("ERROR", logger="corpus.fetch"):
        summary = fetch_urls(urls, tmp_path, fast_config(server))
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    assert summary.outcomes == {"crawler_error": 1, "ok": 1}
    assert rows[urls[0]]["outcome"] == "crawler_error" and rows[urls[0]]["error"] == "KeyError: 'planted'"
    assert rows[urls[0]]["attempts"] == 1  # not retried: it is no network failure
    assert any("Traceback" in (r.exc_text or "") or r.exc_info for r in caplog.records if urls[0] in r.getMessage())
    assert fetch_urls(urls, tmp_path, fast_config(server)).skipped == 2


def test_a_url_with_a_lone_surrogate_is_logged_not_requested(server, tmp_path):
    """JSON lets lone surrogates through, and such a URL has no UTF-8 form (nor a place in Parquet): it is logged as
    invalid_url under its U+FFFD form, the rest of the crawl goes on, and a re-run skips it."""
    urls = ["http://ok.hostile.test/\ud800x", h("ok", "/after-surrogate")]
    summary = fetch_urls(urls, tmp_path, fast_config(server))
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    assert summary.outcomes == {"invalid_url": 1, "ok": 1}
    assert rows["http://ok.hostile.test/\ufffdx"]["outcome"] == "invalid_url"
    assert "lone surrogate" in rows["http://ok.hostile.test/\ufffdx"]["error"]
    assert not any("x" == path[-1:] for _, host, path in server.requests if host == "ok.hostile.test")
    assert fetch_urls(urls, tmp_path, fast_config(server)).skipped == 2


@pytest.mark.parametrize(
    "body, content_type, expected",
    [
        ("héllo wörld".encode(), "text/html; charset=utf-8", {"utf-8"}),
        ("héllo wörld".encode("latin-1"), "text/html; charset=ISO-8859-1", {"iso8859-1"}),
        (b'<meta charset="windows-1252"><p>caf\xe9</p>', "text/html", {"cp1252"}),
        (b"\xef\xbb\xbf<p>bom</p>", "text/html; charset=latin-1", {"utf-8-sig"}),
        # an unknown declared charset falls through to detection (cp932 is Microsoft's superset of Shift JIS)
        (
            "<p>日本語のページです。これはテストです。</p>".encode("shift_jis") * 20,
            "text/html; charset=bogus",
            {"shift_jis", "cp932"},
        ),
        # names of Python codecs that are no web charset are passed over too (they raised, ending the whole crawl)
        *[
            ("<p>Café, a+b-c \\n</p>".encode(), f"text/html; charset={name}", {"utf-8", "utf_8"})
            for name in ("rot13", "base64", "hex", "zlib", "uu", "idna", "punycode", "unicode_escape")
        ],
        # ASCII that is valid UTF-7 too ("+ACI-" would be a quote): browsers refuse UTF-7, so it is read as ASCII
        (b"<p>Code +ACI-x+ACI- in a C+- post</p>", "text/html; charset=utf-7", {"ascii", "utf-8", "utf_8"}),
    ],
    ids=["header", "latin-1", "meta", "bom", "detected", "rot13", "base64", "hex", "zlib", "uu", "idna", "punycode"]
    + ["unicode_escape", "utf-7"],
)
def test_charset_detection(body, content_type, expected):
    assert detect_charset(body, content_type) in expected


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="concurrency"):
        FetchConfig(concurrency=0)
    with pytest.raises(ValueError, match="connect_to"):
        FetchConfig(connect_to={"a.test": "nope"})


def test_fetch_urls_from_inside_a_running_event_loop(server, tmp_path):
    async def caller():
        return fetch_urls([h("loopy", "/ok")], tmp_path, fast_config(server))

    assert asyncio.run(caller()).outcomes == {"ok": 1}


def test_url_sorted_input_does_not_starve_other_hosts(server, tmp_path):
    """links.parquet is sorted by URL, so one big site comes as one block: the frontier reads past it."""
    big = [h("big", f"/{i:02d}") for i in range(40)]  # more than the 32 URLs read ahead at concurrency 2
    small = [h(f"small{i}", "/ok") for i in range(6)]
    summary = fetch_urls(big + small, tmp_path, fast_config(server, concurrency=2, per_host=1, min_delay_s=0.1))
    assert summary.outcomes == {"ok": 46}
    big_times = server.request_times("big.hostile.test")
    small_times = [t for i in range(6) for t in server.request_times(f"small{i}.hostile.test")]
    assert max(small_times) < big_times[8]


def test_pairs_request_the_submitted_url_and_log_the_link(tmp_path: Path) -> None:
    """A (link URL, URL to request) pair: the request goes to the submitted form, the log and WARC keep the link."""
    body = b"<html><body><p>Only the submitted form of this URL is served.</p></body></html>"
    with HostileServer(pages={("www.news.test", "/story/"): (body, "text/html; charset=utf-8")}) as server:
        config = FetchConfig(
            connect_to={"*.news.test": f"127.0.0.1:{server.port}", "news.test": f"127.0.0.1:{server.port}"},
            min_delay_s=0.0,
        )
        link = "http://news.test/story"
        summary = fetch_urls([(link, "http://www.news.test/story/")], tmp_path, config)
        seen = {(host, path) for _, host, path in server.requests}
    assert summary.outcomes == {"ok": 1}
    assert ("www.news.test", "/story/") in seen and ("news.test", "/story") not in seen
    log = pq.read_table(tmp_path / "log.parquet").to_pylist()
    assert [(row["url"], row["final_url"]) for row in log] == [(link, "http://www.news.test/story/")]
    [page] = list(iter_html_records(sorted((tmp_path / "warc").glob("*.warc.gz"))))
    assert (page.link_url, page.url, page.body) == (link, "http://www.news.test/story/", body)

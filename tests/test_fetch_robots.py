"""robots.txt as RFC 9309 says: the crawler's decision (corpus.fetch.robots_allowed), section by section, and the
same decisions end to end through fetch_urls against a loopback server that serves the robots.txt files."""

from __future__ import annotations

import gzip

import pyarrow.parquet as pq
import pytest
from hostile_server import HostileServer

from corpus.fetch import FetchConfig, fetch_urls, robots_allowed
from corpus.robots import PARSE_LIMIT

UA = "WebTextBot/0.1 (research crawler)"  # its product token is WebTextBot


def allowed(robots: str | bytes, path: str, user_agent: str = UA) -> bool:
    body = robots.encode() if isinstance(robots, str) else robots
    return robots_allowed(body, user_agent, "https://site.test" + path)


# (robots.txt, path, allowed?) per RFC 9309 section; our own cases, written from the RFC's text and examples and
# from the behaviour of Google's reference parser (google/robotstxt) where the RFC leaves room.
CASES = {
    "2.1 no robots.txt rules": [
        ("", "/anything", True),
        ("Disallow: /\n", "/orphan-rule", True),  # a rule before any user-agent line
        ("Sitemap: https://site.test/sitemap.xml\n", "/x", True),
    ],
    "2.1 line syntax": [
        ("USER-AGENT: *\nDISALLOW: /Shop\n", "/Shop/1", False),  # names are case-insensitive
        ("user-agent: *\ndisallow: /Shop\n", "/shop/1", True),  # paths are not
        ("User-agent *\nDisallow /nocolon\n", "/nocolon", False),  # a missing colon, two words
        ("User-agent: *\nDisallow: /a # not /\n", "/b", True),  # comment
        ("User-agent: *\r\nDisallow: /crlf\r\n", "/crlf", False),
        ("User-agent: *\rDisallow: /cr\r", "/cr", False),
        ("User-agent: *\nDisallow: /last-line-no-newline", "/last-line-no-newline", False),
    ],
    "2.2.1 user-agent product token": [
        ("User-agent: WebTextBot\nDisallow: /\n", "/x", False),
        ("User-agent: webtextbot\nDisallow: /\n", "/x", False),  # case-insensitive
        ("User-agent: WEBTEXTBOT extra words\nDisallow: /\n", "/x", False),  # the token is the first word
        ("User-agent: WebTextBot/2.0\nDisallow: /\n", "/x", False),
        ("User-agent: Bot\nDisallow: /\n", "/x", True),  # no substring match
        ("User-agent: TextBot\nDisallow: /\n", "/x", True),
        ("User-agent: WebTextBotNext\nDisallow: /\n", "/x", True),
        ("User-agent: WebText\nDisallow: /\n", "/x", True),  # nor prefix match
        ("User-agent: *bot\nDisallow: /\n", "/x", True),  # not a token, not `*`
        ("User-agent: WebTextBot\nAllow: /\n\nUser-agent: *\nDisallow: /\n", "/x", True),  # ours beats `*`
        ("User-agent: *\nDisallow: /\n\nUser-agent: OtherBot\nAllow: /\n", "/x", False),  # `*` when none is ours
        ("User-agent: WebTextBot\nAllow: /unrelated\n\nUser-agent: *\nDisallow: /\n", "/x", True),  # ours only
        # Crawl-delay is no rule, so it does not end the run of user-agent lines (as Google's parser reads it)
        ("User-agent: WebTextBot\nCrawl-delay: 5\n\nUser-agent: *\nDisallow: /\n", "/x", False),
    ],
    "2.2.1 groups": [
        # several user-agent lines open one group, blank lines included
        ("User-agent: OtherBot\n\nUser-agent: WebTextBot\nDisallow: /shared\n", "/shared", False),
        # a blank line does not end a group
        ("User-agent: WebTextBot\nDisallow: /a\n\nDisallow: /b\n", "/b", False),
        # a user-agent line after rules opens a new group
        ("User-agent: WebTextBot\nDisallow: /a\nUser-agent: OtherBot\nDisallow: /b\n", "/b", True),
        # groups for the same agent are merged
        (
            "User-agent: WebTextBot\nDisallow: /a\n\nUser-agent: OtherBot\nDisallow: /\n\nUser-agent: webtextbot\n"
            "Disallow: /c\n",
            "/c",
            False,
        ),
        (
            "User-agent: WebTextBot\nDisallow: /a\n\nUser-agent: OtherBot\nDisallow: /\n\nUser-agent: webtextbot\n"
            "Disallow: /c\n",
            "/a",
            False,
        ),
        # Crawl-delay between user-agent lines does not split them
        ("User-agent: OtherBot\nCrawl-delay: 3\nUser-agent: WebTextBot\nDisallow: /cd\n", "/cd", False),
    ],
    "2.2.2 longest match, Allow wins a tie": [
        ("User-agent: *\nAllow: /folder/\nDisallow: /folder/page\n", "/folder/page", False),
        ("User-agent: *\nDisallow: /folder/\nAllow: /folder/page\n", "/folder/page", True),
        ("User-agent: *\nDisallow: /folder/\nAllow: /folder/page\n", "/folder/other", False),
        ("User-agent: *\nDisallow: /same\nAllow: /same\n", "/same", True),
        ("User-agent: *\nDisallow: /\nAllow: /\n", "/x", True),
        ("User-agent: *\nDisallow:\n", "/x", True),  # an empty Disallow forbids nothing
        ("User-agent: *\nAllow: /p\nDisallow: /\n", "/page", True),
        ("User-agent: *\nAllow: /page\nDisallow: /*.htm\n", "/page.htm", False),  # 6 octets beat 5
        ("User-agent: *\nDisallow: /\n", "/robots.txt", True),  # robots.txt itself is always allowed
    ],
    "2.2.3 special characters * and $": [
        ("User-agent: *\nDisallow: /*?\n", "/search?q=1", False),
        ("User-agent: *\nDisallow: /*?\n", "/search", True),
        ("User-agent: *\nDisallow: /*.pdf$\n", "/docs/a.pdf", False),
        ("User-agent: *\nDisallow: /*.pdf$\n", "/docs/a.pdf?x=1", True),
        ("User-agent: *\nDisallow: /search*\n", "/searching", False),
        ("User-agent: *\nDisallow: /a*b*c\n", "/a-x-b-y-c-z", False),
        ("User-agent: *\nDisallow: /a*b*c\n", "/a-x-c-y-b", True),
        ("User-agent: *\nDisallow: /exact$\n", "/exact", False),
        ("User-agent: *\nDisallow: /exact$\n", "/exact/more", True),
        ("User-agent: *\nAllow: /$\nDisallow: /\n", "/", True),
        ("User-agent: *\nAllow: /$\nDisallow: /\n", "/page", False),
        ("User-agent: *\nDisallow: /file-%2A.html\n", "/file-*.html", False),  # %2A is a literal *
        ("User-agent: *\nDisallow: /file-%2A.html\n", "/file-x.html", True),
        ("User-agent: *\nDisallow: /price-%24\n", "/price-$", False),  # %24 is a literal $
    ],
    "2.2.2 percent-encoding": [
        ("User-agent: *\nDisallow: /caf%C3%A9\n", "/café", False),  # non-ASCII in the path
        ("User-agent: *\nDisallow: /café\n", "/caf%C3%A9", False),  # non-ASCII in the rule
        ("User-agent: *\nDisallow: /ツ\n", "/%E3%83%84", False),
        ("User-agent: *\nDisallow: /%e3%83%84\n", "/%E3%83%84", False),  # escape case does not matter
        ("User-agent: *\nDisallow: /%62%61%7A\n", "/baz", False),  # escapes of unreserved characters
        ("User-agent: *\nDisallow: /baz\n", "/%62az", False),
        ("User-agent: *\nDisallow: /%aa\n", "/%AA", False),  # not UTF-8: still one octet
        ("User-agent: *\nDisallow: /%aa\n", "/%AB", True),  # ... and not every such octet
        ("User-agent: *\nDisallow: /a%2Fb\n", "/a/b", True),  # an escaped / is not a /
        ("User-agent: *\nDisallow: /q?a=http://x.test/?b&c\n", "/q?a=http://x.test/?b&c", False),
        (b"User-agent: *\nDisallow: /\xe9t\xe9\n", "/%E9t%E9", False),  # a Latin-1 robots.txt: its octets
        (b"User-agent: *\nDisallow: /\xe9t\xe9\n", "/%C3%A9t%C3%A9", True),
    ],
    "2.3 byte-order mark": [
        (b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n", "/x", False),
        (b"\xef\xbbUser-agent: *\nDisallow: /\n", "/x", False),  # a partial one too
        (b"User-agent: *\n\xef\xbb\xbfDisallow: /\n", "/x", True),  # only at the start of the file
    ],
}


@pytest.mark.parametrize(
    "robots, path, expected",
    [case for cases in CASES.values() for case in cases],
    ids=[f"{section}-{i}" for section, cases in CASES.items() for i in range(len(cases))],
)
def test_rfc9309_decisions(robots, path, expected):
    assert allowed(robots, path) is expected


def test_user_agent_token_from_the_header():
    robots = "User-agent: *\nDisallow: /\n\nUser-agent: FooBot\nAllow: /\n"
    assert allowed(robots, "/x", "FooBot")
    assert allowed(robots, "/x", "FooBot/1.2 (+https://example.test/bot)")
    assert allowed(robots, "/x", "foobot")
    assert not allowed(robots, "/x", "Foo Bot")  # not a product token: only `*` applies
    assert not allowed(robots, "/x", "")
    assert allowed("User-agent: FooBot\nDisallow: /\n", "/x", "")  # no group for it at all


def test_parse_limit_500_kib():
    """RFC 9309 2.5: at least 500 KiB are parsed; what follows is not, nor a rule cut in two at the limit."""

    def robots_txt(size_before_cut: int) -> str:
        head = "User-agent: *\nDisallow: /early\n"
        comments = "".join(f"# {i:078d}\n" for i in range((size_before_cut - len(head)) // 81))
        head += comments + "#" * (size_before_cut - len(head) - len(comments) - 1) + "\n"
        return head + "Disallow: /cut-rule\nDisallow: /late\n"  # `Disallow: /cut` is the part before the limit

    body = robots_txt(PARSE_LIMIT - len("Disallow: /cut"))
    assert not allowed(body, "/early")
    assert allowed(body, "/late")
    assert allowed(body, "/cut")  # a cut rule is dropped, not read as a shorter one
    small = robots_txt(PARSE_LIMIT // 2)
    assert not allowed(small, "/late") and not allowed(small, "/cut-rule") and allowed(small, "/cut")


def test_robots_txt_must_be_bytes():
    with pytest.raises(TypeError, match="robots_txt must be the bytes"):
        robots_allowed("User-agent: *\nDisallow: /\n", UA, "/x")  # type: ignore[arg-type]


def test_crawl_delay_of_our_group():
    from corpus.robots import RobotsRules

    robots = (
        b"User-agent: *\nDisallow: /x\nCrawl-delay: 9\n\n"
        b"User-agent: OtherBot\nUser-agent: WebTextBot\nCrawl-delay: 2.5\n"
    )
    assert RobotsRules.parse(robots, UA).crawl_delay == 2.5
    assert RobotsRules.parse(robots, "SomeoneElse").crawl_delay == 9


# ---------------------------------------------------------------------------------------------------------------
# End to end: fetch_urls against a server that serves these robots.txt files


def redirect(location: str) -> tuple[int, bytes, dict[str, str]]:
    return 301, b"", {"Location": location}


# /robots-hop?n=K makes K+1 more redirects: with the first from /robots.txt, K+2 in all (RFC 9309 2.3.1.2: follow 5).
FINAL = "to=http://final.robots.test/robots.txt"
# a robots.txt whose first 500 KiB (the parse limit) end inside a rule: "Disallow: /cut" of "Disallow: /cutrule"
CUT_HEAD = "User-agent: *\nDisallow: /early\n"
CUT_FILLER = "#" * (PARSE_LIMIT - len(CUT_HEAD) - len("Disallow: /cut") - 1) + "\n"
ROBOTS = {
    "bom.robots.test": b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n",
    "token.robots.test": "User-agent: WebTextBot crawler\nDisallow: /private\n\nUser-agent: *\nDisallow: /\n",
    "substring.robots.test": "User-agent: Bot\nDisallow: /\n",
    "longest.robots.test": "User-agent: *\nDisallow: /*.html$\nAllow: /keep/\nDisallow: /keep/secret\n",
    "wildcard.robots.test": "User-agent: *\nDisallow: /*?\n",
    "groups.robots.test": (
        "User-agent: webtextbot\nDisallow: /a\n\nDisallow: /b\n\nUser-agent: other\nDisallow: /\n\n"
        "User-agent: WEBTEXTBOT\nDisallow: /c\n"
    ),
    "escapes.robots.test": "User-agent: *\nDisallow: /%aa\nDisallow: /caf%C3%A9\n",
    "status503.robots.test": (503, b"busy", {}),
    "status500.robots.test": (500, b"error", {}),
    # a 3xx without a Location to follow: robots.txt is unavailable (Google: past the redirects, read as a 404)
    "status300.robots.test": (300, b"User-agent: *\nDisallow: /\n", {}),
    "status429.robots.test": (429, b"slow down", {}),
    "status404.robots.test": (404, b"", {}),
    "status403.robots.test": (403, b"", {}),
    "redirect5.robots.test": redirect(f"/robots-hop?n=3&{FINAL}"),
    "redirect6.robots.test": redirect(f"/robots-hop?n=4&{FINAL}"),
    "final.robots.test": "User-agent: *\nDisallow: /\n",
    "big.robots.test": "User-agent: *\nDisallow: /early\n" + "#" * PARSE_LIMIT + "\nDisallow: /late\n",
    "cut.robots.test": CUT_HEAD + CUT_FILLER + "Disallow: /cutrule\n",  # the cut line is dropped, not read as /cut
    "gzip.robots.test": (200, gzip.compress(b"User-agent: *\nDisallow: /\n"), {"Content-Encoding": "gzip"}),
}

PATHS = {
    "bom": {"/x": False},
    "token": {"/public": True, "/private/x": False},
    "substring": {"/x": True},
    "longest": {"/keep/page": True, "/keep/a.html": False, "/keep/secret-1": False, "/x.htm": True},
    "wildcard": {"/search": True, "/search?q=1": False},
    "groups": {"/a": False, "/b": False, "/c": False, "/d": True},
    "escapes": {"/%AA": False, "/%AB": True, "/café": False, "/cafe": True},
    "status503": {"/x": False},
    "status500": {"/x": False},
    "status300": {"/x": True},
    "status429": {"/x": False},
    "status404": {"/x": True},
    "status403": {"/x": True},
    "redirect5": {"/x": False},  # five redirects followed: the final robots.txt forbids everything
    "redirect6": {"/x": True},  # six: robots.txt is unavailable, so nothing is forbidden
    "big": {"/early": False, "/late": True},
    "cut": {"/early": False, "/cutx": True, "/cutrule": True},
    "gzip": {"/x": False},
}


def robots_config(server: HostileServer, **overrides) -> FetchConfig:
    settings = dict(
        concurrency=16,
        per_host=2,
        min_delay_s=0.0,
        deadline_s=3.0,
        max_retries=0,
        user_agent=UA,
        connect_to={"*.robots.test": f"127.0.0.1:{server.port}", "*.slow.test": f"127.0.0.1:{server.port}"},
    )
    settings.update(overrides)
    return FetchConfig(**settings)


def test_fetch_urls_obeys_robots_txt_as_robots_allowed_decides(tmp_path):
    urls = {f"http://{name}.robots.test{path}": want for name, paths in PATHS.items() for path, want in paths.items()}
    with HostileServer(robots=ROBOTS) as server:
        summary = fetch_urls(list(urls), tmp_path, robots_config(server))
        requested = {(host, path) for _, host, path in server.requests}
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    for url, want in urls.items():
        host, path = url.split("/")[2], "/" + url.split("/", 3)[3]
        body = ROBOTS[host]
        if isinstance(body, (str, bytes)):  # a robots.txt served with 200: the library call decides the same
            assert robots_allowed(body.encode() if isinstance(body, str) else body, UA, url) is want, url
        assert rows[url]["outcome"] == ("ok" if want else "robots_disallowed"), (url, rows[url])
        assert ((host, path.replace("é", "%C3%A9")) in requested) is want, url  # a forbidden page is never asked for
    assert rows["http://status503.robots.test/x"]["error"] == "robots.txt HTTP 503"
    assert ("final.robots.test", "/robots.txt") in requested
    assert summary.outcomes == {"ok": sum(urls.values()), "robots_disallowed": len(urls) - sum(urls.values())}


def test_unreachable_robots_txt_forbids_the_site_only_for_a_while(tmp_path):
    """RFC 9309 2.3.1.4: a 5xx robots.txt means keep out, but it is asked again after robots_error_cache_s,
    while a robots.txt that was read is kept (robots_cache_s)."""
    robots = {
        "flaky.robots.test": [(503, b"busy", {}), "User-agent: *\nDisallow: /no\n"],
        "steady.robots.test": ["User-agent: *\nDisallow: /no\n", (503, b"busy", {})],
    }
    urls = [f"http://{host}.robots.test{path}" for host in ("flaky", "steady") for path in ("/a", "/b", "/no")]
    with HostileServer(robots=robots) as server:
        # one URL per host at a time, 0.5 s apart: past the 0.3 s a 5xx answer is kept
        config = robots_config(server, per_host=1, min_delay_s=0.5, robots_error_cache_s=0.3)
        fetch_urls(urls, tmp_path, config)
        hits = dict(server.hits)
    outcomes = {row["url"]: row["outcome"] for row in pq.read_table(tmp_path / "log.parquet").to_pylist()}
    assert outcomes == {
        "http://flaky.robots.test/a": "robots_disallowed",
        "http://flaky.robots.test/b": "ok",
        "http://flaky.robots.test/no": "robots_disallowed",
        "http://steady.robots.test/a": "ok",
        "http://steady.robots.test/b": "ok",
        "http://steady.robots.test/no": "robots_disallowed",
    }
    assert hits[("flaky.robots.test", "/robots.txt")] == 2 and hits[("steady.robots.test", "/robots.txt")] == 1


def test_robots_cache_keeps_the_origins_used_last(tmp_path):
    """At most `robots_cache_size` robots.txt are kept, and the one used longest ago is dropped first."""
    robots = {f"{name}.robots.test": "User-agent: *\nDisallow: /no\n" for name in "abc"}
    urls = [f"http://{host}.robots.test/{n}" for host, n in ("a1", "b1", "a2", "c1", "a3", "c2")]
    with HostileServer(robots=robots) as server:
        # one worker, reading one URL ahead: the URLs are visited in their order
        config = robots_config(server, concurrency=1, robots_cache_size=2, frontier_max_urls=1)
        fetch_urls(urls, tmp_path, config)
        order = [(host[0], path) for _, host, path in server.requests]
    assert order == [
        ("a", "/robots.txt"), ("a", "/1"),
        ("b", "/robots.txt"), ("b", "/1"),
        ("a", "/2"),  # kept, and now used last
        ("c", "/robots.txt"), ("c", "/1"),  # b, used longest ago, is dropped for c
        ("a", "/3"), ("c", "/2"),  # both still kept
    ]  # fmt: skip


def test_robots_txt_fetch_has_the_request_deadline(tmp_path):
    """A robots.txt that never ends is given `deadline_s`, like any request, not the URL's whole deadline."""
    with HostileServer() as server:
        config = robots_config(server, deadline_s=1.0, url_deadline_s=5.0)
        fetch_urls(["http://robotsdrip.slow.test/page"], tmp_path, config)
        requested = [path for _, _, path in server.requests]
    [row] = pq.read_table(tmp_path / "log.parquet").to_pylist()
    assert row["outcome"] == "timeout" and "URL deadline" not in row["error"], row
    assert requested == ["/robots.txt"]  # the page is never asked for


def test_robots_cache_settings_are_checked():
    with pytest.raises(ValueError, match="robots_error_cache_s"):
        FetchConfig(robots_error_cache_s=0)
    with pytest.raises(ValueError, match="url_deadline_s"):
        FetchConfig(url_deadline_s=-1)
    with pytest.raises(ValueError, match=r"url_deadline_s \(5\) must be at least deadline_s \(10\)"):
        FetchConfig(deadline_s=10, url_deadline_s=5)
    assert FetchConfig(deadline_s=10).url_deadline_s == 50  # by default it follows the per-request deadline


# ---------------------------------------------------------------------------------------------------------------
# The per-URL deadline: redirects and retries together


def test_url_deadline_bounds_redirects_and_retries(tmp_path):
    slow_chain = "http://chain.slow.test/slow-hop?n=4&ms=300"  # 5 requests of 0.3 s: each well within deadline_s
    retried = "http://retry.slow.test/always-429"  # Retry-After: 1, three retries
    with HostileServer() as server:
        config = robots_config(server, deadline_s=1.0, url_deadline_s=1.0, max_retries=3, max_retry_after_s=5.0)
        fetch_urls([slow_chain, retried], tmp_path / "bounded", config)
        bounded_hops = sum(
            1 for _, host, path in server.requests if host == "chain.slow.test" and path != "/robots.txt"
        )
        fetch_urls([slow_chain], tmp_path / "unbounded", robots_config(server, deadline_s=1.0, url_deadline_s=30.0))
    rows = {row["url"]: row for row in pq.read_table(tmp_path / "bounded" / "log.parquet").to_pylist()}
    assert rows[slow_chain]["outcome"] == "timeout" and "URL deadline of 1 s" in rows[slow_chain]["error"]
    assert rows[slow_chain]["final_url"].startswith("http://chain.slow.test/slow-hop?n=")
    assert bounded_hops < 5
    assert rows[retried]["outcome"] == "timeout" and rows[retried]["attempts"] >= 1
    assert "URL deadline" in rows[retried]["error"]
    [unbounded] = pq.read_table(tmp_path / "unbounded" / "log.parquet").to_pylist()
    assert unbounded["outcome"] == "ok"  # the same chain, given time: only the URL deadline stopped it


ROBOTS_FOR_URL_FORMS = b"User-agent: *\nDisallow: /page$\nDisallow: /private\nDisallow: /$\nDisallow: /*?q=\n"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://example.com/page#section", False),  # the fragment is never sent: /page is what is matched
        ("http://example.com/page#a#b", False),
        ("http://example.com/pages", True),
        ("//example.com/private/x", False),  # scheme-relative
        ("/private/x", False),  # a bare path
        ("example.com/private/x", False),  # host and path without a scheme
        ("http://example.com", False),  # no path: "/", which `Disallow: /$` names
        ("http://example.com/", False),
        ("http://example.com?q=1", False),  # a query straight after the host: "/?q=1"
        ("http://example.com/open?q=1", False),
        ("http://example.com/open?p=1", True),
    ],
)
def test_the_path_matched_is_the_one_the_request_sends(url: str, allowed: bool) -> None:
    assert robots_allowed(ROBOTS_FOR_URL_FORMS, UA, url) is allowed

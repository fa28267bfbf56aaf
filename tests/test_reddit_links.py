"""Reddit dump reading (every compression), URL canonicalization, blocklists and link harvesting."""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.links import (
    DROP_REASONS,
    LINKS_SCHEMA,
    LinkConfig,
    aggregate_unit,
    finish_links,
    harvest_links,
    plan_aggregation,
    plan_links,
    read_dump,
)
from corpus.reddit import iter_submissions, write_submissions
from corpus.urls import (
    CANONICAL_FORM,
    canonicalize_url,
    has_blocked_extension,
    is_blocked_domain,
    is_reddit_url,
    registered_domain,
    url_host,
)

RECORDS = [
    {
        "id": "a1",
        "subreddit": "news",
        "score": 5,
        "url": "http://www.Example.com/story/?utm_source=rss#c",
        "is_self": False,
        "over_18": False,
        "created_utc": 1400000000,
        "title": "Story",
        "domain": "example.com",
    },
    {
        "id": "a2",
        "subreddit": "news",
        "score": 1,
        "url": "https://example.org/ünïcode",
        "is_self": False,
        "over_18": False,
        "created_utc": 1400000001.0,
        "title": "Ünïcode title ✓",
        "domain": "example.org",
    },
    {
        "id": "a3",
        "subreddit": "AskReddit",
        "score": 9,
        "url": "https://www.reddit.com/r/AskReddit/x/",
        "is_self": True,
        "over_18": False,
        "created_utc": "1400000002",
        "title": "Q",
        "domain": "self.AskReddit",
    },
]


def normalized(records):
    return [{**r, "created_utc": int(float(r["created_utc"]))} for r in records]


@pytest.mark.parametrize("suffix", [".zst", ".bz2", ".xz", ".gz", ".json", ".ndjson", ""])
def test_every_dump_format_round_trips(tmp_path, suffix):
    path = write_submissions(tmp_path / f"RS_2014-05{suffix}", RECORDS)
    assert path.name == f"RS_2014-05{suffix}" and not list(tmp_path.glob(".*tmp"))
    assert list(iter_submissions(path)) == normalized(RECORDS)


def test_zst_dump_is_a_real_zstd_frame_and_multiple_frames_are_read(tmp_path):
    path = write_submissions(tmp_path / "RS_2017-06.zst", RECORDS[:2])
    data = path.read_bytes()
    assert data[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    assert zstandard.get_frame_parameters(data).window_size > 0
    # Concatenated frames (as some re-packed dumps have) are one stream.
    extra = zstandard.ZstdCompressor().compress(json.dumps(RECORDS[2]).encode() + b"\n")
    path.write_bytes(data + extra)
    assert [r["id"] for r in iter_submissions(path)] == ["a1", "a2", "a3"]


def test_long_window_zst_needs_and_gets_a_large_window(tmp_path):
    """Pushshift 2019+ dumps use --long=31 windows; the default decoder limit (128 MiB) rejects them."""
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28, enable_ldm=True)
    path = tmp_path / "RS_2019-01.zst"
    with path.open("wb") as raw, zstandard.ZstdCompressor(compression_params=params).stream_writer(raw) as writer:
        writer.write(json.dumps(RECORDS[0]).encode() + b"\n")  # streamed: the frame declares the full window
    assert zstandard.get_frame_parameters(path.read_bytes()).window_size == 2**28
    with pytest.raises(zstandard.ZstdError, match="too much memory"), path.open("rb") as raw:
        zstandard.ZstdDecompressor().stream_reader(raw).read()
    assert [r["id"] for r in iter_submissions(path)] == ["a1"]


def test_malformed_lines_are_counted_and_reported_with_line_numbers(tmp_path, caplog):
    path = tmp_path / "RS_mixed.json"
    path.write_bytes(
        b"\n".join(
            [
                json.dumps(RECORDS[0]).encode(),
                b"{not json",
                b"",
                json.dumps([1, 2]).encode(),
                b"\xff\xfe bad utf8",
                json.dumps({**RECORDS[1], "created_utc": "yesterday"}).encode(),
                json.dumps(RECORDS[2]).encode(),
            ]
        )
        + b"\n"
    )
    seen = []
    records = list(iter_submissions(path, on_malformed=lambda p, n, why: seen.append((p.name, n))))
    assert [r["id"] for r in records] == ["a1", "a3"]
    assert seen == [("RS_mixed.json", 2), ("RS_mixed.json", 4), ("RS_mixed.json", 5), ("RS_mixed.json", 6)]
    with caplog.at_level(logging.WARNING):
        stats = harvest_links([path], tmp_path / "links.parquet", LinkConfig(cutoff=None, min_karma=1))
    assert stats.dropped["malformed_line"] == 4 and stats.submissions == 6
    assert "RS_mixed.json:2" in caplog.text and "RS_mixed.json:6" in caplog.text


def test_created_utc_out_of_range_is_a_malformed_line(tmp_path):
    """Infinite, NaN, negative or past-int64 times raised OverflowError (or failed the spill to Arrow's int64), which
    ended the links stage at the dump; such a line is now skipped and counted like any malformed one."""
    bad = ["inf", "-inf", "nan", -1, 10**30, -(10**30), "1e400", 2**40]
    lines = [json.dumps({**RECORDS[0], "id": f"bad{i}", "created_utc": value}) for i, value in enumerate(bad)]
    lines.append(json.dumps(RECORDS[0]).replace(str(RECORDS[0]["created_utc"]), "1e400"))  # a JSON number: inf
    path = tmp_path / "RS_times.jsonl"
    path.write_text("\n".join([*lines, json.dumps(RECORDS[1])]) + "\n")
    seen = []
    assert [r["id"] for r in iter_submissions(path, on_malformed=lambda p, n, why: seen.append(why))] == ["a2"]
    assert len(seen) == len(bad) + 1 and all("created_utc" in why for why in seen), seen
    stats = harvest_links([path], tmp_path / "links.parquet", LinkConfig(cutoff=None, min_karma=1))
    assert stats.dropped["malformed_line"] == len(bad) + 1 and stats.kept == 1


@pytest.mark.parametrize("suffix", [".json", ".zst", ".bz2"])
def test_an_overlong_line_is_skipped_without_being_held(tmp_path, monkeypatch, suffix):
    """A dump with a line longer than MAX_LINE_BYTES (a file of another kind, one without line breaks) was read as one
    line, all of it in memory (a 400 MB one peaked at 957 MiB); it is now read through in pieces and reported as one
    malformed line, and the submissions around it are kept."""
    import bz2

    import corpus.reddit

    monkeypatch.setattr(corpus.reddit, "MAX_LINE_BYTES", 1000)
    data = b"\n".join(
        [json.dumps(RECORDS[0]).encode(), b"x" * 5000, b"y" * 1001, b"z" * 1000, json.dumps(RECORDS[1]).encode()]
    )
    compress = {".json": bytes, ".zst": zstandard.ZstdCompressor().compress, ".bz2": bz2.compress}[suffix]
    path = tmp_path / f"RS_long{suffix}"
    path.write_bytes(compress(data + b"\n"))
    seen = []
    records = list(iter_submissions(path, on_malformed=lambda p, n, why: seen.append((n, why))))
    assert [r["id"] for r in records] == ["a1", "a2"]
    assert [n for n, _ in seen] == [2, 3, 4] and "longer than 1000 bytes" in seen[0][1]
    assert "longer" not in seen[2][1]  # 1,000 bytes is no more than the limit: read, and not JSON


def test_missing_and_corrupt_dumps_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="RS_missing.zst"):
        list(iter_submissions(tmp_path / "RS_missing.zst"))
    with pytest.raises(FileNotFoundError, match="RS_missing.zst"):
        harvest_links([tmp_path / "RS_missing.zst"], tmp_path / "links.parquet")
    corrupt = tmp_path / "RS_corrupt.zst"
    corrupt.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="RS_corrupt.zst"):
        list(iter_submissions(corrupt))
    truncated = tmp_path / "RS_truncated.xz"
    write_submissions(tmp_path / "RS_full.xz", RECORDS * 50)
    truncated.write_bytes((tmp_path / "RS_full.xz").read_bytes()[:-40])
    with pytest.raises(ValueError, match="RS_truncated.xz"):
        list(iter_submissions(truncated))
    assert not (tmp_path / "links.parquet").exists()


@pytest.mark.parametrize(
    "url, canonical",
    [
        ("http://www.Example.com:80/a/?utm_source=x&b=2&a=1#top", "http://example.com/a?a=1&b=2"),
        ("HTTPS://WWW.EXAMPLE.COM:443", "https://example.com/"),
        ("https://example.com:8443/x/", "https://example.com:8443/x"),
        ("https://example.com/?fbclid=abc&gclid=def&utm_medium=m&utm_campaign=c", "https://example.com/"),
        ("https://example.com/p?id=7&UTM_Source=s&msclkid=1&mc_eid=2", "https://example.com/p?id=7"),
        ("https://example.com/p?b=2&a=1&a=0", "https://example.com/p?a=0&a=1&b=2"),
        # a parameter's name ends at its first `=` (WHATWG urlencoded parsing), whatever its value holds
        ("https://example.com/p?id=1&utm_term=a=b&fbclid=IwAR0==", "https://example.com/p?id=1"),
        ("https://example.com/a/b/", "https://example.com/a/b"),
        ("https://example.com/%7euser/%2f%20x", "https://example.com/~user/%2F%20x"),
        ("http://user:pw@example.com/x", "http://example.com/x"),
        ("http://nola.com/x.ssf?/base/n.xml&amp;coll=1", "http://nola.com/x.ssf?/base/n.xml&coll=1"),
        ("https://news.bbc.co.uk./a#b", "https://news.bbc.co.uk/a"),
        ("https://münchen.de/", "https://xn--mnchen-3ya.de/"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("  http://example.com/x  ", "http://example.com/x"),
        ("https://www.google.com/search?q=webtext", "https://google.com/search?q=webtext"),
        # `%` only starts an escape (RFC 3986 2.4): one that starts none is the character itself, encoded
        ("http://example.com/100%?q=50%off", "http://example.com/100%25?q=50%25off"),
        ("https://example.com//", "https://example.com/"),  # trailing slashes, also a root of two
        ("https://example.com/Docs/INDEX/", "https://example.com/Docs/INDEX"),  # only slashes go
        ("http://example.com:1/x", "http://example.com:1/x"),  # the ends of the TCP port range
        ("http://example.com:65535/x", "http://example.com:65535/x"),
    ],
)
def test_canonicalize_url(url, canonical):
    assert canonicalize_url(url) == canonical
    assert canonicalize_url(canonical) == canonical  # idempotent


# Pairs that name one request: httpx sends them alike, or RFC 3986 (6.2.2) makes them equivalent.
@pytest.mark.parametrize(
    "a, b",
    [
        ("http://faß.de/", "http://xn--fa-hia.de/"),  # IDNA 2008 keeps ß: its own A-label
        ("http://MÜNCHEN.de/", "http://xn--mnchen-3ya.de/"),
        ("http://example.com/a/./b", "http://example.com/a/b"),  # dot-segments (RFC 3986 5.2.4)
        ("http://example.com/a/c/../b", "http://example.com/a/b"),
        ("http://example.com/../foo", "http://example.com/foo"),
        ("http://example.com/a/%2E/b", "http://example.com/a/b"),  # an escaped dot is a dot
        ("http://example.com/a/b/..", "http://example.com/a"),
        ("http://example.com/résumé", "http://example.com/r%C3%A9sum%C3%A9"),
        ("http://example.com/?q=café", "http://example.com/?q=caf%C3%A9"),
        ("http://example.com/a|b", "http://example.com/a%7Cb"),  # unsafe ASCII, encoded as a server reads it
        ('http://example.com/a"b', "http://example.com/a%22b"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/%7euser", "http://example.com/~user"),  # escapes of unreserved characters decoded
        ("http://example.com/a%2fb", "http://example.com/a%2Fb"),  # escape case (RFC 3986 6.2.2.1)
        ("http://example.com/?q=%c3%a9", "http://example.com/?q=%C3%A9"),
        ("http://example.com/?utm%5Fsource=x&a=1", "http://example.com/?a=1"),
    ],
)
def test_equivalent_urls_share_a_key(a, b):
    assert canonicalize_url(a) == canonicalize_url(b)


# Pairs that are different requests (different sites or different paths): never one key.
@pytest.mark.parametrize(
    "a, b",
    [
        ("http://faß.de/", "http://fass.de/"),  # IDNA 2003 mapped ß to ss
        ("http://straße.de/", "http://strasse.de/"),
        ("http://βόλος.com/", "http://βόλοσ.com/"),  # final sigma is its own letter
        ("http://example.com/a%2Fb", "http://example.com/a/b"),  # an escaped reserved character is data
        ("http://example.com/a%3Fb", "http://example.com/a?b"),
        ("http://example.com/?a=1%262", "http://example.com/?a=1&2"),
        ("http://example.com/a+b", "http://example.com/a%20b"),
        ("http://example.com/%aa", "http://example.com/%AB"),
        ("http://example.com/A", "http://example.com/a"),
    ],
)
def test_different_requests_never_share_a_key(a, b):
    assert canonicalize_url(a) != canonicalize_url(b)


_URL_CHARS = st.sampled_from(
    list("aZ09-._~!$&'()*+,;=:@/%?#|\"^`{}[]<> ") + ["é", "ß", "ツ", "%2e", "%2E", "%7e", "%aa", "%C3%A9", "..", "./"]
)
_HOSTS = st.sampled_from(
    [
        "example.com",
        "www.Example.com",
        "faß.de",
        "MÜNCHEN.de",
        "xn--fa-hia.de",
        "βόλος.com",
        "news.bbc.co.uk.",
        "127.0.0.1",
        "[2001:DB8::1]",
        "a_b.example",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    host=_HOSTS,
    port=st.sampled_from(["", ":80", ":443", ":8080"]),
    rest=st.lists(_URL_CHARS, max_size=25).map("".join).filter(lambda rest: rest == rest.rstrip()),
)
def test_canonical_key_is_what_httpx_sends(scheme, host, port, rest):
    """canonicalize_url(u) equals canonicalize_url of the URL httpx would send for u (or both are refused).
    (Whitespace around a URL is not part of it: dumps have it by mistake, and canonicalize_url strips it.)"""
    url = f"{scheme}://{host}{port}/{rest}"
    try:
        sent = str(httpx.URL(url))
    except httpx.InvalidURL:
        with pytest.raises(ValueError):
            canonicalize_url(url)
        return
    try:
        key = canonicalize_url(url)
    except ValueError:
        with pytest.raises(ValueError):
            canonicalize_url(sent)
        return
    assert canonicalize_url(sent) == key
    assert canonicalize_url(key) == key  # idempotent
    assert str(httpx.URL(key)) == key  # the key itself is a URL httpx sends unchanged


@pytest.mark.parametrize(
    "url, problem",
    [
        ("ftp://example.com/x", "not an http"),
        ("example.com/x", "not an http"),
        ("javascript:alert(1)", "not an http"),
        ("http://", "no host"),
        ("http://./", "no host"),
        ("http://exa mple.com/", "invalid host"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:65536/", "invalid port"),  # httpx takes it; WHATWG URL refuses it
        ("http://example.com:0/", "invalid port"),  # no TCP connection can be made to port 0
        ("http://-bad-.com/", "invalid host"),
        ("http://☃.com/", "IDNA"),  # refused by the httpx parse
        ("http://exa%20mple.com/", "invalid host"),
    ],
)
def test_invalid_urls_raise_naming_the_url_and_the_problem(url, problem):
    """The build canonicalizes page URLs outside link harvesting: its error must say which URL and why."""
    with pytest.raises(ValueError, match=problem) as error:
        canonicalize_url(url)
    assert repr(url) in str(error.value)


_PLAIN_CHARS = st.sampled_from(list("aZ09-._~!$&'()*+,;=:@/%?#") + ["%2e", "%7E", "%2F", "%aa", "..", "./", "utm_"])
# with characters httpx encodes too: such URLs must not take the fast path
_ANY_CHARS = st.one_of(_PLAIN_CHARS, st.sampled_from(list('|^`[]{}\\" ') + ["é"]))


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["http", "HTTPS", "ftp"]),
    host=st.sampled_from(["example.com", "WWW.Example.COM", "ex-ample.com", "-bad-.com", "a..b.com", "localhost"]),
    port=st.sampled_from(["", ":0", ":80", ":443", ":08080", ":65536"]),
    rest=st.one_of(st.lists(_PLAIN_CHARS, max_size=25), st.lists(_ANY_CHARS, max_size=25)).map("".join),
)
def test_plain_urls_split_by_regex_as_httpx_parses_them(scheme, host, port, rest):
    """The fast path for plain ASCII URLs gives the key the httpx parse gives (or both refuse the URL)."""
    from corpus.urls import _canonical, _httpx_parts, _plain_parts

    url = f"{scheme}://{host}{port}/{rest}"
    parts = _plain_parts(url)
    if parts is None:
        return
    try:
        via_httpx = _canonical(_httpx_parts(url, url), url)
    except ValueError:
        with pytest.raises(ValueError):
            _canonical(parts, url)
        return
    assert _canonical(parts, url) == via_httpx


def test_a_new_canonical_form_redoes_the_links_stage(tmp_path):
    """A build whose links were keyed by an older canonicalize_url does not reuse them (nor the stages after)."""
    from corpus import build
    from corpus.stages import completed, map_in_process, run_stage

    dump = write_submissions(tmp_path / "RS_2014-05.json", RECORDS)
    old = LinkConfig(cutoff=None, min_karma=1)
    old.canonical_form = CANONICAL_FORM - 1  # as a build made before the form changed recorded it
    old_key, _ = run_stage(build.LinksStage(tmp_path / "build", (dump,), old), None, map_in_process)
    assert completed(tmp_path / "build" / "links", old_key) is not None
    new = LinkConfig(cutoff=None, min_karma=1)
    new_key, _ = run_stage(build.LinksStage(tmp_path / "build", (dump,), new), None, map_in_process)
    assert new_key != old_key and build.stage_key("fetch", new_key) != build.stage_key("fetch", old_key)
    assert completed(tmp_path / "build" / "links", old_key) is None  # redone under the new key
    assert old.selection_key() != LinkConfig(cutoff=None, min_karma=1).selection_key()  # spills are not reused


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.builds("http://{}/{}".format, st.text(max_size=20), st.text(max_size=20))))
def test_any_text_gives_a_key_or_a_value_error(text):
    """Link harvesting drops a bad URL as invalid_url on ValueError: any other exception would stop the stage."""
    try:
        canonicalize_url(text)
    except ValueError as error:
        assert str(error)


def test_blocklists_keep_webtext_top_domains():
    for host in [
        "google.com",
        "docs.google.com",
        "github.com",
        "ebay.com",
        "nytimes.com",
        "blogspot.com",
        "foo.wordpress.com",
        "archive.org",
        "en.wikipedia.org",
        "theguardian.com",
        "medium.com",
    ]:
        assert not is_blocked_domain(host), host
    for host in [
        "imgur.com",
        "i.imgur.com",
        "youtube.com",
        "m.youtube.com",
        "youtu.be",
        "bit.ly",
        "t.co",
        "twitter.com",
        "facebook.com",
        "soundcloud.com",
        "gfycat.com",
        "vimeo.com",
        "video.google.com",
    ]:
        assert is_blocked_domain(host), host
    assert not is_blocked_domain("notimgur.com") and not is_blocked_domain("imgur.com.example.net")
    assert has_blocked_extension("https://example.com/photo.JPG")
    assert has_blocked_extension("https://example.com/paper.pdf?dl=1")
    assert has_blocked_extension("https://example.com/setup.exe/")
    assert not has_blocked_extension("https://example.com/article.html")
    assert not has_blocked_extension("https://example.com/v1.2/page")
    assert not has_blocked_extension("https://example.pdf.com/")
    assert has_blocked_extension("https://example.com/v1.2/photo.png")  # the last dot of the path counts
    assert has_blocked_extension("https://example.com/dist/archive.tar.gz")
    assert is_reddit_url("https://v.redd.it/abc") and is_reddit_url("/r/pics/comments/1")
    assert is_reddit_url("/u/spez") and is_reddit_url("/user/spez/submitted")  # site-relative user pages
    assert not is_reddit_url("https://notreddit.com/")
    assert registered_domain("news.bbc.co.uk") == "bbc.co.uk" and registered_domain("10.0.0.1") == "10.0.0.1"


def test_harvest_reddit_sample_with_exact_counts(reddit_sample, tmp_path):
    """Counts read off the 31 records by hand (see the drop order in corpus.links):
    12 self posts (lines 0,3,5,6,9,22,25-30); 5 Reddit links (v.redd.it, 2 x i.redd.it, reddit.com x2);
    1 NSFW outbound link (redgifs); the 13 left are 2005-2014 outbound links, of which 4 reach 3 karma
    (downingstreetmemo 183, wsj 8, paulgraham 26, wired 10) and 9 do not (scores 2,0,0,1,1,0,1,2,1)."""
    out = tmp_path / "links.parquet"
    stats = harvest_links([reddit_sample], out)
    assert stats.submissions == 31 and stats.kept == 4 and stats.kept_submissions == 4
    assert stats.urls_below_min_karma == 9
    assert stats.dropped == {
        **{reason: 0 for reason in DROP_REASONS},
        "self_post": 12,
        "reddit_link": 5,
        "nsfw": 1,
        "below_min_karma": 9,
    }
    assert stats.submissions == stats.kept_submissions + sum(stats.dropped.values())
    table = pq.read_table(out)
    assert table.schema == LINKS_SCHEMA
    rows = table.to_pylist()
    assert [r["url"] for r in rows] == sorted(r["url"] for r in rows)
    assert [(r["url"], r["karma"]) for r in rows] == [
        ("http://downingstreetmemo.com/", 183),
        (
            "http://online.wsj.com/public/article/0,,SB111948406207267049-_s5eff_5SbJW3B_RdxwYLvU3s6c_20050723,00.html"
            "?mod=blogs",
            8,
        ),
        ("http://paulgraham.com/nerds.html", 26),
        ("http://wired.com/news/culture/0,1284,67982,00.html?tw=wn_tophead_4", 10),
    ]
    pg = rows[2]
    assert pg["original_urls"] == ["http://www.paulgraham.com/nerds.html"] and pg["domain"] == "paulgraham.com"
    assert pg["subreddits"] == ["reddit.com"] and pg["title"] == "Why Nerds are Unpopular"
    assert pg["first_created_utc"] == pg["last_created_utc"] == 1119552369 and pg["n_submissions"] == 1
    assert rows[1]["domain"] == "wsj.com"
    json.dumps(stats.to_dict())  # serializable for flow artifacts


def test_harvest_reddit_sample_with_other_rules(reddit_sample, tmp_path):
    """No cutoff rule hits the sample by default (post-2018 records are self posts, Reddit links or NSFW), so
    move the cutoff to 2006 and keep NSFW: redgifs (2024) now passes the NSFW rule but falls after the cutoff with
    the 2007 and 2014 outbound links (1 + 5 + 3), and min_karma=2 keeps all five 2005 links, macrumors (2) too.
    A subreddit blocklist (case-insensitive) then drops those five, all posted to r/reddit.com."""
    stats = harvest_links(
        [reddit_sample],
        tmp_path / "links.parquet",
        LinkConfig(min_karma=2, cutoff="2006-01-01", drop_nsfw=False, subreddit_blocklist=frozenset({"REDDIT.COM"})),
    )
    assert stats.dropped["after_cutoff"] == 9
    assert stats.dropped["blocked_subreddit"] == 5 and stats.kept == 0
    stats = harvest_links(
        [reddit_sample], tmp_path / "links.parquet", LinkConfig(min_karma=2, cutoff="2006-01-01", drop_nsfw=False)
    )
    assert stats.dropped["nsfw"] == 0 and stats.dropped["after_cutoff"] == 9 and stats.kept == 5
    assert stats.dropped["reddit_link"] == 5 and stats.dropped["self_post"] == 12


def test_karma_is_summed_over_submissions_of_one_canonical_url(tmp_path):
    base = {"is_self": False, "over_18": False, "title": "t", "subreddit": "a"}
    dump = write_submissions(
        tmp_path / "RS_2016-01.zst",
        [
            {
                **base,
                "id": "1",
                "score": 1,
                "url": "http://www.site.com/article/?utm_source=fb",
                "created_utc": 1451606400,
                "title": "low",
            },
            {
                **base,
                "id": "2",
                "score": 2,
                "url": "https://site.com/article#comments",
                "created_utc": "1451606500",
                "subreddit": "b",
                "title": "https",
            },
            {
                **base,
                "id": "3",
                "score": 2,
                "url": "http://site.com/article",
                "created_utc": 1451606300.5,
                "title": "high",
            },
            {**base, "id": "4", "score": 2, "url": "http://other.com/x", "created_utc": 1451606400},
            {**base, "id": "5", "score": 50, "url": "https://i.imgur.com/abc", "created_utc": 1451606400},
            {**base, "id": "6", "score": 50, "url": "https://site.com/movie.mp4", "created_utc": 1451606400},
            {**base, "id": "7", "score": 50, "url": "not a url", "created_utc": 1451606400},
            {**base, "id": "8", "score": 50, "url": "http://site.com/late", "created_utc": 1514764800},
            {**base, "id": "9", "score": 50, "url": "http://site.com/undated"},
        ],
    )
    stats = harvest_links([dump], tmp_path / "links.parquet")
    rows = pq.read_table(tmp_path / "links.parquet").to_pylist()
    # http and https stay apart: the scheme is part of the canonical URL
    assert [(r["url"], r["karma"], r["n_submissions"]) for r in rows] == [("http://site.com/article", 3, 2)]
    assert rows[0]["original_urls"] == ["http://site.com/article", "http://www.site.com/article/?utm_source=fb"]
    assert rows[0]["first_created_utc"] == 1451606300 and rows[0]["last_created_utc"] == 1451606400
    assert rows[0]["title"] == "high" and rows[0]["subreddits"] == ["a"]
    assert stats.dropped["below_min_karma"] == 2 and stats.urls_below_min_karma == 2
    assert (
        stats.dropped["blocked_domain"],
        stats.dropped["blocked_extension"],
        stats.dropped["invalid_url"],
        stats.dropped["after_cutoff"],
        stats.dropped["missing_created_utc"],
    ) == (1, 1, 1, 1, 1)


def test_cutoff_is_a_utc_date_whatever_the_machine_time_zone(monkeypatch):
    """WebText stops at the end of 2017 in UTC: a crawl machine in another zone must not move the cutoff by hours."""
    monkeypatch.setenv("TZ", "EST+5")  # POSIX form: needs no zoneinfo files
    time.tzset()
    try:
        assert LinkConfig(cutoff="2018-01-01").cutoff_ts() == 1514764800  # 2018-01-01T00:00:00Z
        assert LinkConfig(cutoff="2018-01-01T00:00:00+02:00").cutoff_ts() == 1514764800 - 2 * 3600
    finally:
        monkeypatch.undo()
        time.tzset()


def test_bad_cutoff_is_a_clear_error(reddit_sample, tmp_path):
    with pytest.raises(ValueError, match="cutoff"):
        harvest_links([reddit_sample], tmp_path / "links.parquet", LinkConfig(cutoff="last year"))


# ---- bounded-memory, resumable aggregation: same bytes as one in-memory dict of links -----------------------------


def expected_links(records, config, out):
    """What the in-memory aggregation wrote: the rules of corpus.links in their documented order, one dict entry
    per canonical URL, one pq.write_table. Returns (dropped counts without malformed lines, kept submissions)."""
    cutoff = config.cutoff_ts()
    blocked_subs = {s.lower() for s in config.subreddit_blocklist}
    dropped, links = {reason: 0 for reason in DROP_REASONS}, {}
    for r in records:
        url = r.get("url")
        if r.get("is_self"):
            reason = "self_post"
        elif isinstance(url, str) and is_reddit_url(url.strip()):
            reason = "reddit_link"
        elif config.drop_nsfw and r.get("over_18"):
            reason = "nsfw"
        elif cutoff is not None and r.get("created_utc") is None:
            reason = "missing_created_utc"
        elif cutoff is not None and r["created_utc"] >= cutoff:
            reason = "after_cutoff"
        elif str(r.get("subreddit") or "").lower() in blocked_subs:
            reason = "blocked_subreddit"
        else:
            original = str(url or "").strip()
            try:
                canonical = canonicalize_url(original)
            except ValueError:
                reason = "invalid_url"
            else:
                reason = (
                    "blocked_domain"
                    if is_blocked_domain(url_host(canonical), config.domain_blocklist)
                    else "blocked_extension"
                    if has_blocked_extension(canonical, config.extension_blocklist)
                    else None
                )
        score = r.get("score")
        if isinstance(score, str) and score.strip().lstrip("+-").isdigit():
            score = int(score)
        if reason is None and type(score) is not int:  # noqa: E721 - a bool is not a score
            reason = "invalid_score"
        if reason:
            dropped[reason] += 1
            continue
        link = links.setdefault(
            canonical,
            {
                "karma": 0,
                "n": 0,
                "originals": set(),
                "subs": set(),
                "best": None,
                "title": "",
                "first": None,
                "last": None,
            },
        )
        link["karma"] += score
        link["n"] += 1
        link["originals"].add(original)
        if r.get("subreddit"):
            link["subs"].add(str(r["subreddit"]))
        if link["best"] is None or score > link["best"]:
            link["best"], link["title"] = score, str(r.get("title") or "")
        if r.get("created_utc") is not None:
            times = [t for t in (link["first"], link["last"], r["created_utc"]) if t is not None]
            link["first"], link["last"] = min(times), max(times)
    kept = sorted(url for url, link in links.items() if link["karma"] >= config.min_karma)
    dropped["below_min_karma"] = sum(link["n"] for link in links.values() if link["karma"] < config.min_karma)
    rows = [links[url] for url in kept]
    pq.write_table(
        pa.table(
            {
                "url": kept,
                "original_urls": [sorted(link["originals"]) for link in rows],
                "domain": [registered_domain(url_host(url)) for url in kept],
                "karma": [link["karma"] for link in rows],
                "n_submissions": [link["n"] for link in rows],
                "subreddits": [sorted(link["subs"]) for link in rows],
                "title": [link["title"] for link in rows],
                "first_created_utc": [link["first"] for link in rows],
                "last_created_utc": [link["last"] for link in rows],
            },
            schema=LINKS_SCHEMA,
        ),
        out,
        compression="zstd",
    )
    return dropped, sum(link["n"] for link in rows)


def generated_records(seed, n):
    """Few canonical URLs under many spellings, tied scores, every drop reason, odd field types."""
    rng = random.Random(seed)
    hosts = ["news.example.com", "blog.example.org", "example.net", "münchen.de"]
    spellings = [
        "http://{h}{p}",
        "https://{h}{p}",
        "http://www.{h}{p}/",
        "http://{H}{p}?utm_source=rss",
        "http://{h}{p}#comments",
        "  http://{h}:80{p} ",
    ]
    special = [
        "https://www.reddit.com/r/x/comments/1",
        "https://i.imgur.com/a.png",
        "http://example.com/p.jpg",
        "not a url",
        None,
    ]
    records = []
    for i in range(n):
        host, path = rng.choice(hosts), f"/story/{rng.randrange(25)}"
        url = (
            rng.choice(spellings).format(h=host, H=host.upper(), p=path) if rng.random() > 0.12 else rng.choice(special)
        )
        record = {
            "id": f"{seed}-{i}",
            "url": url,
            "is_self": rng.random() < 0.05,
            "over_18": rng.random() < 0.05,
            "score": rng.choice([0, 1, 1, 2, 2, 3, 5, -1, "4", None, "n/a"]),
            "title": rng.choice(["Same title", "Ünïcode ✓", "", None, f"title {i}"]),
            "subreddit": rng.choice(["news", "World", "", None, f"r{rng.randrange(4)}"]),
            "created_utc": rng.choice(
                [1400000000 + i, float(1450000000 - i), str(1300000000 + 7 * i), 1514764800 + i, None]
            ),
        }
        records.append({k: v for k, v in record.items() if v is not None or rng.random() < 0.5})
    return records


def write_generated_dumps(folder, seeds=(1, 2, 3), n=300):
    dumps, records = [], []
    for seed, suffix in zip(seeds, [".zst", ".json", ".bz2", ".gz"]):
        part = generated_records(seed, n)
        dumps.append(write_submissions(folder / f"RS_gen{seed}{suffix}", part))
        records += normalized_created(part)
    return dumps, records


def normalized_created(records):
    return [
        {**r, "created_utc": None if r.get("created_utc") is None else int(float(r["created_utc"]))} for r in records
    ]


def assert_same_as_in_memory(dumps, records, config, tmp_path, malformed=0):
    out, want = tmp_path / "links.parquet", tmp_path / "expected.parquet"
    stats = harvest_links(dumps, out, config)
    dropped, kept_submissions = expected_links(records, config, want)
    assert out.read_bytes() == want.read_bytes()
    assert stats.dropped == {**dropped, "malformed_line": malformed}
    assert stats.submissions == len(records) + malformed and stats.kept == pq.read_metadata(want).num_rows
    assert stats.kept_submissions == kept_submissions
    assert stats.submissions == stats.kept_submissions + sum(stats.dropped.values())
    assert not (tmp_path / ".links.parquet.work").exists()
    return stats


@pytest.mark.parametrize("memory_rows", [1, 7, 1_000_000])
def test_spilled_aggregation_writes_the_in_memory_bytes(tmp_path, memory_rows):
    dumps, records = write_generated_dumps(tmp_path)
    with (tmp_path / "RS_gen2.json").open("ab") as extra:  # malformed lines count, in the middle dump
        extra.write(b"{broken\n[1, 2]\n")
    stats = assert_same_as_in_memory(
        dumps, records, LinkConfig(min_karma=3, memory_rows=memory_rows), tmp_path, malformed=2
    )
    assert stats.kept > 20 and stats.urls_below_min_karma > 5
    assert all(stats.dropped[reason] for reason in DROP_REASONS if reason != "blocked_subreddit")


def test_merge_beyond_one_row_group_keeps_url_order(tmp_path, monkeypatch):
    """links.parquet is written a row group (ROW_GROUP_ROWS, a million links) at a time from unit files of many
    batches; WebText has tens of millions of links. Small chunks and batches here give the same rows in url order."""
    import pyarrow.ipc as ipc

    from corpus import links as links_module
    from corpus.links import _merged

    dumps, _ = write_generated_dumps(tmp_path, seeds=(1,))
    harvest_links(dumps, tmp_path / "links.parquet", LinkConfig(min_karma=1, cutoff=None))
    links = pq.read_table(tmp_path / "links.parquet")
    assert links.num_rows > 40
    unit_files = []
    for unit in range(3):  # disjoint URL sets, each sorted, as the aggregation units are
        unit_files.append(tmp_path / f"unit-{unit}.arrow")
        with ipc.new_file(unit_files[-1], links.schema) as writer:
            writer.write_table(links.take(list(range(unit, links.num_rows, 3))), max_chunksize=4)
    for n_units in (1, 2, 3):
        want = links.take([row for row in range(links.num_rows) if row % 3 < n_units])
        for chunk_rows in (1, 3, 4, 7, 10_000):
            chunks = list(_merged(unit_files[:n_units], chunk_rows))
            assert all(0 < chunk.num_rows <= chunk_rows for chunk in chunks), (n_units, chunk_rows)
            assert pa.concat_tables(chunks).equals(want), (n_units, chunk_rows)
    # the whole harvest with row groups of 4 links: the same links, all of them counted
    monkeypatch.setattr(links_module, "ROW_GROUP_ROWS", 4)
    stats = harvest_links(dumps, tmp_path / "grouped.parquet", LinkConfig(min_karma=1, cutoff=None))
    assert pq.read_metadata(tmp_path / "grouped.parquet").num_row_groups > 10
    assert pq.read_table(tmp_path / "grouped.parquet").equals(links) and stats.kept == links.num_rows


def test_spilled_aggregation_with_other_settings_and_empty_output(tmp_path):
    dumps, records = write_generated_dumps(tmp_path, seeds=(4, 5))
    config = LinkConfig(
        min_karma=1, cutoff=None, drop_nsfw=False, subreddit_blocklist=frozenset({"WORLD"}), memory_rows=4
    )
    stats = assert_same_as_in_memory(dumps, records, config, tmp_path)
    assert stats.dropped["blocked_subreddit"] and not stats.dropped["after_cutoff"]
    # the same dump listed twice counts twice, as reading it twice did
    assert_same_as_in_memory(dumps + dumps[:1], records + records[:300], config, tmp_path)
    stats = assert_same_as_in_memory(dumps, records, LinkConfig(min_karma=10**9, memory_rows=4), tmp_path)
    assert stats.kept == 0 and pq.read_table(tmp_path / "links.parquet").schema == LINKS_SCHEMA


def test_the_build_stage_and_harvest_links_write_the_same_links_and_counts(tmp_path):
    """The links stage of a build and `harvest_links` run the same parts: the same links.parquet, the same counts."""
    from corpus import build
    from corpus.stages import map_in_process, run_stage

    dumps, _ = write_generated_dumps(tmp_path, seeds=(14, 15))
    dumps.append(dumps[0])  # listed twice: counted twice, read once
    config = LinkConfig(memory_rows=60, min_karma=1, cutoff=None)  # not the defaults
    want = harvest_links(dumps, tmp_path / "links.parquet", config)
    _, stats = run_stage(build.LinksStage(tmp_path / "build", tuple(dumps), config), None, map_in_process)
    made = tmp_path / "build" / "links" / "links.parquet"
    assert made.read_bytes() == (tmp_path / "links.parquet").read_bytes() and want.kept > 0
    assert (stats.items_in, stats.items_out, stats.dropped) == (want.submissions, want.kept, want.dropped)
    assert stats.extra == {"kept_submissions": want.kept_submissions, "urls_below_min_karma": want.urls_below_min_karma}


def test_links_in_parts_on_parallel_processes_write_the_same_file(tmp_path):
    """The flow runs each dump and each aggregation unit as a task on Dask: parts in other processes, in any order."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    dumps, _ = write_generated_dumps(tmp_path, seeds=(11, 12, 13))
    dumps.append(dumps[0])  # listed twice: counted twice, read once
    config = LinkConfig(memory_rows=60)
    want = harvest_links(dumps, tmp_path / "serial" / "links.parquet", config)
    plan = plan_links(dumps, tmp_path / "parts" / "links.parquet", config)
    assert plan.parts == [0, 1, 2]
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        list(pool.map(read_dump, [plan] * 3, plan.parts[::-1]))
        units = plan_aggregation(plan)
        counts = list(pool.map(aggregate_unit, [plan] * len(units), [units] * len(units), range(len(units))[::-1]))
    stats = finish_links(plan, counts[::-1])
    assert len(units) > 1
    assert (tmp_path / "parts" / "links.parquet").read_bytes() == (tmp_path / "serial" / "links.parquet").read_bytes()
    assert {**stats.to_dict(), "elapsed_s": 0} == {**want.to_dict(), "elapsed_s": 0}


def test_spilled_aggregation_of_the_shared_sample(reddit_sample, tmp_path):
    records = list(iter_submissions(reddit_sample))
    for config in [LinkConfig(memory_rows=2), LinkConfig(min_karma=1, cutoff=None, memory_rows=3)]:
        assert_same_as_in_memory([reddit_sample], records, config, tmp_path)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.integers(0, 12), min_size=1, max_size=20), memory_rows=st.integers(1, 15))
def test_aggregation_units_are_the_largest_runs_that_fit_memory_rows(rows, memory_rows):
    """A unit holds at most memory_rows submissions unless one partition alone holds more, and takes in every next
    partition that still fits (fewer units: fewer aggregation tasks); together the units hold every submission."""
    from corpus.links import _units

    units = _units(np.array(rows, np.int64), memory_rows)
    assert all(lo < hi for lo, hi in units) and all(a[1] == b[0] for a, b in zip(units, units[1:]))
    covered = {p for lo, hi in units for p in range(lo, hi)}
    assert {p for p, n in enumerate(rows) if n} <= covered
    for i, (lo, hi) in enumerate(units):
        held = sum(rows[lo:hi])
        assert held <= memory_rows or sum(1 for n in rows[lo:hi] if n) == 1, (units, i)
        if i + 1 < len(units):
            assert held + rows[hi] > memory_rows, (units, i)  # the next partition would not have fit


def test_bad_memory_rows_is_a_clear_error(reddit_sample, tmp_path):
    with pytest.raises(ValueError, match="memory_rows"):
        harvest_links([reddit_sample], tmp_path / "links.parquet", LinkConfig(memory_rows=0))


KILL_DURING_SECOND_DUMP = """
import os, signal, sys
from pathlib import Path
from corpus.links import LinkConfig, harvest_links

*dumps, out = sys.argv[1:]

def progress(info):
    if info["file"] == dumps[1] and info["submissions"] >= 300 + 150:
        os.kill(os.getpid(), signal.SIGKILL)

harvest_links(dumps, Path(out), LinkConfig(memory_rows=20, progress_every=10), progress)
raise SystemExit("harvest_links finished: it was to be killed during the second dump")
"""


def kill_during_second_dump(dumps, out):
    done = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SECOND_DUMP, *map(str, dumps), str(out)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    folders = sorted((out.parent / f".{out.name}.work").iterdir())
    assert [(folder / "_DONE").exists() for folder in folders] == [True, False]  # dump 1 committed, dump 2 half-read
    assert list(folders[1].glob("spill-*.arrow"))


def test_a_killed_harvest_resumes_after_the_dumps_it_finished(tmp_path, caplog):
    dumps, records = write_generated_dumps(tmp_path, seeds=(6, 7, 8))
    out, want = tmp_path / "links.parquet", tmp_path / "expected.parquet"
    kill_during_second_dump(dumps, out)
    with caplog.at_level(logging.INFO, logger="corpus.links"):
        stats = harvest_links(dumps, out, LinkConfig(memory_rows=20))
    reused = [r.getMessage() for r in caplog.records if "reusing" in r.getMessage()]
    assert len(reused) == 1 and dumps[0].name in reused[0]
    dropped, _ = expected_links(records, LinkConfig(), want)
    assert out.read_bytes() == want.read_bytes() and stats.dropped == dropped
    assert stats.submissions == len(records)

    # A dump changed since (size and mtime) is read again, and so is every dump under other selection settings.
    kill_during_second_dump(dumps, out)
    changed = generated_records(60, 310)
    write_submissions(dumps[0], changed)
    records = normalized_created(changed) + records[300:]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="corpus.links"):
        stats = harvest_links(dumps, out, LinkConfig(memory_rows=20))
    assert not [r for r in caplog.records if "reusing" in r.getMessage()]
    dropped, _ = expected_links(records, LinkConfig(), want)
    assert out.read_bytes() == want.read_bytes() and stats.dropped == dropped

    kill_during_second_dump(dumps, out)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="corpus.links"):
        stats = harvest_links(dumps, out, LinkConfig(memory_rows=20, drop_nsfw=False))
    assert not [r for r in caplog.records if "reusing" in r.getMessage()]
    dropped, _ = expected_links(records, LinkConfig(drop_nsfw=False), want)
    assert out.read_bytes() == want.read_bytes() and stats.dropped == dropped


# ---- faults: truncated dumps, bad scores, bad min_karma -----------------------------------------------------------


def multi_frame_zst(path, records, frames):
    """A .zst of `frames` concatenated zstd frames (as re-packed dumps have), each a run of whole lines."""
    lines = [json.dumps(r).encode() + b"\n" for r in records]
    step = -(-len(lines) // frames)
    compressor = zstandard.ZstdCompressor(level=3)
    path.write_bytes(b"".join(compressor.compress(b"".join(lines[i : i + step])) for i in range(0, len(lines), step)))
    return path


def cut(path, name, keep):
    """A copy of `path` with only its first `keep` bytes (a download or copy cut short)."""
    copy = path.with_name(name)
    copy.write_bytes(path.read_bytes()[:keep])
    return copy


def test_truncated_zst_dumps_are_errors_naming_the_file_wherever_they_are_cut(tmp_path):
    """zstandard's stream reader ends quietly at the end of a cut file: 20,000 submissions cut in half read as 7,400
    and a small dump cut in half as none, with no error. The .gz/.xz/.bz2 readers raise; .zst must too."""
    small = write_submissions(tmp_path / "RS_small.zst", RECORDS)  # one frame
    assert len(list(iter_submissions(small))) == 3
    size = small.stat().st_size
    for keep in sorted({1, 4, 10, size // 2, size - 4, size - 1}):
        truncated = cut(small, f"RS_small_{keep}.zst", keep)
        with pytest.raises(ValueError, match=rf"{truncated.name} is truncated"):
            list(iter_submissions(truncated))

    records = generated_records(9, 20_000)
    big = multi_frame_zst(tmp_path / "RS_big.zst", records, frames=7)
    assert [r["id"] for r in iter_submissions(big)] == [r["id"] for r in records]
    half = cut(big, "RS_big_half.zst", big.stat().st_size // 2)
    with pytest.raises(ValueError, match="RS_big_half.zst is truncated") as caught:
        list(iter_submissions(half))
    assert "after line" in str(caught.value)

    for suffix in (".gz", ".xz", ".bz2"):  # the same words for every compression
        whole = write_submissions(tmp_path / f"RS_big{suffix}", records[:5000])
        half = cut(whole, f"RS_big_half{suffix}", whole.stat().st_size // 2)
        with pytest.raises(ValueError, match=rf"RS_big_half\{suffix} is truncated"):
            list(iter_submissions(half))


def test_a_truncated_dump_fails_the_harvest_after_the_others_are_read_and_kept(tmp_path, caplog):
    dumps, records = write_generated_dumps(tmp_path, seeds=(10, 11, 12))
    middle = multi_frame_zst(tmp_path / "RS_gen11.zst", generated_records(11, 300), frames=3)
    dumps = [dumps[0], middle, dumps[2]]
    full = middle.read_bytes()
    middle.write_bytes(full[: len(full) // 2])
    out = tmp_path / "links.parquet"
    with pytest.raises(ValueError, match="RS_gen11.zst is truncated") as caught:
        harvest_links(dumps, out, LinkConfig(memory_rows=20))
    assert "1 of 3 Reddit dumps" in str(caught.value) and "re-run reuses them" in str(caught.value)
    assert not out.exists()
    folders = {f.name.split(".")[0]: f for f in (tmp_path / ".links.parquet.work").iterdir()}
    assert (folders["RS_gen10"] / "_DONE").exists() and (folders["RS_gen12"] / "_DONE").exists()
    assert not (folders["RS_gen11"] / "_DONE").exists()

    middle.write_bytes(full)  # the dump fetched again: the two read before are reused, not read again
    with caplog.at_level(logging.INFO, logger="corpus.links"):
        stats = harvest_links(dumps, out, LinkConfig(memory_rows=20))
    reused = sorted(r.getMessage().split()[2].rstrip(",") for r in caplog.records if "reusing" in r.getMessage())
    assert reused == sorted(str(d) for d in (dumps[0], dumps[2]))
    assert stats.submissions == len(records)
    dropped, _ = expected_links(records, LinkConfig(), tmp_path / "expected.parquet")
    assert out.read_bytes() == (tmp_path / "expected.parquet").read_bytes() and stats.dropped == dropped


def test_scores_that_are_not_integers_are_counted_as_invalid_score_not_as_zero(tmp_path):
    base = {"subreddit": "news", "is_self": False, "over_18": False, "created_utc": 1400000000, "title": "t"}
    good = [
        {**base, "url": "https://good.example.com/a", "score": 2},
        {**base, "url": "https://good.example.com/a", "score": " +1"},
    ]
    bad = [
        {**base, "url": "https://good.example.com/a", "score": score}
        for score in ["lots", None, "3.5", 3.5, True, "", "9" * 40, 10**30]
    ] + [{**base, "url": "https://good.example.com/a"}]
    path = write_submissions(tmp_path / "RS_scores.json", good + bad)
    stats = harvest_links([path], tmp_path / "links.parquet", LinkConfig())
    assert stats.dropped["invalid_score"] == len(bad) and stats.kept == 1
    assert pq.read_table(tmp_path / "links.parquet").column("karma").to_pylist() == [3]
    # a self post with a bad score is counted as a self post: the first rule that drops it
    path = write_submissions(tmp_path / "RS_self.json", [{**bad[0], "is_self": True}])
    assert harvest_links([path], tmp_path / "links.parquet", LinkConfig()).dropped["self_post"] == 1


@pytest.mark.parametrize("min_karma", [-5, 0, 2.5, True, "3"])
def test_min_karma_below_one_or_not_an_integer_is_refused(min_karma):
    with pytest.raises(ValueError, match=r"min_karma must be an integer of at least 1.*got"):
        LinkConfig(min_karma=min_karma)


def _held_rows_during_harvest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_rows: int) -> tuple[int, int]:
    """The most submissions held in memory while reading (rows in one spill) and the most rows aggregated at once
    (one unit of partitions read back), over a harvest of 3,000 distinct links, counted where the rows are held."""
    from corpus import links

    records = [
        {
            "id": str(i),
            "url": f"http://site{i % 50}.example.com/story/{i}",
            "score": 3,
            "subreddit": "news",
            "title": f"story {i}",
            "created_utc": 1400000000 + i,
        }
        for i in range(3000)
    ]
    dumps = [write_submissions(tmp_path / f"RS_part{k}.json", records[k::2]) for k in range(2)]
    spilled, aggregated = [0], [0]
    real_spill, real_read = links._Spiller.spill, links._read_partitions

    def spill(self: links._Spiller) -> None:
        spilled[0] = max(spilled[0], self.held + len(self.rows))
        real_spill(self)

    def read_partitions(*args: object) -> pa.Table:
        table = real_read(*args)
        aggregated[0] = max(aggregated[0], table.num_rows)
        return table

    monkeypatch.setattr(links._Spiller, "spill", spill)
    monkeypatch.setattr(links, "_read_partitions", read_partitions)
    stats = harvest_links(dumps, tmp_path / f"links-{memory_rows}.parquet", LinkConfig(memory_rows=memory_rows))
    assert stats.kept == 3000
    return spilled[0], aggregated[0]


def test_link_harvest_holds_at_most_memory_rows_submissions(tmp_path, monkeypatch):
    spilled, aggregated = _held_rows_during_harvest(tmp_path, monkeypatch, memory_rows=100)
    assert spilled == 100 and 50 < aggregated <= 100, (spilled, aggregated)
    # the measure is sensitive: with room for everything, one dump's 1,500 and then all 3,000 rows are held at once
    assert _held_rows_during_harvest(tmp_path, monkeypatch, memory_rows=10**6) == (1500, 3000)

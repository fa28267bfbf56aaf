"""A polite, safe, resumable HTML fetcher (asyncio + httpx) that archives every page it keeps to WARC.

Politeness: at most `concurrency` URLs in flight, at most `per_host` per host name, and request starts to one host
spaced by its delay: `min_delay_s`, or the robots.txt Crawl-delay for our User-Agent when larger (capped at
`max_crawl_delay_s`). robots.txt is read as RFC 9309 says (corpus.robots; `robots_allowed` is the decision), fetched
once per origin and cached for `robots_cache_s`, or `robots_error_cache_s` when a 5xx forbade the whole site. A
frontier hands each worker a URL of a host whose turn has come, so a slow or delayed host never holds the other workers.

Safety: all connections go through `corpus.netsafety` (public addresses only, except connect_to targets) and every
response is bounded: `connect_timeout_s`/`read_timeout_s` per socket operation, `deadline_s` per request (headers and
body: a server that drips bytes is cut off), `url_deadline_s` per URL (all its redirects and retries), `max_bytes` on
the body as received and `max_decompressed_bytes` after Content-Encoding (gzip bombs). At most `max_redirects` hops,
each hop checked again (address, robots.txt, host delay). Connection errors, 429 and 5xx are retried `max_retries`
times with exponential backoff and jitter; a Retry-After up to `max_retry_after_s` is honoured, a longer one ends the
URL as http_error.

Output in out_dir: `log.parquet` with exactly one row per URL (see LOG_SCHEMA and OUTCOMES) and `warc/*.warc.gz`
holding the request and response of every `ok` page. While running, outcomes are appended to `log.journal.jsonl`
(one flushed line per URL, written after the page's WARC records), and WARC files carry a `.open` suffix. A killed
run therefore loses only the URLs in flight: the next run cuts open WARC files back to their last logged record,
merges the journal into log.parquet, and skips every URL already there.

Memory: the set of URLs already logged or seen in this run (one string each: `corpus.fetch_parts` splits a crawl
so that each run holds only its part's), the frontier's read-ahead (`frontier_max_urls`), one robots.txt parser per origin up to `robots_cache_size`, and one small record
per host name seen.
"""

from __future__ import annotations

import asyncio
import codecs
import heapq
import itertools
import json
import logging
import random
import re
import secrets
import ssl
import time
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path

import certifi
import charset_normalizer
import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from corpus.files import write_parquet
from corpus.netsafety import BlockedAddressError, ConnectTo, DNSError, SafeTransport

# robots_allowed is the crawler's own robots.txt decision, public here
from corpus.robots import PARSE_LIMIT, RobotsRules, robots_allowed  # noqa: F401
from corpus.warc import CHARSET_HEADER, RollingWarcWriter, WarcLocation, finalize_open_files, is_html

log = logging.getLogger(__name__)

OUTCOMES: tuple[str, ...] = (
    "ok",
    "robots_disallowed",
    "timeout",
    "too_large",
    "unsupported_content_type",
    "http_error",
    "too_many_redirects",
    "blocked_address",
    "dns_error",
    "connection_error",
    "decode_error",
    "invalid_url",  # not an http(s) URL at all: nothing was requested
    # the crawler failed on this URL (a bug, or an answer nothing here foresaw): `error` names the exception, the
    # run's log has its traceback, and the crawl goes on instead of ending at this URL on every resume
    "crawler_error",
)

LOG_SCHEMA = pa.schema(
    [
        ("url", pa.string()),  # the URL as given (for the corpus: the canonical link URL)
        ("outcome", pa.string()),
        ("http_status", pa.int32()),  # status of the last response, if any
        ("final_url", pa.string()),  # URL of the last request, after redirects
        ("bytes", pa.int64()),  # body bytes received, as sent (before Content-Encoding)
        ("error", pa.string()),
        ("fetched_at", pa.string()),  # ISO 8601 UTC time of the outcome
        ("content_type", pa.string()),
        ("encoding", pa.string()),  # detected charset of ok pages
        ("attempts", pa.int32()),
        ("elapsed_s", pa.float64()),
        ("warc_file", pa.string()),  # ok pages: file under warc/, offset and length of request+response records
        ("warc_offset", pa.int64()),
        ("warc_length", pa.int64()),
    ]
)

_ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five; past that, robots.txt is unavailable
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass
class FetchConfig:
    concurrency: int = 64  # URLs in flight
    per_host: int = 2  # URLs in flight per host name
    min_delay_s: float = 1.0  # between request starts to one host
    max_crawl_delay_s: float = 30.0  # cap on a robots.txt Crawl-delay
    # robots.txt groups are matched against its product token: the part before the first "/", which must be letters,
    # `_` and `-` (RFC 9309 2.2.1), else only `*` groups apply. Put a contact address in it for real crawls.
    user_agent: str = "WebTextBot/0.1 (research crawler rebuilding GPT-2's WebText)"
    obey_robots: bool = True
    www_fallback: bool = True  # a host that does not resolve is tried once more as www.host
    connect_to: dict[str, str] = field(default_factory=dict)
    allow_private_addresses: bool = False
    ca_file: str | None = None  # extra CA certificates to trust (PEM), besides certifi's
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0  # between two received chunks
    deadline_s: float = 60.0  # whole request: headers and body
    url_deadline_s: float | None = None  # whole URL: redirects, retries, backoff, robots.txt; None: 5 x deadline_s
    max_bytes: int = 10 * 2**20  # body as received
    max_decompressed_bytes: int = 40 * 2**20
    max_redirects: int = 5
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0
    warc_max_bytes: int = 1 << 30  # roll WARC files past this size
    progress_interval_s: float = 10.0
    robots_cache_size: int = 100_000  # origins whose robots.txt is kept in memory
    robots_cache_s: float = 86_400.0  # RFC 9309 2.4: a fetched robots.txt is used for at most 24 hours
    robots_error_cache_s: float = 600.0  # a 5xx/429 robots.txt forbids the whole site this long, then is re-asked
    frontier_max_urls: int = 1_000_000  # URLs read ahead of the workers at most, to find hosts that are ready

    def __post_init__(self) -> None:
        for name in ("concurrency", "per_host", "max_bytes", "max_decompressed_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"FetchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_redirects < 0 or self.max_retries < 0:
            raise ValueError("FetchConfig.max_redirects and max_retries must be >= 0")
        if self.url_deadline_s is None:
            self.url_deadline_s = 5 * self.deadline_s
        for name in ("deadline_s", "url_deadline_s", "robots_cache_s", "robots_error_cache_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FetchConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.url_deadline_s < self.deadline_s:
            raise ValueError(
                f"FetchConfig.url_deadline_s ({self.url_deadline_s}) must be at least deadline_s "
                f"({self.deadline_s}): it bounds a whole URL, whose every request has deadline_s"
            )
        ConnectTo(self.connect_to)  # fail on a bad mapping now, not at the first connection

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=certifi.where())
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context


@dataclass
class FetchSummary:
    outcomes: dict[str, int]  # this run's URLs by outcome
    fetched: int  # URLs given an outcome by this run
    skipped: int  # URLs of the input already in the log
    logged: int  # rows of log.parquet after this run
    bytes: int
    elapsed_s: float
    rate: float  # URLs per second in this run
    warc_files: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Capture:
    request_target: str
    request_headers: list[tuple[str, str]]
    status: int
    reason: str
    response_headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _Result:
    outcome: str
    http_status: int | None = None
    final_url: str | None = None
    bytes: int = 0
    error: str | None = None
    content_type: str | None = None
    encoding: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    capture: _Capture | None = None


class _TooLarge(Exception):
    pass


class _Undecodable(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Body handling


def decompress(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo gzip/deflate Content-Encoding, raising _TooLarge past `limit` output bytes (no bomb gets inflated)."""
    data = raw
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        if coding in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, limit)
        elif coding == "deflate":
            try:
                data = _inflate(data, zlib.MAX_WBITS, limit)
            except zlib.error:  # servers often send raw deflate under this name
                data = _inflate(data, -zlib.MAX_WBITS, limit)
        else:
            raise _Undecodable(f"unsupported Content-Encoding {coding!r}")
    if len(data) > limit:
        raise _TooLarge(f"body exceeds {limit} bytes")
    return data


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits)
        chunk = data
        while chunk:
            out += inflater.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit:
                raise _TooLarge(f"decompressed body exceeds {limit} bytes")
            chunk = inflater.unconsumed_tail
        out += inflater.flush()
        data = inflater.unused_data if wbits & 16 else b""  # a gzip stream may hold several members
        if len(out) > limit:
            raise _TooLarge(f"decompressed body exceeds {limit} bytes")
    return bytes(out)


def _mostly_text(text: str) -> bool:
    return len(_CONTROL.findall(text)) <= len(text) / 100


# Python text codecs a page may name that are no web charset, ignored like unknown names: browsers refuse UTF-7 (the
# WHATWG Encoding Standard), and the escape codecs would read a page's backslashes as escapes.
_NOT_WEB_CHARSETS = {"utf-7", "unicode-escape", "raw-unicode-escape"}


def detect_charset(body: bytes, content_type: str | None) -> str:
    """The charset a page decodes with: BOM, then HTTP header, then <meta>, then statistical detection.

    A declared charset is accepted with up to 0.1% undecodable bytes (real pages have a few); a name that is no web
    charset (`_NOT_WEB_CHARSETS`, or a codec that is no text encoding) is passed over like an unknown one. Raises
    _Undecodable when nothing yields text (binary served as HTML, or a charset that fits none of the bytes).
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    declared = []
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    if match:
        declared.append(match.group(1))
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        declared.append(meta.group(1).decode("ascii", "replace"))
    for name in declared:
        try:
            codec = codecs.lookup(name).name
            if codec in _NOT_WEB_CHARSETS:
                continue
            text = body.decode(codec, errors="replace")
        # unknown; no text encoding (rot13, base64, zlib); no decoding with replacement (idna, punycode)
        except (LookupError, UnicodeError):
            continue
        if text.count("\ufffd") <= len(text) / 1000 and _mostly_text(text):
            return codec
    if not body:
        return "utf-8"
    best = charset_normalizer.from_bytes(body).best()
    if best is not None and _mostly_text(str(best)):
        return best.encoding
    raise _Undecodable(
        "no charset decodes the body as text" + (f" (declared {', '.join(declared)})" if declared else "")
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head


# ---------------------------------------------------------------------------------------------------------------
# Frontier: which URL may be requested next


@dataclass
class _Host:
    name: str
    delay: float
    queue: deque[str] = field(default_factory=deque)
    active: int = 0
    last_start: float = float("-inf")  # monotonic start time of the latest request
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_pop: float = 0.0  # when the frontier may hand out this host's next URL
    in_heap: bool = False

    def ready_at(self) -> float:
        return max(self.next_pop, self.last_start + self.delay)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).host
    except (httpx.InvalidURL, ValueError, TypeError):
        return ""


class _Frontier:
    """Buffers input URLs by host and hands out one whose host has a free slot and whose turn has come.

    The spacing itself is enforced by `turn`, which every request (robots.txt, redirect hops and retries included)
    calls before it starts; the frontier's own schedule only keeps workers from picking a host that is not ready.
    """

    def __init__(
        self,
        urls: Iterator[tuple[str, str]],
        per_host: int,
        min_delay: float,
        buffer: int,
        want_hosts: int,
        max_buffer: int,
    ) -> None:
        self._urls = urls
        self._exhausted = False
        self._buffer = buffer
        self._want_hosts = want_hosts
        self._max_buffer = max_buffer
        self._buffered = 0
        self._in_flight = 0
        self._per_host = per_host
        self._min_delay = min_delay
        self._hosts: dict[str, _Host] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()

    def host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            # URLs without a host end without a request: no reason to space them out
            host = self._hosts[name] = _Host(name, self._min_delay if name else 0.0)
        return host

    def _schedule(self, host: _Host) -> None:
        if host.queue and not host.in_heap and host.active < self._per_host:
            heapq.heappush(self._heap, (host.ready_at(), next(self._seq), host.name))
            host.in_heap = True

    def _fill(self) -> None:
        # Read `buffer` URLs ahead, and further (up to `max_buffer`) while fewer than `want_hosts` hosts could take a
        # request: input sorted by URL comes host by host, and one host alone cannot keep the workers busy.
        while (
            not self._exhausted
            and self._buffered < self._max_buffer
            and (self._buffered < self._buffer or len(self._heap) < self._want_hosts)
        ):
            try:
                item = next(self._urls)
            except StopIteration:
                self._exhausted = True
                break
            host = self.host(_host_of(item[1]))  # spaced by the host actually requested
            host.queue.append(item)
            self._buffered += 1
            self._schedule(host)

    async def next(self) -> tuple[_Host, tuple[str, str]] | None:
        """The next (link URL, URL to request) to visit, with its host. None when every URL is done."""
        while True:
            self._wake.clear()
            self._fill()
            now = time.monotonic()
            timeout: float | None = None
            if self._heap:
                at, _, name = self._heap[0]
                host = self._hosts[name]
                if host.ready_at() > at:  # the host was used since it was queued: requeue at its real time
                    heapq.heapreplace(self._heap, (host.ready_at(), next(self._seq), name))
                    continue
                if at <= now:
                    heapq.heappop(self._heap)
                    host.in_heap = False
                    item = host.queue.popleft()
                    self._buffered -= 1
                    self._in_flight += 1
                    host.active += 1
                    host.next_pop = now + host.delay
                    self._schedule(host)
                    return host, item
                timeout = at - now
            elif self._exhausted and self._in_flight == 0:
                self._wake.set()  # let every other waiting worker see the end too
                return None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def release(self, host: _Host) -> None:
        host.active -= 1
        self._in_flight -= 1
        self._schedule(host)
        self._wake.set()

    async def turn(self, name: str) -> None:
        """Wait until a request to host `name` may start: `delay` after the previous one actually started.

        Requests to one host queue on its lock, and the start time is taken after the wait, so an event loop
        that wakes a sleeper late cannot squeeze the next request closer to it."""
        host = self.host(name)
        async with host.lock:
            wait = host.last_start + host.delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            host.last_start = time.monotonic()

    def hold_off(self, name: str, seconds: float) -> None:
        """No request to host `name` for `seconds` (it asked us to back off)."""
        host = self.host(name)
        until = time.monotonic() + seconds
        host.next_pop = max(host.next_pop, until)
        host.last_start = max(host.last_start, until - host.delay)


# ---------------------------------------------------------------------------------------------------------------
# Crawler


@dataclass
class _Visit:
    link_url: str
    start_url: str  # the first hop: link_url, or its www. form after a DNS miss
    current_url: str = ""  # the URL of the current hop
    attempts: int = 0


def _www_form(url: str) -> str | None:
    """`http://example.com/a` -> `http://www.example.com/a`; None when that makes no sense (IPs, www. already)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    host = parsed.host
    if not host or host.startswith("www.") or "." not in host or host.replace(".", "").isdigit() or ":" in host:
        return None
    return str(parsed.copy_with(host="www." + host))


class _Crawler:
    def __init__(self, config: FetchConfig, client: httpx.AsyncClient, frontier: _Frontier) -> None:
        self.config = config
        self.client = client
        self.frontier = frontier
        self._robots: OrderedDict[str, tuple[RobotsRules, float]] = OrderedDict()  # origin -> (rules, expiry)
        self._robots_locks: dict[str, asyncio.Lock] = {}

    async def visit(self, url: str, start_url: str | None = None) -> tuple[_Result, int]:
        """Fetch link `url` by requesting `start_url` (default: `url` itself), with retries, all of it within
        `url_deadline_s`.

        Returns its result and the number of attempts."""
        visit = _Visit(url, start_url or url)
        visit.current_url = visit.start_url
        try:
            async with asyncio.timeout(self.config.url_deadline_s):
                result = await self._retry(visit)
        except TimeoutError:
            result = _Result(
                "timeout",
                final_url=visit.current_url,
                error=(f"URL deadline of {self.config.url_deadline_s:g} s passed (redirects and retries included)"),
            )
        return result, visit.attempts

    async def _retry(self, visit: _Visit) -> _Result:
        first = visit.start_url
        config = self.config
        while True:
            visit.attempts += 1
            result = await self._attempt(visit)
            if (
                result.outcome == "dns_error"
                and config.www_fallback
                and visit.start_url == first
                and result.final_url == first
                and (www := _www_form(first))
            ):
                visit.start_url = www  # canonical link URLs lose their www.; some sites only resolve with it
                visit.attempts -= 1
                continue
            if not result.retryable or visit.attempts > config.max_retries:
                return result
            backoff = config.backoff_base_s * 2 ** (visit.attempts - 1)
            delay = min(config.backoff_max_s, backoff) * random.uniform(0.5, 1.5)
            if result.retry_after is not None:
                if result.retry_after > config.max_retry_after_s:
                    result.error = f"{result.error}; Retry-After {result.retry_after:.0f}s exceeds the bound"
                    return result
                delay = max(delay, result.retry_after)
            self.frontier.hold_off(_host_of(visit.current_url), delay)
            await asyncio.sleep(delay)

    async def _attempt(self, visit: _Visit) -> _Result:
        visit.current_url = visit.start_url
        try:
            return await self._follow(visit)
        except BlockedAddressError as error:
            return _Result("blocked_address", final_url=visit.current_url, error=str(error))
        except DNSError as error:
            return _Result("dns_error", final_url=visit.current_url, error=str(error))
        except (TimeoutError, httpx.TimeoutException) as error:
            return _Result("timeout", final_url=visit.current_url, error=f"{type(error).__name__} {error}".strip())
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            return _Result("invalid_url", final_url=visit.current_url, error=str(error))
        except httpx.TransportError as error:
            return _Result(
                "connection_error",
                final_url=visit.current_url,
                retryable=True,
                error=f"{type(error).__name__}: {error}",
            )
        except Exception as error:
            log.exception("crawler error on %s", visit.current_url)
            return _Result("crawler_error", final_url=visit.current_url, error=f"{type(error).__name__}: {error}")

    async def _follow(self, visit: _Visit) -> _Result:
        config = self.config
        for _hop in range(config.max_redirects + 1):
            url = httpx.URL(visit.current_url)
            try:
                host = url.host
            except UnicodeError as error:  # a malformed IDNA label ("xn--"): httpx raises idna's error, no InvalidURL
                host, problem = "", f"invalid host in {visit.current_url}: {error}"
            else:
                problem = f"not an http(s) URL: {visit.current_url}"
            if url.scheme not in ("http", "https") or not host:
                return _Result(
                    "invalid_url" if visit.current_url == visit.start_url else "http_error",
                    final_url=visit.current_url,
                    error=problem,
                )
            if config.obey_robots and not (rules := await self._robots_rules(url)).allowed(str(url)):
                return _Result("robots_disallowed", final_url=visit.current_url, error=rules.reason)
            await self.frontier.turn(host)
            async with asyncio.timeout(config.deadline_s):
                try:
                    response = await self.client.send(self.client.build_request("GET", url), stream=True)
                # httpx reads a redirect's Location, and raises for one it cannot make a URL of (a "mailto:"), or
                # idna's error for a malformed host ("xn--") in it: the URL asked for was checked above
                except (httpx.InvalidURL, UnicodeError) as error:
                    return _Result(
                        "http_error", final_url=visit.current_url, error=f"redirect to an invalid URL: {error}"
                    )
                try:
                    # a redirect has a redirect status and a Location (httpx's is_redirect is any 3xx: a 304, or a
                    # 302 without Location, is the page's answer, an http_error)
                    if response.has_redirect_location:
                        visit.current_url = str(url.join(response.headers["location"]))
                        continue
                    return await self._read(visit, response)
                finally:
                    await response.aclose()
        return _Result(
            "too_many_redirects", final_url=visit.current_url, error=f"more than {config.max_redirects} redirects"
        )

    async def _read(self, visit: _Visit, response: httpx.Response) -> _Result:
        config = self.config
        status = response.status_code
        content_type = response.headers.get("content-type")
        result = _Result("ok", http_status=status, final_url=visit.current_url, content_type=content_type)
        if status != 200:
            result.outcome, result.error = "http_error", f"HTTP {status}"
            result.retryable = status == 429 or status >= 500
            result.retry_after = _retry_after(response.headers.get("retry-after"))
            return result
        if content_type and not is_html(content_type):
            result.outcome = "unsupported_content_type"
            return result
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > config.max_bytes:
            result.outcome, result.error = "too_large", f"Content-Length {declared} exceeds {config.max_bytes}"
            return result
        raw = bytearray()
        async for chunk in response.aiter_raw():
            raw += chunk
            result.bytes = len(raw)
            if len(raw) > config.max_bytes:
                result.outcome, result.error = "too_large", f"body exceeds {config.max_bytes} bytes"
                return result
        try:
            body = decompress(bytes(raw), response.headers.get("content-encoding"), config.max_decompressed_bytes)
            if not content_type and not _looks_like_html(body):
                result.outcome = "unsupported_content_type"
                return result
            result.encoding = detect_charset(body, content_type)
        except _TooLarge as error:
            result.outcome, result.error = "too_large", str(error)
            return result
        except (_Undecodable, zlib.error) as error:
            result.outcome, result.error = "decode_error", str(error)
            return result
        request = response.request
        result.capture = _Capture(
            request_target=request.url.raw_path.decode("ascii"),
            request_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            status=status,
            reason=response.reason_phrase,
            response_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw],
            body=bytes(raw),
        )
        return result

    async def _robots_rules(self, url: httpx.URL) -> RobotsRules:
        """The robots.txt of the URL's origin, fetched once per origin until its cache time runs out."""
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        cached = self._robots.get(origin)
        if cached is None or cached[1] <= time.monotonic():
            lock = self._robots_locks.setdefault(origin, asyncio.Lock())
            async with lock:  # one fetch per origin, however many workers ask
                cached = self._robots.get(origin)
                if cached is None or cached[1] <= time.monotonic():
                    rules, keep_s = await self._fetch_robots(origin)
                    cached = self._robots[origin] = (rules, time.monotonic() + keep_s)
                    self._robots.move_to_end(origin)
                    if len(self._robots) > self.config.robots_cache_size:
                        self._robots.popitem(last=False)
                    if rules.crawl_delay:
                        self.frontier.host(url.host).delay = min(
                            max(self.config.min_delay_s, rules.crawl_delay), self.config.max_crawl_delay_s
                        )
            self._robots_locks.pop(origin, None)
        else:
            self._robots.move_to_end(origin)
        return cached[0]

    @staticmethod
    async def _robots_body(response: httpx.Response) -> bytes:
        """The robots.txt body, one byte past the parse limit at most (so a cut last line is seen); bombs and
        garbage give an empty one."""
        raw = bytearray()
        async for chunk in response.aiter_raw():
            raw += chunk
            if len(raw) > PARSE_LIMIT:
                break
        try:
            body = decompress(bytes(raw), response.headers.get("content-encoding"), 8 * PARSE_LIMIT)
        except (_TooLarge, _Undecodable, zlib.error):
            return b""
        return body[: PARSE_LIMIT + 1]

    async def _fetch_robots(self, origin: str) -> tuple[RobotsRules, float]:
        """RFC 9309 2.3.1: the rules of a 2xx robots.txt; no rules for 4xx (unavailable) or more than five redirects;
        nothing allowed for 5xx and 429 (unreachable), kept only `robots_error_cache_s`. Returns the rules and how
        many seconds to keep them. Network errors are raised: the URL ends without a request to it, and nothing
        is cached."""
        config = self.config
        url = httpx.URL(origin + "/robots.txt")
        for _hop in range(_ROBOTS_MAX_REDIRECTS + 1):
            await self.frontier.turn(url.host)
            async with asyncio.timeout(config.deadline_s):
                response = await self.client.send(self.client.build_request("GET", url), stream=True)
                try:
                    status = response.status_code
                    if response.has_redirect_location:  # as for pages: a 3xx without a Location is no redirect
                        url = url.join(response.headers["location"])
                        continue
                    body = await self._robots_body(response) if 200 <= status < 300 else b""
                finally:
                    await response.aclose()
            break
        else:
            too_many = f"robots.txt: more than {_ROBOTS_MAX_REDIRECTS} redirects"
            return RobotsRules.allow_all(too_many), config.robots_cache_s
        if 200 <= status < 300:
            return RobotsRules.parse(body, config.user_agent), config.robots_cache_s
        if status >= 500 or status == 429:  # Google reads 429 as 5xx too: a site that asks us to slow down
            return RobotsRules.disallow_all(f"robots.txt HTTP {status}"), config.robots_error_cache_s
        return RobotsRules.allow_all(f"robots.txt HTTP {status}"), config.robots_cache_s


# ---------------------------------------------------------------------------------------------------------------
# Log store: journal while running, log.parquet when done


def _read_journal(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    rows.append(json.loads(line))
                except ValueError:  # the last line of a killed run may be cut short
                    continue
    return rows


class _LogStore:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.log_path = out_dir / "log.parquet"
        self.journal_path = out_dir / "log.journal.jsonl"
        self.warc_dir = out_dir / "warc"
        self.warc_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        self.done: set[str] = set()
        if self.log_path.exists():
            self.done.update(pq.read_table(self.log_path, columns=["url"]).column("url").to_pylist())
        self._journal = open(self.journal_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def _recover(self) -> None:
        """Finish what a killed run left: cut open WARC files to their logged records, merge its journal."""
        rows = _read_journal(self.journal_path)
        committed: dict[str, int] = {}
        for row in rows:
            if row.get("warc_file"):
                end = row["warc_offset"] + row["warc_length"]
                committed[row["warc_file"]] = max(committed.get(row["warc_file"], 0), end)
        kept = finalize_open_files(self.warc_dir, committed)
        if rows:
            log.warning(
                "fetch: recovered %d outcomes and %d WARC files from an interrupted run in %s",
                len(rows),
                len(kept),
                self.out_dir,
            )
            self._merge(rows)
        self.journal_path.unlink(missing_ok=True)

    def append(self, row: dict) -> None:
        self._journal.write(json.dumps(row) + "\n")
        self._journal.flush()  # the OS has it: a killed process loses nothing logged

    def close(self) -> int:
        self._journal.close()
        rows = _read_journal(self.journal_path)
        total = self._merge(rows)
        self.journal_path.unlink(missing_ok=True)
        return total

    def _merge(self, rows: list[dict]) -> int:
        new = pa.Table.from_pylist(rows, schema=LOG_SCHEMA)
        tables = [pq.read_table(self.log_path, schema=LOG_SCHEMA)] if self.log_path.exists() else []
        table = pa.concat_tables([*tables, new])
        # A crash between writing log.parquet and deleting the journal merges rows twice: keep the first.
        seen: set[str] = set()
        keep = [not (url in seen or seen.add(url)) for url in table.column("url").to_pylist()]
        table = table.filter(pa.array(keep, pa.bool_()))
        write_parquet(table, self.log_path)
        return table.num_rows


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def _row(
    url: str, result: _Result, attempts: int, elapsed: float, location: WarcLocation | None, fetched_at: datetime
) -> dict:
    return {
        "url": url,
        "outcome": result.outcome,
        "http_status": result.http_status,
        "final_url": result.final_url,
        "bytes": result.bytes,
        "error": result.error,
        "fetched_at": fetched_at.isoformat().replace("+00:00", "Z"),
        "content_type": result.content_type,
        "encoding": result.encoding,
        "attempts": attempts,
        "elapsed_s": round(elapsed, 4),
        "warc_file": location.file if location else None,
        "warc_offset": location.offset if location else None,
        "warc_length": location.length if location else None,
    }


async def afetch_urls(
    urls: Iterable[str | tuple[str, str]],
    out_dir: Path,
    config: FetchConfig,
    progress: Callable[[dict], None] | None = None,
) -> FetchSummary:
    """Async form of fetch_urls, for callers already inside an event loop."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = _LogStore(out_dir)
    total = len(urls) if hasattr(urls, "__len__") else None  # type: ignore[arg-type]
    counts: Counter[str] = Counter()
    skipped = 0
    received = 0

    def pending() -> Iterator[tuple[str, str]]:
        nonlocal skipped
        for item in urls:
            url, start = (item, item) if isinstance(item, str) else item
            url, start = url.strip(), start.strip()
            # a lone surrogate (JSON lets them through) has no UTF-8 form: no request, and the log (UTF-8, as Parquet
            # is) keeps the URL with U+FFFD in its place
            broken = _SURROGATE.search(url + start) is not None
            url = _SURROGATE.sub("\ufffd", url)
            if url in store.done:
                skipped += 1
            elif url and broken:
                store.done.add(url)
                error = "the URL holds a lone surrogate, which has no UTF-8 form: not requested"
                store.append(_row(url, _Result("invalid_url", error=error), 0, 0.0, None, datetime.now(UTC)))
                counts["invalid_url"] += 1
            elif url:
                store.done.add(url)  # also drops repeats within the input
                yield url, start or url

    started = datetime.now(UTC)
    warc = RollingWarcWriter(
        store.warc_dir, f"webtext-{started:%Y%m%d%H%M%S}-{secrets.token_hex(3)}", config.warc_max_bytes
    )
    writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc-writer")
    frontier = _Frontier(
        pending(),
        config.per_host,
        config.min_delay_s,
        buffer=16 * config.concurrency,
        want_hosts=2 * config.concurrency,
        max_buffer=config.frontier_max_urls,
    )
    t0 = time.monotonic()

    def snapshot() -> dict:
        elapsed = time.monotonic() - t0
        done = sum(counts.values())
        return {
            "done": done,
            "total": total,
            "skipped": skipped,
            "outcomes": dict(counts),
            "bytes": received,
            "elapsed_s": round(elapsed, 3),
            "rate": done / elapsed if elapsed > 0 else 0.0,
        }

    def report() -> None:
        info = snapshot()
        log.info(
            "fetch: %d done (%s skipped) %.1f URLs/s, %s", info["done"], info["skipped"], info["rate"], info["outcomes"]
        )
        if progress:
            progress(info)

    async def reporter() -> None:
        while True:
            await asyncio.sleep(config.progress_interval_s)
            report()

    transport = SafeTransport(
        config.connect_to, config.allow_private_addresses, config.ssl_context(), max_connections=2 * config.concurrency
    )
    timeout = httpx.Timeout(
        connect=config.connect_timeout_s, read=config.read_timeout_s, write=config.read_timeout_s, pool=None
    )
    headers = {
        "User-Agent": config.user_agent,
        "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
        "Accept-Encoding": "gzip, deflate",
    }
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, headers=headers, follow_redirects=False, trust_env=False
        ) as client:
            crawler = _Crawler(config, client, frontier)

            async def worker() -> None:
                nonlocal received
                while (item := await frontier.next()) is not None:
                    host, (url, start_url) = item
                    start = time.monotonic()
                    try:
                        result, attempts = await crawler.visit(url, start_url)
                    finally:
                        frontier.release(host)
                    fetched_at = datetime.now(UTC)
                    location = None
                    if result.capture is not None:
                        capture = result.capture
                        # gzip and digests of big pages would stall the event loop: one writer thread (zlib
                        # releases the GIL), so records stay in order and the journal line follows its record.
                        location = await asyncio.get_running_loop().run_in_executor(
                            writer_thread,
                            partial(
                                warc.write_page,
                                link_url=url,
                                target_uri=result.final_url or url,
                                fetched_at=fetched_at,
                                method="GET",
                                request_target=capture.request_target,
                                request_headers=capture.request_headers,
                                status=capture.status,
                                reason=capture.reason,
                                response_headers=capture.response_headers,
                                body=capture.body,
                                extra_headers={CHARSET_HEADER: result.encoding or ""},
                            ),
                        )
                    store.append(_row(url, result, attempts, time.monotonic() - start, location, fetched_at))
                    counts[result.outcome] += 1
                    received += result.bytes

            ticker = asyncio.create_task(reporter())
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(config.concurrency):
                        group.create_task(worker())
            finally:
                ticker.cancel()
    finally:
        writer_thread.shutdown()
        warc.close()
        logged = store.close()
    report()
    info = snapshot()
    return FetchSummary(
        outcomes=dict(counts),
        fetched=info["done"],
        skipped=skipped,
        logged=logged,
        bytes=received,
        elapsed_s=info["elapsed_s"],
        rate=info["rate"],
        warc_files=warc.finished,
    )


def fetch_urls(
    urls: Iterable[str | tuple[str, str]],
    out_dir: Path,
    config: FetchConfig | None = None,
    progress: Callable[[dict], None] | None = None,
) -> FetchSummary:
    """Fetch every URL not yet in out_dir/log.parquet; write its outcome there and ok pages to out_dir/warc/.

    An item is a URL, or a pair (link URL, URL to request): the canonical link URL is the key of the log and of the
    WARC's WebText-Link-URL header, while the request goes to the URL as it was submitted (canonical forms drop
    `www.` and trailing slashes, which some sites do not serve).

    `progress` receives {"done", "total", "skipped", "outcomes", "bytes", "elapsed_s", "rate"} every
    `config.progress_interval_s` seconds and at the end. Runs its own event loop, in a helper thread when the caller's
    thread already has one (async callers can await afetch_urls instead).
    """
    run = partial(asyncio.run, afetch_urls(urls, out_dir, config or FetchConfig(), progress))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as thread:
        return thread.submit(run).result()

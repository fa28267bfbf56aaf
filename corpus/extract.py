"""Main-text extraction: trafilatura, checked against resiliparse, in a pool of worker processes.

The rule (chosen with `benchmarks/bench_extract.py`, which cross-validates its parameters): trafilatura in its fast
mode, favoring recall, with links kept in Markdown so that lines that only point to another article ("Read more:
<link>") can be told and dropped (with copyright notices), and then reduced to their text; resiliparse's
main-content extraction (about a tenth of trafilatura's cost) on every page as a cheap second opinion, and the
article body the page declares in its JSON-LD, if any:
- resiliparse or the declared body has more than `teaser_ratio` times trafilatura's words: trafilatura kept a teaser,
  not the body (a slideshow, a paywall), and the longest of readability-lxml's text, trafilatura's full cascade and
  the declared body is taken instead (when it is longer);
- otherwise, when resiliparse saw the same body (at least half trafilatura's words), their edges are reconciled:
  trailing lines resiliparse lacks are dropped (related links, sign-up boxes), and with `lede` (off by default: an
  article body has no headline) up to two lines that resiliparse has just above where trafilatura's text starts are
  put back when the page declares them as its headline or summary in its head (captions and notices there are not).

trafilatura has no time limit inside `extract()` and its caches grow with every page, so `extract_pages` runs each
page in a worker process under a deadline (a stuck worker is killed and replaced) and every worker resets the caches
periodically.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing as mp
import os
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from corpus.htmldepth import too_deep

log = logging.getLogger(__name__)

# "combined" is the rule above; the others run one extractor alone (for comparison and benchmarks): "trafilatura" is
# its fast mode (the rule's first), "trafilatura-full" its whole cascade, "json-ld" the article body the page declares.
METHODS = ("combined", "trafilatura", "trafilatura-full", "resiliparse", "readability", "json-ld", "newspaper4k")


# The extract stage's key holds these (with the config), so a build extracts its pages again when what the rule would
# produce changes: raise RULE_REVISION with every change to this module's output; the packages' versions count too.
RULE_REVISION = 2  # 2: read-more inserts and copyright notices dropped, no-break spaces as spaces
EXTRACTOR_PACKAGES = ("trafilatura", "resiliparse", "readability-lxml", "newspaper4k", "lxml")


def extractor_fingerprint() -> dict[str, str]:
    """The rule's revision and the installed extractors' versions."""
    from importlib.metadata import version

    return {"rule": str(RULE_REVISION)} | {name: version(name) for name in EXTRACTOR_PACKAGES}


@dataclass(frozen=True)
class ExtractConfig:
    method: str = "combined"  # one of METHODS
    # "combined": the teaser fallbacks replace trafilatura's text when resiliparse or the declared body has more than
    # this many times its words
    teaser_ratio: float = 5.0
    # "combined": the headline and summary the page declares, when resiliparse has them just above trafilatura's first
    # line, are put back. Off by default: article-body benchmarks leave them out of the gold text, and on the 300 gold
    # pages cross-validation does not settle it (one half chooses it, the other does not).
    lede: bool = False
    timeout_s: float = 30.0  # per page; the worker is killed past it
    workers: int = 0  # 0 = one per CPU core
    reset_caches_every: int = 256  # pages per worker between trafilatura.reset_caches()
    max_html_bytes: int = 10_000_000  # larger pages are skipped (outcome "too_large")
    # "fork": workers start in milliseconds with the extractors already imported. "spawn" re-imports the parent's
    # main module in every worker (for a Prefect flow run: Prefect's engine, 10+ s); use it where fork is unsafe.
    start_method: str = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    startup_timeout_s: float = 120.0  # a worker not ready by then is replaced

    def __post_init__(self) -> None:
        if self.start_method not in mp.get_all_start_methods():
            raise ValueError(f"ExtractConfig.start_method {self.start_method!r} is not available here")
        if self.method not in METHODS:
            raise ValueError(f"ExtractConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"ExtractConfig.timeout_s must be > 0, got {self.timeout_s}")
        if not self.teaser_ratio > 0:
            raise ValueError(f"ExtractConfig.teaser_ratio must be > 0, got {self.teaser_ratio}")


@dataclass(frozen=True)
class Extraction:
    text: str | None
    extractor: str | None  # which extractor produced `text`: one of METHODS other than "combined"
    outcome: str  # "ok", "empty", "too_deep" (nested past the parser's depth limit), "timeout", "too_large", "error"
    error: str | None = None


def _decode(html: str | bytes) -> str:
    if isinstance(html, str):
        return html
    from trafilatura.utils import decode_file  # charset sniffing (meta tags, then detection)

    return decode_file(html)


# a Markdown link as trafilatura writes it: [text](url) or [text](<url>), brackets in the text escaped. A link
# without a URL ([text]) is left as it is: it cannot be told from brackets that are part of the text.
_MARKDOWN_LINK = re.compile(r"\[((?:\\.|[^\[\]\\])*)\]\((?:<(?:\\.|[^>\\])*>|[^)\s]*)\)")
_ESCAPED_BRACKET = re.compile(r"\\([\[\]\\])")


def _link_text(text: str) -> str:
    """trafilatura's text with its Markdown links reduced to their text, and no-break spaces as plain spaces: its
    text with links keeps the ones around them (2.4 times as many as its text without links has), which split words
    for a tokenizer and hide the text from a plain search."""
    return _MARKDOWN_LINK.sub(lambda m: _ESCAPED_BRACKET.sub(r"\1", m[1]), text).replace("\xa0", " ")


READ_MORE_LABEL_WORDS = 3  # "Read more", "Le puede interesar", "À lire aussi": such labels are one to three words
# a line that is a short label, a separator and one link to its end: "Read more: <link>", "MIRA | <link>", "À lire
# aussi » <link>" (an insert pointing to another article). Not a list item or table row ("- See also: <link>" may be
# the page's own list). Linear: the label is bounded and holds no bracket.
_READ_MORE = re.compile(rf"(?![-*|])\W*(\w[^\[\]\n]{{0,60}}?)\s*[:|»›>→]+\s*{_MARKDOWN_LINK.pattern}\W*")
# a copyright notice: "© 2020 ...", "Copyright 2023 ...", "Copyright © ..."
_COPYRIGHT = re.compile(r"\W*(?:©|copyright\s*(?:©|\(c\)|\d{4}))", re.I)


def drop_inserts(text: str, label_words: int = READ_MORE_LABEL_WORDS) -> str:
    """trafilatura's text (links still in Markdown) without the lines no article body has: links to other articles
    behind a short label (at most `label_words` words) and copyright notices."""

    def insert(line: str) -> bool:
        line = line.strip()
        read_more = _READ_MORE.fullmatch(line)
        return bool(read_more and len(read_more[1].split()) <= label_words) or bool(_COPYRIGHT.match(line))

    return "\n".join(line for line in text.split("\n") if not insert(line))


def _trafilatura(html: str, url: str | None) -> str | None:
    import trafilatura

    # fast: no readability/justext fallback inside trafilatura (the rule has its own, cheaper check).
    # include_links: the Markdown links tell a read-more insert from text (`drop_inserts`); without that they change
    # nothing measured. favor_recall: the same F1 on our pages, at less cost.
    text = trafilatura.extract(html, url=url, fast=True, favor_recall=True, include_comments=False, include_links=True)
    return (_link_text(drop_inserts(text)) or None) if text else None


def _trafilatura_full(html: str, url: str | None) -> str | None:
    """trafilatura's whole cascade (its own readability and jusText fallbacks): a second try on a teaser."""
    import trafilatura

    text = trafilatura.extract(html, url=url, include_comments=False, include_links=True)
    return (_link_text(drop_inserts(text)) or None) if text else None


def _resiliparse(html: str, url: str | None) -> str | None:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True) or None


def _readability(html: str, url: str | None) -> str | None:
    import lxml.html
    from readability import Document

    summary = Document(html, url=url).summary(html_partial=True)
    if not summary.strip():
        return None
    root = lxml.html.fromstring(summary)
    # text_content() runs blocks together ("schools.Spending") where the HTML has no line break between them: each
    # block ends its line. readability also keeps the HTML's own line breaks and indentation: one line per non-blank
    # line, trimmed.
    for block in root.iter(*_BLOCKS):
        block.tail = "\n" + (block.tail or "")
    text = root.text_content()
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) or None


_BLOCKS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "table", "ul", "ol")


_JSON_LD_OPEN = re.compile(r"<script\b[^>]*\btype\s*=\s*[\"']?application/ld\+json[^>]*>", re.I)
_SCRIPT_CLOSE = re.compile(r"</script", re.I)
_BLOCK_END = re.compile(r"<br\s*/?>|</(?:p|div|h[1-6]|li|blockquote|tr)\s*>", re.I)
# linear on any text: an unclosed comment ends the text (as in HTML), a tag does not reach past the next "<", and a
# "<" that opens no tag ("1 < 2" in a plain-text body) stays
_TAG_OR_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)|</?[a-zA-Z][^<>]*>", re.S)


def _article_bodies(node: Any) -> Iterator[tuple[str, set[str]]]:
    """Every `articleBody` string in a JSON-LD document (top level, lists and @graph alike), with the addresses its
    object gives for itself (`url`, `@id`, `mainEntityOfPage`)."""
    from corpus.urls import canonical_or_none

    if isinstance(node, dict):
        for key, value in node.items():
            if key == "articleBody" and isinstance(value, str):
                own = [node.get("url"), node.get("@id"), node.get("mainEntityOfPage")]
                own += [entity.get(k) for entity in own if isinstance(entity, dict) for k in ("@id", "url")]
                # the page's identity in the corpus: no fragment, so "<page>#article" ids match their page; None
                # for what is no http(s) URL (relative ids, "#article")
                yield value, {page for u in own if isinstance(u, str) and (page := canonical_or_none(u))}
            else:
                yield from _article_bodies(value)
    elif isinstance(node, list):
        for value in node:
            yield from _article_bodies(value)


def _json_ld(html: str, url: str | None) -> str | None:
    """The article text the page declares for search engines (schema.org `articleBody` in JSON-LD), as plain text.
    News sites often put the whole body there, also where the page itself shows a teaser (a paywall, a slideshow).
    Publishers write it as plain text, as HTML or as escaped HTML: all three come out as lines of text."""
    import html as entities

    from corpus.urls import canonical_or_none

    bodies: list[tuple[str, set[str]]] = []
    at = 0
    # each part of the page is scanned once: a script's text runs to the next "</script" (HTML's rule), and a page
    # of unclosed scripts must not be rescanned from every one of them
    while (start := _JSON_LD_OPEN.search(html, at)) and (end := _SCRIPT_CLOSE.search(html, start.end())):
        at = end.end()
        try:
            bodies.extend(_article_bodies(json.loads(html[start.end() : end.start()], strict=False)))  # raw newlines
        except (ValueError, RecursionError):  # invalid JSON-LD is common too; the page's other scripts may be valid
            continue
    if not bodies:
        return None
    # a page that declares several articles (a listing, a live blog) may name its own: that one, else the longest
    page = canonical_or_none(url)
    own = [body for body, addresses in bodies if page and page in addresses]
    body = max(own or [body for body, _ in bodies], key=len)
    if "<" not in body and "&lt;" in body:  # escaped HTML
        body = entities.unescape(body)
    body = entities.unescape(_TAG_OR_COMMENT.sub("", _BLOCK_END.sub("\n", body)))
    return "\n".join(" ".join(line.split()) for line in body.splitlines() if line.strip()) or None


def _newspaper(html: str, url: str | None) -> str | None:
    import newspaper

    # fetch_images=False: otherwise parse() downloads images; nlp() is never called (it downloads nltk data).
    article = newspaper.Article(url or "http://localhost/", fetch_images=False)
    article.download(input_html=html)
    article.parse()
    return article.text or None


EXTRACTORS = {
    "trafilatura": _trafilatura,
    "trafilatura-full": _trafilatura_full,
    "resiliparse": _resiliparse,
    "readability": _readability,
    "json-ld": _json_ld,
    "newspaper4k": _newspaper,
}


def _n_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _run(name: str, page: str, url: str | None) -> str | None:
    """One extractor's text; a second opinion that raises on an odd page counts as no answer."""
    if name == "trafilatura":
        return _trafilatura(page, url)
    try:
        return EXTRACTORS[name](page, url)
    except Exception as exc:
        log.debug("%s failed on %s: %s", name, url, exc)
        return None


def is_teaser(traf: str | None, check: str | None, config: ExtractConfig = ExtractConfig()) -> bool:
    """True when the cheap check finds more than `teaser_ratio` times trafilatura's words."""
    return _n_words(check) > config.teaser_ratio * _n_words(traf)


_WORD = re.compile(r"\w+")


class _Lines:
    """Tells whether a line of one extractor's text is in another's. The two lay out the same page differently
    (line breaks, spaces around inline elements), so a line counts as present when at least half of its word
    3-grams (fewer words: its words) are in the other text."""

    def __init__(self, text: str) -> None:
        self._words = _WORD.findall(text.lower())
        self._grams: dict[int, set[tuple[str, ...]]] = {}  # built when first asked: most lines need only 3-grams

    def has(self, line: str) -> bool | None:
        """None for a line without words."""
        words = _WORD.findall(line.lower())
        if not words:
            return None
        n = min(3, len(words))
        if n not in self._grams:
            self._grams[n] = set(zip(*(self._words[i:] for i in range(n))))
        grams = list(zip(*(words[i:] for i in range(n))))
        return 2 * sum(g in self._grams[n] for g in grams) >= len(grams)


LEDE_LINES = 2  # at most this many lines are put back above trafilatura's first one

_META = re.compile(r"<meta\b[^<>]*>", re.I)
_META_HEAD = re.compile(r"""\b(?:name|property)\s*=\s*["']?(?:og:|twitter:)?(?:title|description)["'\s/>]""", re.I)
_META_CONTENT = re.compile(r"""\bcontent\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_TITLE = re.compile(r"<title\b[^<>]*>([^<]*)</title", re.I)


def declared_heads(html: str) -> list[str]:
    """The headline and summary the page declares in its head: its <title>, and the title and description meta tags
    (plain, Open Graph, Twitter)."""
    import html as entities

    heads = [title[1]] if (title := _TITLE.search(html)) else []
    for tag in _META.findall(html):
        if _META_HEAD.search(tag) and (content := _META_CONTENT.search(tag)):
            heads.append(next(group for group in content.groups() if group is not None))
    return [text for text in (" ".join(entities.unescape(head).split()) for head in heads) if text]


def _declares(line: str, heads: Iterable[str]) -> bool:
    """True when the line is one of the heads: either one's words run inside the other's, and the shorter has at least
    half the longer's words (a title carries the site's name; a summary may be cut short)."""
    words = _WORD.findall(line.lower())
    for head in heads:
        head_words = _WORD.findall(head.lower())
        short, long = sorted((words, head_words), key=len)
        if short and 2 * len(short) >= len(long) and f" {' '.join(short)} " in f" {' '.join(long)} ":
            return True
    return False


def reconcile_edges(traf: str, check: str, heads: Sequence[str] = (), config: ExtractConfig = ExtractConfig()) -> str:
    """trafilatura's text with its edges checked against resiliparse's: the trailing lines resiliparse lacks are
    dropped, and up to `LEDE_LINES` lines that resiliparse has just above where trafilatura's text starts are added
    when they are among the page's declared `heads` (its headline and summary; see `declared_heads`). Only the
    edges: trimming inside the text lost more recall than it gained."""
    lines = traf.split("\n")
    in_check = _Lines(check)
    last = next((i for i in reversed(range(len(lines))) if in_check.has(lines[i])), None)
    if last is None:  # the two found different texts: nothing to reconcile
        return traf
    lines = lines[: last + 1]
    if config.lede and heads:
        in_traf = _Lines("\n".join(lines))
        above = [line.strip() for line in check.split("\n") if line.strip()]
        first = next((i for i, line in enumerate(above) if in_traf.has(line)), 0)
        lines = [line for line in above[max(0, first - LEDE_LINES) : first] if _declares(line, heads)] + lines
    return "\n".join(lines)


def combine(
    traf: str | None,
    check: str | None,
    declared: str | None,
    fallbacks: Callable[[], Iterable[tuple[str | None, str]]],
    config: ExtractConfig = ExtractConfig(),
    heads: Sequence[str] = (),
) -> tuple[str | None, str]:
    """The rule on trafilatura's text, the cheap check's (resiliparse) and the page's declared article body (JSON-LD):
    (text, extractor). `fallbacks` gives the other extractors' (text, extractor); it is asked only for a teaser, that
    is where resiliparse or the declared body has more than `teaser_ratio` times trafilatura's words. `heads` are the
    page's declared headline and summary, put back above the text (see `reconcile_edges`)."""
    if is_teaser(traf, max(check, declared, key=_n_words), config):
        text, extractor = max(fallbacks(), key=lambda candidate: _n_words(candidate[0]), default=(None, ""))
        if _n_words(text) > _n_words(traf):
            return text, extractor
    elif traf and check and 2 * _n_words(check) >= _n_words(traf):  # resiliparse saw the body, not a fragment of it
        return reconcile_edges(traf, check, heads, config), "trafilatura"
    return traf, "trafilatura"


def extract_with(html: str | bytes, url: str | None = None, config: ExtractConfig = ExtractConfig()) -> Extraction:
    """Extract the main text of one page in this process (no time limit: use `extract_pages` for that)."""
    if len(html) > config.max_html_bytes:
        return Extraction(None, None, "too_large")
    page = _decode(html)
    extractor = "trafilatura" if config.method == "combined" else config.method
    text = _run(extractor, page, url)
    # Nothing may mean a page nested past the parser's depth limit: asked once, of such pages only (it parses the page
    # again), and before the cheap check, which takes minutes on one (resiliparse on 200,000 nested <div>s).
    if not _n_words(text) and (depth_error := too_deep(page)):
        return Extraction(None, None, "too_deep", depth_error)
    if config.method == "combined":
        declared = _run("json-ld", page, url)

        def fallbacks() -> Iterator[tuple[str | None, str]]:
            yield _run("readability", page, url), "readability"
            yield _run("trafilatura-full", page, url), "trafilatura-full"
            yield declared, "json-ld"

        heads = declared_heads(page) if config.lede else ()
        text, extractor = combine(text, _run("resiliparse", page, url), declared, fallbacks, config, heads)
    text = text.replace("\xa0", " ").strip() if text else None  # no-break spaces, from any extractor, as spaces
    if not text:
        return Extraction(None, None, "empty")
    return Extraction(text, extractor, "ok")


def extract_main_text(html: str | bytes, url: str | None = None) -> str | None:
    """The main text of an HTML page (str or bytes) by the measured default combination, or None if there is none."""
    return extract_with(html, url).text


# ---- worker pool with a per-page deadline ---------------------------------------------------------------------

_READY = "ready"


def _import_extractors() -> None:
    import lxml.html  # noqa: F401
    import newspaper  # noqa: F401
    import readability  # noqa: F401
    import resiliparse.extract.html2text  # noqa: F401
    import trafilatura  # noqa: F401


MAX_FAILED_STARTS = 5  # consecutive workers that end before they are ready: then the pool gives up with an error


def _exit_when_orphaned(parent_pid: int, interval_s: float = 0.2) -> None:
    """End this worker soon after the process that started it dies, even by SIGKILL. Otherwise it waits for pages
    forever (a sibling forked later holds its pipe open), keeping the flow run's output pipe open, so Prefect never
    sees the run end. getppid() is polled rather than PR_SET_PDEATHSIG set, because that signal fires when the
    parent's *thread* ends, and the pool may be started from a Dask worker thread that ends before the process."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()


def _worker(conn: Connection, config: ExtractConfig, parent_pid: int) -> None:
    _exit_when_orphaned(parent_pid)
    _import_extractors()  # before "ready": the deadline must not count start-up
    from trafilatura.meta import reset_caches

    conn.send(_READY)
    done = 0
    while True:
        task = conn.recv()
        if task is None:
            return
        key, html, url = task
        try:
            result = extract_with(html, url, config)
        except Exception as exc:
            result = Extraction(None, None, "error", f"{type(exc).__name__}: {exc}")
        conn.send((key, result))
        done += 1
        if done % config.reset_caches_every == 0:
            reset_caches()  # trafilatura/htmldate LRU caches grow about 1 MB per page otherwise


class _Slot:
    """One worker process and the page it works on. A page is sent only to a ready, idle worker: a page larger than
    the pipe's buffer (most real pages) blocks the sender until the worker reads it, so one sent ahead to a busy or
    stuck worker would block the whole pool, deadlines included. The deadline runs from when the page was sent."""

    def __init__(self, ctx: Any, config: ExtractConfig) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, config, os.getpid()), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.queue: deque[tuple[Any, str | bytes, str | None]] = deque()
        self.deadline = time.monotonic() + config.startup_timeout_s
        self.timeout_s = config.timeout_s

    def submit(self, page: tuple[Any, str | bytes, str | None]) -> None:
        self.conn.send(page)
        self.queue.append(page)
        if len(self.queue) == 1 and self.ready:
            self.deadline = time.monotonic() + self.timeout_s

    def head_done(self) -> None:
        self.queue.popleft()
        self.deadline = time.monotonic() + self.timeout_s if self.queue else float("inf")

    def mark_ready(self) -> None:
        self.ready = True
        self.deadline = time.monotonic() + self.timeout_s if self.queue else float("inf")

    def death(self) -> str:
        """Why the worker process is gone: its signal or exit code."""
        self.proc.join(timeout=5)
        code = self.proc.exitcode
        if code is None:
            return "worker died (connection lost)"
        if code < 0:
            return f"worker died (killed by {signal.Signals(-code).name})"
        return f"worker died (exit code {code})"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.kill()


class ExtractorPool:
    """Worker processes that extract pages under a per-page deadline; a stuck or dead worker is replaced.

    Reuse one pool for many batches (`extract_pages(..., pool=...)`, or `shared_pool`) to pay start-up once.
    """

    def __init__(self, config: ExtractConfig = ExtractConfig()) -> None:
        self.config = config
        self._ctx = mp.get_context(config.start_method)
        if config.start_method == "fork":
            _import_extractors()  # once here, shared by every forked worker
        self._slots = [_Slot(self._ctx, config) for _ in range(config.workers or os.cpu_count() or 1)]
        self._failed_starts = 0  # consecutive workers that ended before they were ready

    def _failed_start(self, reason: str) -> None:
        """A worker ended before it was ready. A few in a row mean the workers cannot start at all: say so."""
        self._failed_starts += 1
        log.warning("an extraction worker failed to start (%s); replacing it", reason)
        if self._failed_starts >= MAX_FAILED_STARTS:
            raise RuntimeError(f"{self._failed_starts} extraction workers in a row failed to start, the last: {reason}")

    def _replace(self, i: int) -> list[tuple[Any, str | bytes, str | None]]:
        """Kill worker i and start a new one; returns the pages it had queued behind the head."""
        slot = self._slots[i]
        slot.kill()
        self._slots[i] = _Slot(self._ctx, self.config)
        return list(slot.queue)[1:]

    def imap(self, pages: Iterable[tuple[Any, str | bytes, str | None]]) -> Iterator[tuple[Any, Extraction]]:
        """Yields (key, Extraction) for every (key, html, url), in completion order."""
        config = self.config
        pending: deque[tuple[Any, str | bytes, str | None]] = deque()  # pages taken back from a replaced worker
        source = iter(pages)
        exhausted = False
        while True:
            for slot in self._slots:
                if slot.ready and not slot.queue:
                    page = pending.popleft() if pending else (None if exhausted else next(source, None))
                    if page is None:
                        exhausted = True
                        continue
                    try:
                        slot.submit(page)
                    except OSError:  # the worker died: its sentinel is handled below
                        pending.appendleft(page)
            slots = self._slots
            if exhausted and not pending and not any(s.queue for s in slots):
                return
            timeout = max(0.0, min(s.deadline for s in slots) - time.monotonic())
            ready = set(wait([s.conn for s in slots] + [s.proc.sentinel for s in slots], min(timeout, 3600.0)))
            now = time.monotonic()
            for i, slot in enumerate(slots):
                if slot.conn in ready:
                    try:
                        message = slot.conn.recv()
                    except (EOFError, OSError):
                        message = None
                    if message == _READY:
                        slot.mark_ready()
                        self._failed_starts = 0
                        continue
                    if message is not None:
                        slot.head_done()
                        yield message
                        continue
                gone = slot.conn in ready or slot.proc.sentinel in ready  # the pipe closed: the process is gone
                if gone and slot.ready:
                    reason = slot.death()
                    log.warning(
                        "extraction of %s: %s; starting a new worker", slot.queue[0][2] if slot.queue else None, reason
                    )
                    result = Extraction(None, None, "error", reason)
                elif gone or (not slot.ready and now >= slot.deadline):
                    # it never started a page: its pages go to the next worker, not to an error
                    late = f"did not start within {config.startup_timeout_s:.0f} s"
                    self._failed_start(slot.death() if gone else late)
                    pending.extend(slot.queue)
                    slot.queue.clear()
                    result = None
                elif slot.queue and now >= slot.deadline:
                    log.warning(
                        "extraction of %s passed %.0f s; restarting its worker", slot.queue[0][2], config.timeout_s
                    )
                    result = Extraction(None, None, "timeout", f"over {config.timeout_s} s")
                else:
                    continue
                head = slot.queue[0] if slot.queue else None
                pending.extend(self._replace(i))
                if head is not None and result is not None:
                    yield head[0], result

    def close(self) -> None:
        for slot in self._slots:
            slot.stop()

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: dict[tuple[ExtractConfig, int], ExtractorPool] = {}


def shared_pool(config: ExtractConfig) -> ExtractorPool:
    """A pool kept for the life of this process and thread (e.g. a Dask worker thread running many extraction
    tasks); one per thread because a pool serves one `imap` at a time."""
    key = (config, threading.get_ident())
    if key not in _shared:
        _shared[key] = ExtractorPool(config)
        atexit.register(_shared[key].close)
    return _shared[key]


def close_shared_pools() -> None:
    """Stop the pools of `shared_pool` (also done at exit)."""
    while _shared:
        _shared.popitem()[1].close()


def extract_pages(
    pages: Iterable[tuple[Any, str | bytes, str | None]],
    config: ExtractConfig = ExtractConfig(),
    pool: ExtractorPool | None = None,
) -> Iterator[tuple[Any, Extraction]]:
    """Extract (key, html, url) pages in parallel; yields (key, Extraction) in completion order.

    A page that runs past `config.timeout_s` yields outcome "timeout" and its worker is replaced; a worker that dies
    (segfault, out of memory) yields outcome "error" for its page, naming its signal or exit code, and is replaced.
    """
    if pool is not None:
        yield from pool.imap(pages)
        return
    with ExtractorPool(config) as own:
        yield from own.imap(pages)

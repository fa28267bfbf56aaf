"""Main-text extraction: trafilatura, with newspaper4k as a second opinion, in a pool of worker processes.

How the two extractors are combined was decided by measuring on the 300 pages of trafilatura's evaluation set
(`benchmarks/bench_extract.py --quality`): trafilatura alone has F1 0.920, newspaper4k alone 0.827, keeping only the
paragraphs both agree on 0.88-0.90, "the longer of the two" 0.918. The rule kept here: trafilatura, unless it
finds fewer than 600 words and newspaper4k finds more than twice as many (trafilatura returned a teaser, not the
body). It scores 0.921, the same as asking newspaper4k on every page, while newspaper4k (about 4x slower than
trafilatura) runs on about half of the pages only; a gate at 200 words gives 0.920 with newspaper4k on 17% of pages.

trafilatura has no time limit inside `extract()` and its caches grow with every page, so `extract_pages` runs each
page in a worker process under a deadline (a stuck worker is killed and replaced) and every worker resets the caches
periodically.
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from corpus.htmldepth import too_deep

log = logging.getLogger(__name__)

METHODS = ("combined", "trafilatura", "newspaper4k")


@dataclass(frozen=True)
class ExtractConfig:
    method: str = "combined"  # one of METHODS
    newspaper_ratio: float = 2.0  # "combined": newspaper4k wins when it has more than this many times the words
    second_opinion_below: int = 600  # "combined": newspaper4k only runs when trafilatura finds fewer words
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


@dataclass(frozen=True)
class Extraction:
    text: str | None
    extractor: str | None  # which extractor produced `text`: "trafilatura" or "newspaper4k"
    outcome: str  # "ok", "empty", "too_deep" (nested past the parser's depth limit), "timeout", "too_large", "error"
    error: str | None = None


def _decode(html: str | bytes) -> str:
    if isinstance(html, str):
        return html
    from trafilatura.utils import decode_file  # charset sniffing (meta tags, then detection)

    return decode_file(html)


def _trafilatura(html: str, url: str | None) -> str | None:
    import trafilatura

    return trafilatura.extract(html, url=url, include_comments=False)


def _newspaper(html: str, url: str | None) -> str | None:
    import newspaper

    # fetch_images=False: otherwise parse() downloads images; nlp() is never called (it downloads nltk data).
    article = newspaper.Article(url or "http://localhost/", fetch_images=False)
    article.download(input_html=html)
    article.parse()
    return article.text or None


def _n_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def extract_with(html: str | bytes, url: str | None = None, config: ExtractConfig = ExtractConfig()) -> Extraction:
    """Extract the main text of one page in this process (no time limit: use `extract_pages` for that)."""
    if len(html) > config.max_html_bytes:
        return Extraction(None, None, "too_large")
    page = _decode(html)
    traf = _trafilatura(page, url) if config.method in ("combined", "trafilatura") else None
    news = None
    if config.method == "newspaper4k" or (config.method == "combined" and _n_words(traf) < config.second_opinion_below):
        try:
            news = _newspaper(page, url)
        except Exception as exc:  # newspaper4k raises on some odd pages; trafilatura's answer stands
            log.debug("newspaper4k failed on %s: %s", url, exc)
    text, extractor = choose(traf, news, config)
    if not text:
        depth_error = too_deep(page)  # only asked of empty pages: it parses the page once more
        return Extraction(None, None, "too_deep", depth_error) if depth_error else Extraction(None, None, "empty")
    return Extraction(text, extractor, "ok")


def choose(traf: str | None, news: str | None, config: ExtractConfig = ExtractConfig()) -> tuple[str | None, str | None]:
    """(text, extractor) from the two extractors' outputs by `config.method` (the measured rule for "combined")."""
    if config.method == "trafilatura":
        picked = (traf, "trafilatura")
    elif config.method == "newspaper4k":
        picked = (news, "newspaper4k")
    elif _n_words(traf) < config.second_opinion_below and _n_words(news) > config.newspaper_ratio * _n_words(traf):
        picked = (news, "newspaper4k")
    else:
        picked = (traf, "trafilatura")
    text = picked[0].strip() if picked[0] else None
    return (text, picked[1]) if text else (None, None)


def extract_main_text(html: str | bytes, url: str | None = None) -> str | None:
    """The main text of an HTML page (str or bytes) by the measured default combination, or None if there is none."""
    return extract_with(html, url).text


# ---- worker pool with a per-page deadline ---------------------------------------------------------------------

_READY = "ready"
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
    import newspaper  # noqa: F401  (imported before "ready": the deadline must not count start-up)
    import trafilatura  # noqa: F401
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
    """One worker process and its queue of pages (the one it works on, and one sent ahead so that it never waits
    for this process). The deadline of the page at the head runs from when the worker could start it."""

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
            import newspaper  # noqa: F401  (imported once here, shared by every forked worker)
            import trafilatura  # noqa: F401
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
            for i in range(len(self._slots)):
                while len(self._slots[i].queue) < 2:
                    page = pending.popleft() if pending else (None if exhausted else next(source, None))
                    if page is None:
                        exhausted = True
                        break
                    try:
                        self._slots[i].submit(page)
                    except OSError:  # the worker died: its sentinel is handled below
                        pending.appendleft(page)
                        break
            slots = self._slots
            if not pending and not any(s.queue for s in slots):
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
                    log.warning("extraction of %s: %s; starting a new worker", slot.queue[0][2] if slot.queue else
                                None, reason)
                    result = Extraction(None, None, "error", reason)
                elif gone or (not slot.ready and now >= slot.deadline):
                    # it never started a page: its pages go to the next worker, not to an error
                    late = f"did not start within {config.startup_timeout_s:.0f} s"
                    self._failed_start(slot.death() if gone else late)
                    pending.extend(slot.queue)
                    slot.queue.clear()
                    result = None
                elif slot.queue and now >= slot.deadline:
                    log.warning("extraction of %s passed %.0f s; restarting its worker", slot.queue[0][2],
                                config.timeout_s)
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

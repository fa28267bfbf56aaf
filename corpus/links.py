"""Select WebText's links from Reddit submission dumps: outbound links with at least `min_karma` karma.

Each rule is a `LinkConfig` field. Rules run per submission in this order, and a dropped submission is counted
under the first rule that rejects it:

    malformed_line      the dump line is not a JSON object (counted by the reader)
    self_post           `is_self` (text posts link to Reddit itself)
    reddit_link         the URL points to reddit.com, redd.it, ... (not an outbound link)
    nsfw                `over_18`, when `drop_nsfw`
    missing_created_utc no `created_utc`, while a cutoff is set
    after_cutoff        created at or after `cutoff` (WebText stops at the end of 2017)
    blocked_subreddit   subreddit in `subreddit_blocklist` (case-insensitive)
    invalid_url         not an http(s) URL that canonicalizes
    blocked_domain      host in `domain_blocklist` (subdomains included)
    blocked_extension   the URL path ends with an extension in `extension_blocklist`
    below_min_karma     the URL's karma, summed over all its surviving submissions, is below `min_karma`

Karma is the sum of `score` over every surviving submission of the same canonical URL (as OpenWebText2 did), so
`dropped["below_min_karma"]` counts submissions, like every other reason; `LinkStats.urls_below_min_karma` counts
the URLs.

Memory: one in-memory aggregate per distinct canonical URL that survives the per-submission rules. tracemalloc
measured ~0.9 KB per URL with one submission (a 60-character URL, its original form, one subreddit, an 80-character
title), so ~10 M candidate URLs need ~9 GB. The full 2005-2017 Reddit history has on the order of 10^8 outbound submissions; at that scale run
harvest per year and merge, or replace the dict by an external sort.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.reddit import iter_submissions
from corpus.urls import (
    DOMAIN_BLOCKLIST,
    EXTENSION_BLOCKLIST,
    canonicalize_url,
    has_blocked_extension,
    is_blocked_domain,
    is_reddit_url,
    registered_domain,
    url_host,
)

log = logging.getLogger(__name__)

DROP_REASONS: tuple[str, ...] = (
    "malformed_line", "self_post", "reddit_link", "nsfw", "missing_created_utc", "after_cutoff",
    "blocked_subreddit", "invalid_url", "blocked_domain", "blocked_extension", "below_min_karma",
)

LINKS_SCHEMA = pa.schema([
    ("url", pa.string()),
    ("original_urls", pa.list_(pa.string())),
    ("domain", pa.string()),
    ("karma", pa.int64()),
    ("n_submissions", pa.int64()),
    ("subreddits", pa.list_(pa.string())),
    ("title", pa.string()),
    ("first_created_utc", pa.int64()),
    ("last_created_utc", pa.int64()),
])


@dataclass
class LinkConfig:
    min_karma: int = 3                       # WebText: "at least 3 karma"
    cutoff: str | None = "2018-01-01"        # keep submissions created before this UTC date; None keeps all
    drop_nsfw: bool = True
    subreddit_blocklist: frozenset[str] = frozenset()
    domain_blocklist: frozenset[str] = DOMAIN_BLOCKLIST
    extension_blocklist: frozenset[str] = EXTENSION_BLOCKLIST
    progress_every: int = 1_000_000          # log a progress line every N submissions

    def cutoff_ts(self) -> int | None:
        if self.cutoff is None:
            return None
        try:
            day = datetime.fromisoformat(self.cutoff)
        except ValueError as error:
            raise ValueError(f"LinkConfig.cutoff must be an ISO date like 2018-01-01, got {self.cutoff!r}") from error
        return int(day.replace(tzinfo=day.tzinfo or timezone.utc).timestamp())


@dataclass
class LinkStats:
    submissions: int = 0                     # lines read (malformed ones included)
    kept: int = 0                            # links written (distinct canonical URLs)
    kept_submissions: int = 0                # submissions behind the kept links
    urls_below_min_karma: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Link:
    karma: int = 0
    n_submissions: int = 0
    original_urls: set[str] = field(default_factory=set)
    subreddits: set[str] = field(default_factory=set)
    best_score: int | None = None
    title: str = ""
    first_created_utc: int | None = None
    last_created_utc: int | None = None

    def add(self, record: dict, url: str, score: int) -> None:
        self.karma += score
        self.n_submissions += 1
        self.original_urls.add(url)
        if record.get("subreddit"):
            self.subreddits.add(str(record["subreddit"]))
        if self.best_score is None or score > self.best_score:
            self.best_score, self.title = score, str(record.get("title") or "")
        created = record.get("created_utc")
        if created is not None:
            self.first_created_utc = created if self.first_created_utc is None else min(self.first_created_utc, created)
            self.last_created_utc = created if self.last_created_utc is None else max(self.last_created_utc, created)


def _score(record: dict) -> int:
    try:
        return int(record.get("score") or 0)
    except (TypeError, ValueError):
        return 0


def _drop_reason(record: dict, config: LinkConfig, cutoff: int | None, blocked_subs: frozenset[str]) -> str | None:
    url = record.get("url")
    if record.get("is_self"):
        return "self_post"
    if isinstance(url, str) and is_reddit_url(url.strip()):
        return "reddit_link"
    if config.drop_nsfw and record.get("over_18"):
        return "nsfw"
    if cutoff is not None:
        if record.get("created_utc") is None:
            return "missing_created_utc"
        if record["created_utc"] >= cutoff:
            return "after_cutoff"
    if blocked_subs and str(record.get("subreddit") or "").lower() in blocked_subs:
        return "blocked_subreddit"
    return None


def harvest_links(
    dumps: Sequence[str | Path],
    out_path: Path,
    config: LinkConfig = LinkConfig(),
    progress: Callable[[dict], None] | None = None,
) -> LinkStats:
    """Read every dump, apply the selection rules, write `out_path` (links.parquet, sorted by url) atomically.

    `progress`, if given, receives {"file", "submissions", "candidate_urls", "rate"} every `config.progress_every`
    submissions and at the end of each file.
    """
    out_path = Path(out_path)
    paths = [Path(p) for p in dumps]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:  # fail before hours of reading, not after
        raise FileNotFoundError(f"Reddit dumps not found: {', '.join(missing)}")
    cutoff = config.cutoff_ts()
    blocked_subs = frozenset(s.lower() for s in config.subreddit_blocklist)
    dropped: Counter[str] = Counter()
    links: dict[str, _Link] = {}
    stats = LinkStats()
    start = time.monotonic()

    def count_malformed(path: Path, line_no: int, reason: str) -> None:
        dropped["malformed_line"] += 1
        stats.submissions += 1
        log.warning("%s:%d: skipped malformed line (%s)", path, line_no, reason)

    def report(path: Path) -> None:
        rate = stats.submissions / max(time.monotonic() - start, 1e-9)
        info = {"file": str(path), "submissions": stats.submissions, "candidate_urls": len(links), "rate": rate}
        log.info("links: %(submissions)d submissions read, %(candidate_urls)d candidate URLs, %(rate).0f/s", info)
        if progress:
            progress(info)

    for path in paths:
        for record in iter_submissions(path, on_malformed=count_malformed):
            stats.submissions += 1
            reason = _drop_reason(record, config, cutoff, blocked_subs)
            if reason is None:
                original = str(record.get("url") or "").strip()
                try:
                    url = canonicalize_url(original)
                except ValueError:
                    reason = "invalid_url"
                else:
                    if is_blocked_domain(url_host(url), config.domain_blocklist):
                        reason = "blocked_domain"
                    elif has_blocked_extension(url, config.extension_blocklist):
                        reason = "blocked_extension"
                    else:
                        links.setdefault(url, _Link()).add(record, original, _score(record))
            if reason is not None:
                dropped[reason] += 1
            if stats.submissions % config.progress_every == 0:
                report(path)
        report(path)

    kept = sorted(url for url, link in links.items() if link.karma >= config.min_karma)
    for url, link in links.items():
        if link.karma < config.min_karma:
            stats.urls_below_min_karma += 1
            dropped["below_min_karma"] += link.n_submissions
    _write_links(out_path, kept, links)
    stats.kept = len(kept)
    stats.kept_submissions = sum(links[url].n_submissions for url in kept)
    stats.dropped = {reason: dropped[reason] for reason in DROP_REASONS}
    stats.elapsed_s = time.monotonic() - start
    log.info("links: kept %d URLs from %d submissions; dropped %s", stats.kept, stats.submissions, stats.dropped)
    return stats


def _write_links(out_path: Path, urls: list[str], links: dict[str, _Link]) -> None:
    rows = [links[url] for url in urls]
    table = pa.table({
        "url": urls,
        "original_urls": [sorted(link.original_urls) for link in rows],
        "domain": [registered_domain(url_host(url)) for url in urls],
        "karma": [link.karma for link in rows],
        "n_submissions": [link.n_submissions for link in rows],
        "subreddits": [sorted(link.subreddits) for link in rows],
        "title": [link.title for link in rows],
        "first_created_utc": [link.first_created_utc for link in rows],
        "last_created_utc": [link.last_created_utc for link in rows],
    }, schema=LINKS_SCHEMA)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)

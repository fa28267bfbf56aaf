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
    invalid_score       `score` is missing or not an integer (a JSON integer or a string of one): "lots", null
                        and "3.5" are not counted as 0 karma
    below_min_karma     the URL's karma, summed over all its surviving submissions, is below `min_karma`

Karma is the sum of `score` over every surviving submission of the same canonical URL (as OpenWebText2 did), so
`dropped["below_min_karma"]` counts submissions, like every other reason; `LinkStats.urls_below_min_karma` counts
the URLs.

Memory is bounded, and a long run is resumable. Each surviving submission becomes one compact row (canonical URL,
original URL, subreddit, title, score, created_utc, its number in the dump); `LinkConfig.memory_rows` rows at a time
are spilled into `SPILL_PARTITIONS` hash partitions of the canonical URL, as compressed Arrow IPC files in a work
folder beside the output (`.links.parquet.work/`). A dump's spills sit in its own folder and count only once its
`_DONE` marker is written, last; the marker holds the dump's size and mtime, the selection settings and its drop
counts, so a re-run reuses every dump it finished (and logs so) and reads again a dump it was reading, one that changed
or one read under other settings. The links are then aggregated a few partitions at a time (about `memory_rows` rows
each), and the sorted results are merged into links.parquet, one 1 Mi-row row group at a time (the row groups
`pyarrow.parquet.write_table` makes, so the file is the one a single in-memory table gives).

Peak memory follows `memory_rows`, not the corpus (figures: `benchmarks/bench_links.py`, README). pyarrow's default
mimalloc pool keeps freed pages, so RSS sits above the rows held unless ARROW_DEFAULT_MEMORY_POOL=system. Disk holds
the surviving submissions once, zstd-compressed, until the work folder is removed at the end.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import json
import logging
import re
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from corpus.files import atomic_output, fingerprint, run_once, write_atomic, write_json
from corpus.reddit import DumpReadError, iter_submissions
from corpus.urls import (
    CANONICAL_FORM,
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
    "malformed_line",
    "self_post",
    "reddit_link",
    "nsfw",
    "missing_created_utc",
    "after_cutoff",
    "blocked_subreddit",
    "invalid_url",
    "blocked_domain",
    "blocked_extension",
    "invalid_score",
    "below_min_karma",
)

LINKS_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("original_urls", pa.list_(pa.string())),
        ("domain", pa.string()),
        ("karma", pa.int64()),
        ("n_submissions", pa.int64()),
        ("subreddits", pa.list_(pa.string())),
        ("title", pa.string()),
        ("first_created_utc", pa.int64()),
        ("last_created_utc", pa.int64()),
    ]
)

# One surviving submission; `seq` is its number in its dump, the tie-break of equal scores for the title.
SPILL_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("original_url", pa.string()),
        ("subreddit", pa.string()),
        ("title", pa.string()),
        ("score", pa.int64()),
        ("created_utc", pa.int64()),
        ("seq", pa.int64()),
    ]
)
SPILL_PARTITIONS = 256  # hash partitions of the canonical URL; aggregation takes a run of them at a time
SPILL_FORMAT = 2  # bump when the spill rows or the selection code change, so old spills are not reused
ROW_GROUP_ROWS = 1024 * 1024  # pyarrow.parquet.write_table's default row group
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="zstd")
_DONE = "_DONE"


@dataclass
class LinkConfig:
    min_karma: int = 3  # WebText: "at least 3 karma"; 1 or more (see __post_init__)
    cutoff: str | None = "2018-01-01"  # keep submissions created before this UTC date; None keeps all
    drop_nsfw: bool = True
    subreddit_blocklist: frozenset[str] = frozenset()
    domain_blocklist: frozenset[str] = DOMAIN_BLOCKLIST
    extension_blocklist: frozenset[str] = EXTENSION_BLOCKLIST
    progress_every: int = 1_000_000  # log a progress line every N submissions
    memory_rows: int = 1_000_000  # submissions held in memory before a spill; also the aggregation unit
    # Not a setting: the canonicalize_url version the links are keyed by. Being a field puts it in every key built
    # from this config (the links stage, the build request, the manifest), so a new form redoes an existing build.
    canonical_form: int = field(default=CANONICAL_FORM, init=False)

    def __post_init__(self) -> None:
        # Reddit starts every submission at 1 point, so a link nobody voted down has karma >= 1; a bound of 0 or below
        # keeps links voted below their start, i.e. no karma filter at all, which is not WebText (a sign typo, -5,
        # would silently keep everything).
        if isinstance(self.min_karma, bool) or not isinstance(self.min_karma, int) or self.min_karma < 1:
            raise ValueError(
                f"LinkConfig.min_karma must be an integer of at least 1 (WebText used 3), got {self.min_karma!r}"
            )

    def cutoff_ts(self) -> int | None:
        if self.cutoff is None:
            return None
        try:
            day = datetime.fromisoformat(self.cutoff)
        except ValueError as error:
            raise ValueError(f"LinkConfig.cutoff must be an ISO date like 2018-01-01, got {self.cutoff!r}") from error
        return int(day.replace(tzinfo=day.tzinfo or UTC).timestamp())

    def selection_key(self) -> str:
        """The settings a dump's spills depend on (min_karma applies later, to the aggregated links)."""
        rules = [
            SPILL_FORMAT,
            SPILL_PARTITIONS,
            self.canonical_form,
            self.cutoff,
            self.drop_nsfw,
            sorted(self.subreddit_blocklist),
            sorted(self.domain_blocklist),
            sorted(self.extension_blocklist),
        ]
        return hashlib.sha256(json.dumps(rules).encode()).hexdigest()[:32]


@dataclass
class LinkStats:
    submissions: int = 0  # lines read (malformed ones included)
    kept: int = 0  # links written (distinct canonical URLs)
    kept_submissions: int = 0  # submissions behind the kept links
    urls_below_min_karma: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,18}\s*")
MAX_ABS_SCORE = 2**40  # far above any real score; keeps karma sums inside int64


def _score(record: dict) -> int | None:
    """The submission's score, or None when it is missing or not an integer (a JSON integer or a string of one)."""
    score = record.get("score")
    if isinstance(score, str) and _INTEGER.fullmatch(score):
        score = int(score)
    if isinstance(score, int) and not isinstance(score, bool) and abs(score) <= MAX_ABS_SCORE:
        return score
    return None


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


def classify_submission(
    record: dict, config: LinkConfig, cutoff: int | None, blocked_subs: frozenset[str]
) -> tuple[str | None, str, str]:
    """(the first rule that drops the submission, or None; its canonical URL, or "" when it has none; its URL)."""
    original = str(record.get("url") or "").strip()
    reason = _drop_reason(record, config, cutoff, blocked_subs)
    if reason is not None:
        return reason, "", original
    try:
        url = canonicalize_url(original)
    except ValueError:
        return "invalid_url", "", original
    if is_blocked_domain(url_host(url), config.domain_blocklist):
        return "blocked_domain", url, original
    if has_blocked_extension(url, config.extension_blocklist):
        return "blocked_extension", url, original
    if _score(record) is None:
        return "invalid_score", url, original
    return None, url, original


def harvest_links(
    dumps: Sequence[str | Path],
    out_path: Path,
    config: LinkConfig = LinkConfig(),
    progress: Callable[[dict], None] | None = None,
) -> LinkStats:
    """Read every dump, apply the selection rules, write `out_path` (links.parquet, sorted by url) atomically.

    Runs the parts of `plan_links` in this process, one after the other (the flow runs them on Dask). Dumps finished
    by an interrupted earlier run with the same settings are not read again (see the module docstring). `progress`,
    if given, receives {"file", "submissions", "candidate_urls", "rate"} every `config.progress_every` submissions
    and at the end of each file; `candidate_urls` counts the submissions that passed the per-submission rules so far
    (the rows spilled), since distinct URLs are only known at the end.
    """
    plan = plan_links(dumps, out_path, config)
    start = time.monotonic()
    reporter = DumpProgress(progress)
    done: dict[str, list] = {}
    for step in STEPS:  # the links stage's steps, as corpus.stages.run_stage runs them, here in this process
        done[step] = [run_step_part(plan, step, part, reporter) for part in step_parts(plan, step, done)]
    stats = finish_links(plan, done["aggregate"])
    stats.elapsed_s = time.monotonic() - start
    return stats


class DumpProgress:
    """Progress of dumps read one after the other in one process: counts so far, the finished dumps' included."""

    def __init__(self, progress: Callable[[dict], None] | None = None) -> None:
        self.progress = progress
        self.start = time.monotonic()
        self.submissions = self.rows = 0  # of the dumps finished

    def __call__(self, path: Path, submissions: int, candidates: int) -> None:
        """`submissions` read and `candidates` kept so far from the dump at `path`."""
        submissions += self.submissions
        info = {
            "file": str(path),
            "submissions": submissions,
            "candidate_urls": self.rows + candidates,
            "rate": submissions / max(time.monotonic() - self.start, 1e-9),
        }
        log.info(
            "links: %(submissions)d submissions read, %(candidate_urls)d candidate submissions, %(rate).0f/s", info
        )
        if self.progress:
            self.progress(info)

    def finished(self, path: Path, marker: dict) -> None:
        self.submissions += marker["submissions"]
        self.rows += marker["rows"]
        self(path, 0, 0)


# ---- the parts: read each dump, aggregate each run of partitions, merge ------------------------------------------


@dataclass(frozen=True)
class LinksPlan:
    dumps: tuple[Path, ...]
    folders: tuple[Path, ...]  # each dump's spill folder
    out_path: Path
    config: LinkConfig

    @property
    def work(self) -> Path:
        return self.out_path.with_name(f".{self.out_path.name}.work")

    @property
    def parts(self) -> list[int]:
        """The dumps to read, each once: a dump listed twice counts twice but is read into one folder, once."""
        return sorted({folder: i for i, folder in reversed(list(enumerate(self.folders)))}.values())


def plan_links(dumps: Sequence[str | Path], out_path: Path, config: LinkConfig = LinkConfig()) -> LinksPlan:
    """Check the inputs and settings, and drop what an earlier run left for other dumps; each dump is then one part
    (`read_dump`), each run of partitions another (`aggregate_unit`), and `finish_links` merges."""
    out_path = Path(out_path)
    paths = [Path(p) for p in dumps]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:  # fail before hours of reading, not after
        raise FileNotFoundError(f"Reddit dumps not found: {', '.join(missing)}")
    if config.memory_rows < 1:
        raise ValueError(f"LinkConfig.memory_rows must be at least 1, got {config.memory_rows}")
    config.cutoff_ts()  # a bad cutoff is an error before anything is read
    work = out_path.with_name(f".{out_path.name}.work")
    folders = [work / _dump_folder_name(path) for path in paths]
    _remove_stale(work, {folder.name for folder in folders})
    return LinksPlan(tuple(paths), tuple(folders), out_path, config)


STEPS = ("read", "aggregate")  # the parts of a harvest: each dump, then each run of partitions


def step_parts(plan: LinksPlan, step: str, done: Mapping[str, list]) -> list:
    """The parts of `step` once the steps before it are `done` (their parts' results by step): the dumps to read,
    then (units, index) for each run of partitions. Raises one error naming every dump that could not be read."""
    if step == "read":
        return plan.parts
    if unreadable := [DumpReadError(r["error"]) for r in done["read"] if "error" in r]:
        raise unreadable_dumps_error(plan, unreadable)
    units = tuple(plan_aggregation(plan))
    return [(units, i) for i in range(len(units))]


def run_step_part(plan: LinksPlan, step: str, part: Any, progress: DumpProgress | None = None) -> dict:
    """Run one part of `step` (each is independent of the others of its step, and may run in any process). A dump
    that cannot be read gives {"error": ...}: it is not retried, and the other dumps are read first, so one run finds
    every bad dump."""
    if step == "aggregate":
        units, index = part
        return aggregate_unit(plan, list(units), index)
    try:
        marker = read_dump(plan, part, progress)
    except DumpReadError as error:
        log.error("links: %s", error)
        return {"error": str(error)}
    if progress:
        progress.finished(plan.dumps[part], marker)
    return {"submissions": marker["submissions"], "rows": marker["rows"]}


def _log_progress(path: Path, submissions: int, candidates: int) -> None:
    log.info("links: %s: %d submissions read, %d candidate submissions", path, submissions, candidates)


def read_dump(plan: LinksPlan, index: int, report: Callable[[Path, int, int], None] | None = None) -> dict:
    """One part: spill dump `index`'s surviving submissions, or reuse the spills an earlier run finished; returns
    the dump's marker (counts, drop reasons, rows per partition)."""
    path, folder = plan.dumps[index], plan.folders[index]
    marker = _committed(folder, path, plan.config)
    if marker is None:
        return _spill_dump(path, folder, plan.config, report or _log_progress)
    log.info(
        "links: reusing %s, read by an earlier run (%d submissions, %d candidates)",
        path,
        marker["submissions"],
        marker["rows"],
    )
    return marker


def unreadable_dumps_error(plan: LinksPlan, errors: Sequence[DumpReadError]) -> DumpReadError:
    """One error naming every dump that could not be read to the end (the others' spills stay for a re-run)."""
    n = len(plan.dumps)
    return DumpReadError(
        f"{len(errors)} of {n} Reddit dumps could not be read to the end, so no links were written: "
        + " | ".join(map(str, errors))
        + f" | The other {n - len(errors)} dumps were read completely and are kept in "
        f"{plan.work}: a re-run reuses them and reads only the dumps it has not finished."
    )


def _markers(plan: LinksPlan) -> list[dict]:
    markers = []
    for path, folder in zip(plan.dumps, plan.folders):
        marker = _committed(folder, path, plan.config)
        if marker is None:
            raise ValueError(f"links: {path} has not been read yet (read_dump) with these settings")
        markers.append(marker)
    return markers


def plan_aggregation(plan: LinksPlan) -> list[tuple[int, int]]:
    """Runs of consecutive partitions [lo, hi) of about `memory_rows` rows, once every dump is read."""
    partition_rows = np.zeros(SPILL_PARTITIONS, np.int64)
    for marker in _markers(plan):
        partition_rows += marker["partition_rows"]
    units = _units(partition_rows, plan.config.memory_rows)
    log.info("links: aggregating %d candidate submissions in %d units", int(partition_rows.sum()), len(units))
    return units


def aggregate_unit(plan: LinksPlan, units: list[tuple[int, int]], index: int) -> dict:
    """One part: the links of partitions units[index], sorted by url, into units/unit-<index>.arrow; returns the
    numbers of URLs and submissions below min_karma. A unit already written is kept."""
    unit_dir = plan.work / "units"
    unit_dir.mkdir(parents=True, exist_ok=True)
    lo, hi = units[index]
    # the merge holds one batch per unit file: keep them small when there are many
    batch_rows = max(1024, min(65_536, plan.config.memory_rows // max(len(units), 1)))

    def aggregate() -> dict:
        links, urls_below, submissions_below = _aggregate(
            _read_partitions(list(plan.folders), _markers(plan), lo, hi), plan.config.min_karma
        )

        def write(tmp: Path) -> None:
            with ipc.new_file(tmp, LINKS_SCHEMA, options=_IPC_OPTIONS) as writer:
                writer.write_table(links, max_chunksize=batch_rows)

        write_atomic(unit_dir / f"unit-{index:05d}.arrow", write)
        log.debug("links: aggregated partitions %d-%d: %d links kept", lo, hi - 1, links.num_rows)
        return {"urls_below": urls_below, "submissions_below": submissions_below}

    return run_once(unit_dir / f"unit-{index:05d}.json", aggregate)


def finish_links(plan: LinksPlan, unit_counts: Sequence[dict]) -> LinkStats:
    """Merge the units into links.parquet and count; the work folder goes."""
    markers = _markers(plan)
    unit_files = [plan.work / "units" / f"unit-{i:05d}.arrow" for i in range(len(unit_counts))]
    kept = _merge_into(plan.out_path, unit_files)
    shutil.rmtree(plan.work)
    stats = LinkStats()
    dropped: Counter[str] = Counter()
    for marker in markers:
        stats.submissions += marker["submissions"]
        dropped.update(marker["dropped"])
    rows = sum(marker["rows"] for marker in markers)
    below = sum(c["submissions_below"] for c in unit_counts)
    stats.kept = kept
    stats.kept_submissions = rows - below
    stats.urls_below_min_karma = sum(c["urls_below"] for c in unit_counts)
    dropped["below_min_karma"] = below
    stats.dropped = {reason: dropped[reason] for reason in DROP_REASONS}
    log.info("links: kept %d URLs from %d submissions; dropped %s", stats.kept, stats.submissions, stats.dropped)
    return stats


# ---- reading: one dump -> spill files + a _DONE marker -----------------------------------------------------------


def _dump_folder_name(path: Path) -> str:
    return f"{path.name}.{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"


def _remove_stale(work: Path, keep: set[str]) -> None:
    """Drop what an earlier run left for dumps not in this run, and its half-made aggregation."""
    if not work.is_dir():
        return
    for entry in work.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _fingerprint(path: Path, config: LinkConfig) -> dict:
    name, size, mtime_ns = fingerprint(path)
    return {"dump": name, "size": size, "mtime_ns": mtime_ns, "selection": config.selection_key()}


def _committed(folder: Path, path: Path, config: LinkConfig) -> dict | None:
    """The marker of a dump read completely from this very file under these settings, else None (folder cleared)."""
    try:
        marker = json.loads((folder / _DONE).read_text())
    except (OSError, ValueError):
        marker = None
    if marker is not None and all(marker.get(k) == v for k, v in _fingerprint(path, config).items()):
        return marker
    if folder.exists():
        log.info("links: %s has no finished spills from an earlier run with these settings; reading it", path)
        shutil.rmtree(folder)
    return None


class _Spiller:
    """Surviving submissions of one dump: Python rows, frozen into Arrow batches ordered by hash partition, spilled
    into one IPC file whose record batches are the non-empty partitions in order."""

    def __init__(self, folder: Path, memory_rows: int) -> None:
        self.folder = folder
        self.memory_rows = memory_rows
        self.chunk_rows = min(memory_rows, 8_192)  # Python rows are ~3x the size of Arrow ones: freeze them soon
        self.rows: list[tuple] = []
        self.frozen: list[tuple[pa.RecordBatch, np.ndarray]] = []  # a batch sorted by partition, its partition sizes
        self.held = 0
        self.spills: list[tuple[str, list[int]]] = []  # file name, the partitions of its batches in order
        self.partition_rows = np.zeros(SPILL_PARTITIONS, np.int64)

    def add(self, row: tuple) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.chunk_rows:
            self._freeze()

    def _freeze(self) -> None:
        if not self.rows:
            return
        columns = list(zip(*self.rows))
        # zlib.crc32, not hash(): partitions must agree between runs (str hashing is salted per process)
        parts = np.fromiter(
            (zlib.crc32(url.encode()) % SPILL_PARTITIONS for url in columns[0]), np.int64, len(self.rows)
        )
        batch = pa.RecordBatch.from_arrays(
            [
                _strings(columns[0]),
                _strings(columns[1]),
                _strings(columns[2]),
                _strings(columns[3]),
                pa.array(columns[4], pa.int64()),
                pa.array(columns[5], pa.int64()),
                pa.array(columns[6], pa.int64()),
            ],
            schema=SPILL_SCHEMA,
        )
        self.frozen.append(
            (batch.take(np.argsort(parts, kind="stable")), np.bincount(parts, minlength=SPILL_PARTITIONS))
        )
        self.held += len(self.rows)
        self.rows = []
        if self.held >= self.memory_rows:
            self.spill()

    def spill(self) -> None:
        self._freeze()
        if not self.held:
            return
        sizes = np.array([counts for _, counts in self.frozen])  # frozen batch x partition
        starts = np.cumsum(sizes, axis=1) - sizes
        totals = sizes.sum(axis=0)
        nonempty = [int(p) for p in np.flatnonzero(totals)]
        name = f"spill-{len(self.spills):05d}.arrow"
        with atomic_output(self.folder / name) as tmp, ipc.new_file(tmp, SPILL_SCHEMA, options=_IPC_OPTIONS) as writer:
            for p in nonempty:
                writer.write_batch(
                    pa.concat_batches(
                        [
                            batch.slice(starts[i, p], sizes[i, p])
                            for i, (batch, _) in enumerate(self.frozen)
                            if sizes[i, p]
                        ]
                    )
                )
        self.spills.append((name, nonempty))
        self.partition_rows += totals
        self.frozen, self.held = [], 0


def _strings(values: Sequence[str | None]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except UnicodeEncodeError:  # json.loads lets lone surrogates through; UTF-8 (and Arrow) cannot hold them
        return pa.array(
            [v if v is None else v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for v in values],
            pa.string(),
        )


def _spill_dump(path: Path, folder: Path, config: LinkConfig, report: Callable[[Path, int, int], None]) -> dict:
    cutoff = config.cutoff_ts()
    blocked_subs = frozenset(s.lower() for s in config.subreddit_blocklist)
    fingerprint = _fingerprint(path, config)  # taken first: a dump that changes while read is read again next time
    folder.mkdir(parents=True, exist_ok=True)
    spiller = _Spiller(folder, config.memory_rows)
    dropped: Counter[str] = Counter()
    submissions = candidates = 0

    def count_malformed(path: Path, line_no: int, reason: str) -> None:
        nonlocal submissions
        dropped["malformed_line"] += 1
        submissions += 1
        log.warning("%s:%d: skipped malformed line (%s)", path, line_no, reason)

    for record in iter_submissions(path, on_malformed=count_malformed):
        submissions += 1
        reason, url, original = classify_submission(record, config, cutoff, blocked_subs)
        if reason is None:
            subreddit = record.get("subreddit")
            spiller.add(
                (
                    url,
                    original,
                    str(subreddit) if subreddit else None,
                    str(record.get("title") or ""),
                    _score(record),
                    record.get("created_utc"),
                    submissions,
                )
            )
            candidates += 1
        else:
            dropped[reason] += 1
        if submissions % config.progress_every == 0:
            report(path, submissions, candidates)
    spiller.spill()
    marker = {
        **fingerprint,
        "submissions": submissions,
        "rows": candidates,
        "dropped": dict(dropped),
        "spills": spiller.spills,
        "partition_rows": spiller.partition_rows.tolist(),
    }
    write_json(folder / _DONE, marker)  # the dump counts from here on
    return marker


# ---- aggregation: runs of partitions -> sorted link tables ---------------------------------------------------------


def _units(partition_rows: np.ndarray, memory_rows: int) -> list[tuple[int, int]]:
    """Runs of consecutive partitions [lo, hi) of about `memory_rows` rows (one partition alone may hold more)."""
    units: list[tuple[int, int]] = []
    lo, held = 0, 0
    for p, n in enumerate(partition_rows.tolist()):
        if held and held + n > memory_rows:
            units.append((lo, p))
            lo, held = p, 0
        held += n
    if held:
        units.append((lo, len(partition_rows)))
    return units


def _read_partitions(folders: list[Path], markers: list[dict], lo: int, hi: int) -> pa.Table:
    """The spilled rows of partitions [lo, hi) of every dump; `seq` becomes the order in the whole input."""
    batches = []
    for position, (folder, marker) in enumerate(zip(folders, markers)):
        for name, parts in marker["spills"]:
            first, last = bisect.bisect_left(parts, lo), bisect.bisect_left(parts, hi)
            if first == last:
                continue
            with pa.OSFile(str(folder / name)) as source:
                reader = ipc.open_file(source)
                for i in range(first, last):
                    batch = reader.get_record_batch(i)
                    seq = pc.add(batch.column("seq"), position << 40)  # dumps in the order given, then line order
                    batches.append(batch.set_column(SPILL_SCHEMA.get_field_index("seq"), "seq", seq))
    return pa.Table.from_batches(batches, SPILL_SCHEMA)


def _aggregate(rows: pa.Table, min_karma: int) -> tuple[pa.Table, int, int]:
    """The links with karma >= min_karma, one row per canonical URL, sorted by url; and the number of URLs and of
    submissions below min_karma.

    Groups are runs of one url in rows sorted by url, then score (highest first), then input order, so a group's
    first row holds its title. (Arrow's group_by is not used: it does not promise the order of its groups.)
    """
    rows = rows.sort_by([("url", "ascending"), ("score", "descending"), ("seq", "ascending")])
    starts = np.flatnonzero(_changes(rows["url"].combine_chunks()))
    karma = np.add.reduceat(rows["score"].to_numpy(), starts)
    n_submissions = np.diff(starts, append=rows.num_rows)
    created = rows["created_utc"].combine_chunks()
    dated = created.is_valid().to_numpy(zero_copy_only=False)
    seconds = created.fill_null(0).to_numpy()
    undated = np.add.reduceat(dated.astype(np.int64), starts) == 0
    first = np.minimum.reduceat(np.where(dated, seconds, np.iinfo(np.int64).max), starts)
    last = np.maximum.reduceat(np.where(dated, seconds, np.iinfo(np.int64).min), starts)
    keep = karma >= min_karma
    below = (int(np.count_nonzero(~keep)), int(n_submissions[~keep].sum()))
    urls = rows["url"].take(starts[keep])
    links = pa.Table.from_arrays(
        [
            urls,
            _sorted_distinct(rows, "original_url", urls),
            pa.array([registered_domain(url_host(url)) for url in urls.to_pylist()], pa.string()),
            pa.array(karma[keep]),
            pa.array(n_submissions[keep]),
            _sorted_distinct(rows, "subreddit", urls),
            rows["title"].take(starts[keep]),
            pa.array(first[keep], mask=undated[keep]),
            pa.array(last[keep], mask=undated[keep]),
        ],
        schema=LINKS_SCHEMA,
    )
    return links, *below


def _changes(values: pa.Array) -> np.ndarray:
    """True where a value differs from the one before it (and at the first)."""
    change = np.ones(len(values), bool)
    if len(values) > 1:
        change[1:] = pc.not_equal(values.slice(1), values.slice(0, len(values) - 1)).to_numpy(zero_copy_only=False)
    return change


def _sorted_distinct(rows: pa.Table, column: str, urls: pa.ChunkedArray) -> pa.ListArray:
    """For each of the sorted, distinct `urls`, the sorted distinct non-null values of `column` in its rows."""
    pairs = rows.select(["url", column]).filter(pc.is_valid(rows[column]))
    pairs = pairs.sort_by([("url", "ascending"), (column, "ascending")])
    url, value = pairs["url"].combine_chunks(), pairs[column].combine_chunks()
    first = pa.array(_changes(url) | _changes(value))
    owner = pc.index_in(url.filter(first), value_set=urls)  # null: a URL below min_karma
    value = value.filter(first).filter(owner.is_valid())
    offsets = np.zeros(len(urls) + 1, np.int32)
    np.cumsum(np.bincount(owner.drop_null().to_numpy(), minlength=len(urls)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), value)


# ---- merge: sorted unit files -> links.parquet ---------------------------------------------------------------------


class _UnitRows:
    """The rows of one sorted unit file, handed out in order, a batch in memory at a time."""

    def __init__(self, path: Path) -> None:
        self.reader = ipc.open_file(pa.memory_map(str(path)))
        self.next_batch = 0
        self.batch: pa.RecordBatch | None = None
        self.offset = 0

    def take(self, n: int) -> list[pa.RecordBatch]:
        pieces = []
        while n > 0:
            if self.batch is None or self.offset == self.batch.num_rows:
                if self.next_batch == self.reader.num_record_batches:
                    break
                self.batch, self.offset = self.reader.get_record_batch(self.next_batch), 0
                self.next_batch += 1
            piece = self.batch.slice(self.offset, n)
            self.offset += piece.num_rows
            n -= piece.num_rows
            pieces.append(piece)
        return pieces


def _keyed_urls(path: Path, unit: int) -> Iterator[tuple[str, int]]:
    reader = ipc.open_file(pa.memory_map(str(path)), options=ipc.IpcReadOptions(included_fields=[0]))
    for i in range(reader.num_record_batches):
        yield from zip(reader.get_record_batch(i).column(0).to_pylist(), itertools.repeat(unit))


def _merged(unit_files: list[Path], chunk_rows: int) -> Iterator[pa.Table]:
    """The rows of every unit in url order, `chunk_rows` at a time (units hold disjoint URLs, each sorted)."""
    units = [_UnitRows(path) for path in unit_files]
    if len(units) == 1:
        while pieces := units[0].take(chunk_rows):
            yield pa.Table.from_batches(pieces, LINKS_SCHEMA)
        return
    order_of = heapq.merge(*(_keyed_urls(path, unit) for unit, path in enumerate(unit_files)))
    while True:
        order = np.fromiter((unit for _, unit in itertools.islice(order_of, chunk_rows)), np.int64)
        if not len(order):
            return
        counts = np.bincount(order, minlength=len(units))
        table = pa.Table.from_batches(
            [piece for unit, n in enumerate(counts.tolist()) if n for piece in units[unit].take(n)], LINKS_SCHEMA
        )
        # `table` holds the units one after the other; row k of it goes to the k-th position of its unit in `order`
        position = np.empty(len(order), np.int64)
        position[np.argsort(order, kind="stable")] = np.arange(len(order))
        yield table.take(position)


def _merge_into(out_path: Path, unit_files: list[Path]) -> int:
    """Write links.parquet atomically from the sorted unit files; returns its row count."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with atomic_output(out_path) as tmp, pq.ParquetWriter(tmp, LINKS_SCHEMA, compression="zstd") as writer:
        for chunk in _merged(unit_files, ROW_GROUP_ROWS) if unit_files else ():
            writer.write_table(chunk.combine_chunks(), row_group_size=ROW_GROUP_ROWS)
            rows += chunk.num_rows
        if not rows:  # as write_table writes an empty table
            writer.write_table(LINKS_SCHEMA.empty_table())
    return rows

"""The corpus build as a list of stages over files: links -> fetch -> extract -> filter -> dedup -> wikipedia, then
the shards, manifest and dataset card.

Each stage is a `corpus.stages.Stage` (plan, steps of independent parts, finish); `corpus.stages` owns the keys,
folders and markers, and runs the parts with the mapper it is given. `corpus_stages` is the one list of stages, and
`run_build` the one driver: `flows/webtext.py` passes a mapper that runs parts as Prefect tasks on Dask,
`build_from_warcs` runs them in this process (benchmarks, scripts) or on a `distributed.Client`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus import dedup_parts
from corpus.buildlock import build_lock
from corpus.buildwarnings import build_warnings
from corpus.card import render_card
from corpus.dedup import DedupConfig, signature, text_hash
from corpus.extract import EXTRACTOR_PACKAGES, ExtractConfig, extract_pages, extractor_fingerprint, shared_pool
from corpus.files import fingerprints, run_once, write_atomic, write_json, write_parquet
from corpus.filters import FilterConfig, drop_reason
from corpus.links import STEPS as LINK_STEPS
from corpus.links import LinkConfig, LinksPlan, finish_links, plan_links, run_step_part, step_parts
from corpus.shards import SCHEMA, ShardConfig, write_shards
from corpus.stages import (
    MapParts,
    Stage,
    StageStats,
    completed,
    jsonable,
    map_in_process,
    run_stages,
    stage_key,
)
from corpus.wikipedia import is_wikipedia

log = logging.getLogger(__name__)

EXTRACT_SCHEMA = pa.schema(
    [
        ("record", pa.int64()),  # index of the HTML record in its WARC file
        ("url", pa.string()),
        ("link_url", pa.string()),
        ("fetched_at", pa.string()),
        ("html_bytes", pa.int64()),
        ("outcome", pa.string()),
        ("extractor", pa.string()),
        ("text", pa.string()),
        ("error", pa.string()),
    ]
)
FILTERED_SCHEMA = pa.schema(list(SCHEMA) + [("text_hash", pa.binary(16)), ("minhash", pa.binary())])
REMOVED_ROW_GROUP = 65536  # rows of a removed.parquet read at once


@dataclass(frozen=True)
class BuildConfig:
    extract: ExtractConfig = ExtractConfig()
    filter: FilterConfig = FilterConfig()
    dedup: DedupConfig = DedupConfig()
    shards: ShardConfig = ShardConfig()
    pages_per_part: int = 128  # extraction unit: a crash loses at most the parts in flight
    # documents per dedup partition: sets the memory of every dedup part, not the result (bench_dedup.py --rss)
    dedup_partition_docs: int = 50_000


def resolve_inputs(patterns: Sequence[str | Path] | None, what: str) -> list[Path]:
    """Expand paths and globs, sorted; a pattern matching nothing is an error naming it."""
    paths: list[Path] = []
    for pattern in patterns or []:
        matches = sorted(glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [str(pattern)]
        if not matches or not all(Path(m).is_file() for m in matches):
            raise FileNotFoundError(f"{what} not found: {pattern}")
        paths += [Path(m) for m in matches]
    return sorted(set(paths))


def _outcome_stats(outcomes: Counter[str], items_in: int | None = None, extra: dict | None = None) -> StageStats:
    """Counts of a stage whose parts record an outcome per item: "ok" goes on, the others are drop reasons."""
    dropped = {k: v for k, v in sorted(outcomes.items()) if k != "ok"}
    total = sum(outcomes.values()) if items_in is None else items_in
    return StageStats(total, outcomes.get("ok", 0), dropped, extra or {})


# ---- links (corpus.links) ----------------------------------------------------------------------------------------


def links_key(dumps: Sequence[Path], link_config: Any) -> str:
    return stage_key("links", fingerprints(dumps), link_config)


@dataclass(frozen=True)
class LinksStage(Stage):
    """Reddit dumps -> links.parquet: each dump read by one part, then the karma aggregation by runs of partitions
    (the steps of `corpus.links.harvest_links`, which runs them in one process)."""

    out_dir: Path
    dumps: tuple[Path, ...]
    config: LinkConfig
    name: ClassVar[str] = "links"
    steps: ClassVar[tuple[str, ...]] = LINK_STEPS

    def key(self, upstream: str | None) -> str:
        return links_key(self.dumps, self.config)

    def plan(self, upstream: str | None) -> LinksPlan:
        return plan_links(self.dumps, self.stage_dir / "links.parquet", self.config)

    def parts(self, plan: LinksPlan, step: str, done: Mapping[str, list]) -> Sequence[Any]:
        return step_parts(plan, step, done)

    def run_part(self, plan: LinksPlan, step: str, part: Any) -> dict:
        return run_step_part(plan, step, part)

    def finish(self, plan: LinksPlan, done: Mapping[str, list]) -> StageStats:
        stats = finish_links(plan, done["aggregate"])
        extra = {"kept_submissions": stats.kept_submissions, "urls_below_min_karma": stats.urls_below_min_karma}
        return StageStats(stats.submissions, stats.kept, stats.dropped, extra)


# ---- fetch (corpus.fetch, corpus.fetch_parts) --------------------------------------------------------------------


def fetch_key(links_key: str | None) -> str:
    """The key is the link list only: where pages are routed, and how many parts fetch them, is not what was fetched."""
    return stage_key("fetch", links_key)


@dataclass(frozen=True)
class FetchStage(Stage):
    """links.parquet -> WARC files: the links split by host into `part_count` parts, each fetched by one part."""

    out_dir: Path
    config: Any  # corpus.fetch.FetchConfig
    part_count: int = 1
    name: ClassVar[str] = "fetch"

    def key(self, upstream: str | None) -> str:
        return fetch_key(upstream)

    def plan(self, upstream: str | None) -> int:
        from corpus import fetch_parts

        parts = fetch_parts.plan(self.out_dir / "links" / "links.parquet", self.stage_dir, self.part_count)["parts"]
        log.info("fetch: %d parts by host, up to %d requests each", parts, self.config.concurrency)
        return parts

    def parts(self, plan: int, step: str, done: Mapping[str, list]) -> Sequence[int]:
        return range(plan)

    def run_part(self, plan: int, step: str, part: int) -> dict:
        from corpus import fetch_parts

        def progress(p: dict) -> None:
            log.info("fetch part %d: %d URLs done, %.1f URLs/s, outcomes %s", part, p["done"], p["rate"], p["outcomes"])

        return fetch_parts.fetch_part(self.stage_dir, part, self.config, progress)

    def finish(self, plan: int, done: Mapping[str, list]) -> StageStats:
        """The outcome of every link, from every part's log (also what an earlier, interrupted run fetched)."""
        from corpus import fetch_parts

        outcomes: Counter[str] = Counter()
        for log_path in fetch_parts.logs(self.stage_dir):
            outcomes.update(pq.read_table(log_path, columns=["outcome"]).column("outcome").to_pylist())
        links = json.loads((self.stage_dir / "_plan.json").read_text())["links"]
        return _outcome_stats(outcomes, links, {"outcomes": dict(sorted(outcomes.items()))})


def fetched_warcs(out_dir: Path) -> list[Path]:
    from corpus import fetch_parts

    return fetch_parts.warcs(out_dir / "fetch")


def warc_inputs_key(links_key: str | None, warcs: Sequence[Path]) -> str:
    """The upstream key of extraction from given WARC files (not fetched ones)."""
    return stage_key("warc_inputs", links_key, fingerprints(warcs))


# ---- extract -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractUnit:
    warc: Path
    file_index: int
    chunk: int
    start: int  # first HTML record of the chunk in its WARC file
    stop: int
    offset: int = 0  # byte offset of that record: a part is read without parsing the file before it

    @property
    def name(self) -> str:
        return f"{self.file_index:05d}-{self.chunk:05d}.parquet"

    @staticmethod
    def file_index_of(part: Path) -> int:
        """The WARC file (its index in the extract stage's list) an extract part was read from."""
        return int(part.name.split("-", 1)[0])


@dataclass(frozen=True)
class ExtractPlan:
    """What every extract part is sent: small whatever the number of WARC files (their list stays in the plan file,
    `extract_warcs`)."""

    stage_dir: Path
    pages_per_part: int

    @property
    def warcs(self) -> tuple[Path, ...]:
        return extract_warcs(self.stage_dir.parent)

    def index_marker(self, file_index: int) -> Path:
        return self.stage_dir / "_index" / f"{file_index:05d}.json"


def extract_warcs(out_dir: Path) -> tuple[Path, ...]:
    """The WARC files of the extract stage, in the order of their file index: the one list of them, written by the
    stage's plan (given files, or the fetch stage's)."""
    plan_file = out_dir / "extract" / "_plan.json"
    return _listed_warcs(plan_file, plan_file.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _listed_warcs(plan_file: Path, mtime_ns: int) -> tuple[Path, ...]:
    return tuple(Path(w) for w in json.loads(plan_file.read_text())["warcs"])


@dataclass(frozen=True)
class ExtractStage(Stage):
    """WARC files -> extract/<file>-<chunk>.parquet: each WARC file indexed by one part (the byte offset of every
    `pages_per_part`-th page), then each run of `pages_per_part` pages extracted by one part."""

    out_dir: Path
    config: BuildConfig
    warc_inputs: tuple[Path, ...] | None = None  # given WARC files; None: the fetch stage's
    name: ClassVar[str] = "extract"
    steps: ClassVar[tuple[str, ...]] = ("index", "pages")

    def _warcs(self) -> list[Path]:
        """Read by the driver only: the parts get the list from the plan."""
        return fetched_warcs(self.out_dir) if self.warc_inputs is None else list(self.warc_inputs)

    def key(self, upstream: str | None) -> str:
        if self.warc_inputs is not None:
            upstream = warc_inputs_key(upstream, self.warc_inputs)
        return stage_key(
            "extract",
            upstream,
            fingerprints(self._warcs()),
            self.config.extract,
            self.config.pages_per_part,
            extractor_fingerprint(),
        )

    def plan(self, upstream: str | None) -> ExtractPlan:
        write_json(self.stage_dir / "_plan.json", {"warcs": [str(w) for w in self._warcs()]})
        return ExtractPlan(self.stage_dir, self.config.pages_per_part)

    def for_parts(self) -> Stage:
        return replace(self, warc_inputs=None)  # the parts read the list from the plan

    def parts(self, plan: ExtractPlan, step: str, done: Mapping[str, list]) -> Sequence[Any]:
        warcs = plan.warcs
        if step == "index":
            return range(len(warcs))
        units = []
        for i, warc in enumerate(warcs):
            index = json.loads(plan.index_marker(i).read_text())
            starts = range(0, index["pages"], plan.pages_per_part)
            for c, (start, offset) in enumerate(zip(starts, index["part_offsets"])):
                unit = ExtractUnit(warc, i, c, start, min(index["pages"], start + plan.pages_per_part), offset)
                if not (plan.stage_dir / unit.name).exists():  # finished by an interrupted run
                    units.append(unit)
        return units

    def run_part(self, plan: ExtractPlan, step: str, part: Any) -> dict:
        if step == "pages":
            return extract_unit(self.out_dir, part, self.config.extract)
        from corpus.warc import html_record_offsets

        def index() -> dict:
            offsets = html_record_offsets(plan.warcs[part])
            return {"pages": len(offsets), "part_offsets": offsets[:: plan.pages_per_part]}

        return run_once(plan.index_marker(part), index)

    def finish(self, plan: ExtractPlan, done: Mapping[str, list]) -> StageStats:
        outcomes: Counter[str] = Counter()
        for part in extract_parts(self.out_dir):
            outcomes.update(pq.read_table(part, columns=["outcome"]).column("outcome").to_pylist())
        return _outcome_stats(outcomes)


def extract_unit(out_dir: Path, unit: ExtractUnit, config: ExtractConfig) -> dict[str, int]:
    """Extract one unit into extract/<file>-<chunk>.parquet (skipped when that part exists); returns outcome counts."""
    from corpus.warc import iter_html_records_from

    path = out_dir / "extract" / unit.name
    if not path.exists():
        pages: dict[int, Any] = dict(
            enumerate(iter_html_records_from(unit.warc, unit.offset, unit.stop - unit.start), start=unit.start)
        )
        pages_in = ((i, p.body, p.url) for i, p in pages.items())
        results = dict(extract_pages(pages_in, config, pool=shared_pool(config)))
        rows = [
            {
                "record": i,
                "url": p.url,
                "link_url": p.link_url,
                "fetched_at": p.fetched_at,
                "html_bytes": len(p.body),
                "outcome": results[i].outcome,
                "extractor": results[i].extractor,
                "text": results[i].text,
                "error": results[i].error,
            }
            for i, p in sorted(pages.items())
        ]
        write_parquet(pa.Table.from_pylist(rows, schema=EXTRACT_SCHEMA), path)
    outcomes = pq.read_table(path, columns=["outcome"]).column("outcome").to_pylist()
    return dict(Counter(outcomes))


def extract_parts(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "extract").glob("[0-9]*.parquet"))


# ---- filter ------------------------------------------------------------------------------------------------------


def doc_id(link_url: str) -> str:
    return hashlib.blake2b(link_url.encode(), digest_size=8).hexdigest()


class IdSet:
    """A set of `doc_id`s (16 hex digits) as a sorted array of their 64-bit values: 8 bytes an id."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.unique(values)

    @staticmethod
    def values_of(ids: Sequence[str]) -> np.ndarray:
        if any(len(i) != 16 for i in ids):
            raise ValueError(f"document ids must be 16 hex digits, got e.g. {next(i for i in ids if len(i) != 16)!r}")
        return np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8").astype(np.uint64)

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        """A boolean array: which of `ids` are in the set."""
        values = self.values_of(ids)
        at = np.minimum(np.searchsorted(self.values, values), max(self.values.size - 1, 0))
        return self.values[at] == values if self.values.size else np.zeros(len(values), dtype=bool)

    def __len__(self) -> int:
        return int(self.values.size)


def _link_metadata(links_path: Path | None, urls: list[str]) -> dict[str, dict]:
    """The Reddit metadata of `urls` from a links file, read a batch at a time: memory is the batch and the answer."""
    if links_path is None:
        return {}
    wanted = pa.array(sorted(set(urls)), pa.string())
    found: dict[str, dict] = {}
    columns = ["url", "karma", "subreddits", "title", "first_created_utc"]
    for batch in pq.ParquetFile(links_path).iter_batches(batch_size=65_536, columns=columns):
        matches = batch.filter(pc.is_in(batch.column("url"), value_set=wanted))
        found.update((row["url"], row) for row in matches.to_pylist())
    return found


def filter_part(out_dir: Path, part: Path, links_path: Path | None, config: BuildConfig) -> dict[str, int]:
    """Join extracted pages with their Reddit link, apply the filters, add dedup signatures: filter/<part>."""
    from corpus.urls import canonical_or_none, registered_domain, url_host

    path = out_dir / "filter" / part.name
    if path.exists():
        return json.loads((out_dir / "filter" / f"{part.stem}.json").read_text())
    pages = pq.read_table(part).to_pylist()
    links = [p["link_url"] or canonical_or_none(p["url"]) for p in pages]
    meta = _link_metadata(links_path, [link for link in links if link])
    dropped: Counter[str] = Counter()
    rows = []
    for page, link in zip(pages, links):
        if page["outcome"] != "ok":
            dropped[f"extract_{page['outcome']}"] += 1
            continue
        if link is None:  # a foreign WARC's page at a URL the corpus cannot name (no document id without one)
            dropped["invalid_url"] += 1
            continue
        if links_path is not None and link not in meta:
            dropped["not_in_links"] += 1
            continue
        reason = drop_reason(page["text"], config.filter)
        if reason:
            dropped[reason] += 1
            continue
        m = meta.get(link, {})
        text = page["text"]
        rows.append(
            {
                "id": doc_id(link),
                "url": page["url"],
                "link_url": link,
                "domain": registered_domain(url_host(page["url"])),
                "title": m.get("title"),
                "text": text,
                "karma": m.get("karma", 0),
                "subreddits": m.get("subreddits", []),
                "created_utc": m.get("first_created_utc", 0),
                "fetched_at": page["fetched_at"],
                "extractor": page["extractor"],
                "n_words": len(text.split()),
                "text_hash": text_hash(text),
                "minhash": signature(text, config.dedup).astype("<u8").tobytes(),
            }
        )
    stats = {
        "in": sum(1 for p in pages if p["outcome"] == "ok"),
        "out": len(rows),
        "dropped": {k: v for k, v in dropped.items() if not k.startswith("extract_")},
    }
    write_json(out_dir / "filter" / f"{part.stem}.json", stats)  # first: the part's existence means both exist
    write_parquet(pa.Table.from_pylist(rows, schema=FILTERED_SCHEMA), path)
    return stats


@dataclass(frozen=True)
class FilterStage(Stage):
    """extract parts -> filter parts: pages joined with their Reddit link, filtered, with dedup signatures.

    Fetched pages are joined with the links of the fetch part that fetched them (a part's share of the links, so
    memory and time per part are set by `fetch_part_count`, not by the corpus); pages from given WARC files with the
    whole links.parquet, read a batch at a time."""

    out_dir: Path
    config: BuildConfig
    links_key: str | None = None  # the links stage's, when there is one
    fetched: bool = False  # the pages come from the fetch stage
    name: ClassVar[str] = "filter"

    def key(self, upstream: str | None) -> str:
        return stage_key("filter", upstream, self.links_key, self.config.filter, self.config.dedup)

    def parts(self, plan: Any, step: str, done: Mapping[str, list]) -> Sequence[tuple[Path, Path | None]]:
        parts = extract_parts(self.out_dir)
        if not self.links_key:
            return [(part, None) for part in parts]
        if not self.fetched:
            return [(part, self.out_dir / "links" / "links.parquet") for part in parts]
        from corpus.fetch_parts import part_links

        warcs = extract_warcs(self.out_dir)
        return [(part, part_links(warcs[ExtractUnit.file_index_of(part)])) for part in parts]

    def run_part(self, plan: Any, step: str, part: tuple[Path, Path | None]) -> dict:
        extracted, links_path = part
        return filter_part(self.out_dir, extracted, links_path, self.config)

    def finish(self, plan: Any, done: Mapping[str, list]) -> StageStats:
        dropped: Counter[str] = Counter()
        for s in done["run"]:
            dropped.update(s["dropped"])
        return StageStats(sum(s["in"] for s in done["run"]), sum(s["out"] for s in done["run"]), dict(dropped))


def filtered_parts(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "filter").glob("[0-9]*.parquet"))


# ---- dedup, wikipedia --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupStage(Stage):
    """Exact and near-duplicate removal in the partitioned steps of `corpus.dedup_parts`: dedup/removed.parquet
    (id, reason, duplicate_of). Memory per part is set by `partition_docs`, not by the corpus."""

    out_dir: Path
    config: DedupConfig
    partition_docs: int = BuildConfig.dedup_partition_docs
    name: ClassVar[str] = "dedup"
    steps: ClassVar[tuple[str, ...]] = dedup_parts.STEPS

    def key(self, upstream: str | None) -> str:
        return stage_key("dedup", upstream, self.config)

    def plan(self, upstream: str | None) -> dedup_parts.DedupPlan:
        plan = dedup_parts.plan(self.stage_dir, filtered_parts(self.out_dir), self.config, self.partition_docs)
        log.info("dedup: %d partitions of up to %d documents", plan.partitions, self.partition_docs)
        return plan

    def parts(self, plan: dedup_parts.DedupPlan, step: str, done: Mapping[str, list]) -> Sequence[int]:
        return range(plan.count(step))

    def run_part(self, plan: dedup_parts.DedupPlan, step: str, part: int) -> dict:
        return dedup_parts.run_part(plan, step, part)

    def finish(self, plan: dedup_parts.DedupPlan, done: Mapping[str, list]) -> StageStats:
        table, stats = dedup_parts.finish(plan)
        write_parquet(table, self.stage_dir / "removed.parquet", row_group_size=REMOVED_ROW_GROUP)
        shutil.rmtree(plan.work, ignore_errors=True)  # the shuffled work files
        return StageStats.from_dict(stats)


@dataclass(frozen=True)
class WikipediaStage(Stage):
    """Remove documents on Wikipedia: wikipedia/removed.parquet. A link archived twice goes when either copy is."""

    out_dir: Path
    name: ClassVar[str] = "wikipedia"

    def key(self, upstream: str | None) -> str:
        return stage_key("wikipedia", upstream)

    def plan(self, upstream: str | None) -> int:
        """The documents dedup kept: this stage's input, so no id set of the corpus is held to count them."""
        dedup_stats = completed(self.out_dir / "dedup", upstream or "")
        if dedup_stats is None:
            raise ValueError(f"Wikipedia removal needs the dedup stage finished with key {upstream} in {self.out_dir}")
        return dedup_stats.items_out

    def parts(self, plan: int, step: str, done: Mapping[str, list]) -> Sequence[int]:
        return [0]

    def run_part(self, plan: int, step: str, part: int) -> int:
        dup = _removed_ids(self.out_dir / "dedup" / "removed.parquet")
        wiki: set[str] = set()
        for row in _iter_columns(filtered_parts(self.out_dir), ["id", "url", "link_url"], removed=dup):
            if is_wikipedia(row["url"], row["link_url"]):
                wiki.add(row["id"])
        table = pa.table({"id": sorted(wiki)}, schema=pa.schema([("id", pa.string())]))
        write_parquet(table, self.stage_dir / "removed.parquet", row_group_size=REMOVED_ROW_GROUP)
        return len(wiki)

    def finish(self, plan: int, done: Mapping[str, list]) -> StageStats:
        return StageStats(plan, plan - done["run"][0], {"wikipedia": done["run"][0]})


def _iter_columns(parts: Sequence[Path], columns: list[str], removed: IdSet | None = None) -> Iterator[dict]:
    """Rows of the filtered parts, a row group at a time; with `removed`, only rows whose id is not in it."""
    for part in parts:
        pf = pq.ParquetFile(part)
        for i in range(pf.num_row_groups):
            table = pf.read_row_group(i, columns=columns)
            if removed is not None and len(removed):
                table = table.filter(pa.array(~removed.contains(table.column("id").to_pylist())))
            yield from table.to_pylist()


def _removed_ids(*paths: Path) -> IdSet:
    """The ids listed in removed.parquet files (those that exist), read a row group at a time."""
    values = [np.empty(0, dtype=np.uint64)]
    for path in paths:
        if path.exists():
            pf = pq.ParquetFile(path)
            values += [
                IdSet.values_of(pf.read_row_group(i, columns=["id"]).column("id").to_pylist())
                for i in range(pf.num_row_groups)
            ]
    return IdSet(np.concatenate(values))


# ---- shards, manifest, card --------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    """The installed versions of what decides the corpus's bytes: the extractors (the extract stage's key holds the
    same list) and the other stages' libraries."""
    names = [*EXTRACTOR_PACKAGES, "datasketch", "pyarrow", "py3langid", "warcio", "zstandard"]
    return {name: version(name) for name in names}


def run_shards(
    out_dir: Path, upstream_key: str, config: BuildConfig, stage_stats: list[dict], run_config: dict
) -> tuple[dict, bool]:
    """Write shards, manifest.json and the card; returns (manifest, True if it was already there)."""
    key = stage_key("shards", upstream_key, config.shards)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and (out_dir / "shards").is_dir():
            return manifest, True
    removed = _removed_ids(out_dir / "dedup" / "removed.parquet", out_dir / "wikipedia" / "removed.parquet")
    parts = filtered_parts(out_dir)
    files = write_shards(lambda: _iter_columns(parts, SCHEMA.names, removed), out_dir / "shards", config.shards)
    domains: Counter[str] = Counter()
    extractors: Counter[str] = Counter()
    words = text_bytes = 0
    split_counts: Counter[str] = Counter()
    for f in files:
        shard = pq.ParquetFile(out_dir / "shards" / f.name)
        for i in range(shard.num_row_groups):  # a row group at a time: a shard can be larger than memory allows
            table = shard.read_row_group(i, columns=["domain", "extractor", "n_words", "text"])
            domains.update(table.column("domain").to_pylist())
            extractors.update(table.column("extractor").to_pylist())
            words += pc.sum(table.column("n_words")).as_py() or 0
            text_bytes += pc.sum(pc.binary_length(table.column("text").cast(pa.binary()))).as_py() or 0
        split_counts[f.split] += f.rows
    documents = sum(f.rows for f in files)
    stages = stage_stats + [
        {"stage": "shards", "in": stage_stats[-1]["out"] if stage_stats else documents, "out": documents, "dropped": {}}
    ]
    manifest = {
        "key": key,
        "config": run_config,
        "versions": _versions(),
        "stages": stages,
        "totals": {
            "documents": documents,
            "words": words,
            "text_bytes": text_bytes,
            "train_documents": split_counts["train"],
            "val_documents": split_counts["val"],
            "shard_bytes": sum(f.bytes for f in files),
        },
        "extractors": dict(extractors),
        "top_domains": sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))[:25],
        "shards": [f.to_dict() for f in files],
        "warnings": build_warnings(stages, split_counts["val"], config.shards.val_fraction),
    }
    for warning in manifest["warnings"]:
        log.warning("webtext build in %s: %s", out_dir, warning)
    card = render_card(json.loads(json.dumps(jsonable(manifest))))
    (out_dir / "shards" / "README.md").write_text(card)
    write_json(manifest_path, jsonable(manifest))  # written last: the build's completion marker
    return manifest, False


def config_summary(config: BuildConfig, link_config: Any = None, **extra: Any) -> dict:
    """The configuration as it goes into manifest.json (and the card)."""
    summary = jsonable(
        {
            "links": link_config,
            "extract": config.extract,
            "filter": config.filter,
            "dedup": config.dedup,
            "shards": config.shards,
            "pages_per_part": config.pages_per_part,
        }
    )
    summary["dedup"].pop("lsh_storage", None)  # may hold a Redis address; not a property of the data
    return {**summary, **jsonable(extra)}


REQUEST_FILE = "_REQUEST"


def finished_build(out_dir: Path, request_key: str) -> dict | None:
    """manifest.json of a build finished from the same inputs and settings, or None."""
    manifest, request = out_dir / "manifest.json", out_dir / REQUEST_FILE
    if manifest.exists() and request.exists() and request.read_text() == request_key and (out_dir / "shards").is_dir():
        return json.loads(manifest.read_text())
    return None


def record_request(out_dir: Path, request_key: str) -> None:
    write_atomic(out_dir / REQUEST_FILE, lambda tmp: tmp.write_text(request_key))


# ---- the build ---------------------------------------------------------------------------------------------------


def corpus_stages(
    out_dir: Path,
    config: BuildConfig,
    dumps: Sequence[Path] = (),
    link_config: Any = None,
    warc_inputs: Sequence[Path] | None = None,
    fetch_config: Any = None,
    fetch_part_count: int = 1,
) -> list[Stage]:
    """The build's stages in order: links (with `dumps`) -> fetch (when no `warc_inputs` are given) -> extract ->
    filter -> dedup -> wikipedia."""
    stages: list[Stage] = []
    if dumps:
        stages.append(LinksStage(out_dir, tuple(dumps), link_config))
    if warc_inputs is None:
        if not dumps:
            raise ValueError("a build needs Reddit dumps (to fetch their links) or WARC files, got neither")
        stages.append(FetchStage(out_dir, fetch_config, fetch_part_count))
    return stages + [
        ExtractStage(out_dir, config, None if warc_inputs is None else tuple(warc_inputs)),
        FilterStage(out_dir, config, links_key(dumps, link_config) if dumps else None, warc_inputs is None),
        DedupStage(out_dir, config.dedup, config.dedup_partition_docs),
        WikipediaStage(out_dir),
    ]


@dataclass
class BuildResult:
    manifest: dict
    already_done: bool
    stage_seconds: dict[str, float] = field(default_factory=dict)


def run_build(
    out_dir: Path, stages: Sequence[Stage], config: BuildConfig, run_config: dict, map_parts: MapParts
) -> BuildResult:
    """Run the stages, then write the shards, manifest.json and the card (as one more part: on a worker when the
    mapper runs parts on a cluster)."""
    result = run_stages(stages, map_parts)
    rows = [stats.row(name) for name, stats in result.stats.items()]
    manifest, done = map_parts("shards", run_shards, (out_dir, result.key, config, rows), [run_config])[0]
    return BuildResult(manifest, done, result.seconds)


def build_from_warcs(
    warcs: Sequence[Path], out_dir: Path, config: BuildConfig = BuildConfig(), map_parts: MapParts = map_in_process
) -> BuildResult:
    """Extract -> filter -> dedup -> wikipedia -> shards from WARC files without Prefect: in this process by default,
    on a Dask cluster with `map_parts=corpus.stages.dask_map_parts(client)`. Holds `out_dir` for the whole build
    (corpus.buildlock): another build there is refused at once."""
    with build_lock(out_dir) as out:
        stages = corpus_stages(out, config, warc_inputs=[Path(w) for w in warcs])
        return run_build(out, stages, config, config_summary(config), map_parts)

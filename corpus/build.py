"""The corpus build as resumable stages over files: links -> fetch -> extract -> filter -> dedup -> wikipedia -> shards.

Every stage writes into its own folder under `out_dir` and ends with `_SUCCESS.json` holding a key (a hash of its
inputs and configuration) and its counts. A stage whose marker holds the current key is skipped; a stage folder left
by an interrupted run with the same key keeps its finished parts (extract and filter are written part by part, each
part atomically), and a folder made with another key is cleared first. `flows/webtext.py` runs these functions as
Prefect tasks; `build_corpus` runs them in one process (benchmarks, scripts).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus import dedup_parts
from corpus.buildlock import build_lock
from corpus.buildwarnings import build_warnings
from corpus.card import render_card
from corpus.dedup import DedupConfig, signature, text_hash
from corpus.extract import ExtractConfig, extract_pages, shared_pool
from corpus.files import fingerprints, write_json, write_parquet
from corpus.filters import FilterConfig, drop_reason
from corpus.shards import SCHEMA, ShardConfig, write_shards
from corpus.wikipedia import is_wikipedia

log = logging.getLogger(__name__)
MARKER = "_SUCCESS.json"
STAGES = ("links", "fetch", "extract", "filter", "dedup", "wikipedia", "shards")

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


@dataclass(frozen=True)
class BuildConfig:
    extract: ExtractConfig = ExtractConfig()
    filter: FilterConfig = FilterConfig()
    dedup: DedupConfig = DedupConfig()
    shards: ShardConfig = ShardConfig()
    pages_per_part: int = 128  # extraction unit: a crash loses at most the parts in flight
    # documents per dedup partition: sets the memory of every dedup part, not the result (bench_dedup.py --rss)
    dedup_partition_docs: int = 50_000


# ---- stage bookkeeping ------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Path):
        return str(value)
    return value


def stage_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(_jsonable(parts), sort_keys=True).encode()).hexdigest()[:32]


def _write_json(path: Path, data: Any) -> None:
    write_json(path, _jsonable(data))


def completed(stage_dir: Path, key: str) -> dict | None:
    """The counts of a stage finished with this key, or None."""
    marker = stage_dir / MARKER
    if marker.exists():
        data = json.loads(marker.read_text())
        if data.get("key") == key:
            return data["stats"]
    return None


def begin(stage_dir: Path, key: str) -> None:
    """Prepare a stage folder: keep finished parts of an interrupted run with the same key, else start clean."""
    key_file = stage_dir / "_KEY"
    if stage_dir.exists() and (not key_file.exists() or key_file.read_text() != key):
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)


def finish(stage_dir: Path, key: str, stats: dict) -> dict:
    _write_json(stage_dir / MARKER, {"key": key, "stats": stats})
    return stats


def _write_parquet(table: pa.Table, path: Path, row_group_size: int | None = None) -> None:
    write_parquet(table, path, row_group_size=row_group_size)


def resolve_inputs(patterns: Sequence[str | Path] | None, what: str) -> list[Path]:
    """Expand paths and globs, sorted; a pattern matching nothing is an error naming it."""
    paths: list[Path] = []
    for pattern in patterns or []:
        matches = sorted(glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [str(pattern)]
        if not matches or not all(Path(m).is_file() for m in matches):
            raise FileNotFoundError(f"{what} not found: {pattern}")
        paths += [Path(m) for m in matches]
    return sorted(set(paths))


# ---- links and fetch (corpus.links / corpus.fetch) --------------------------------------------------------------


def links_key(dumps: Sequence[Path], link_config: Any) -> str:
    return stage_key("links", fingerprints(dumps), link_config)


def plan_links(out_dir: Path, key: str, dumps: Sequence[Path], link_config: Any) -> Any:
    """Prepare the links stage folder; the parts are corpus.links' (one per dump, one per run of partitions)."""
    from corpus.links import plan_links

    stage_dir = out_dir / "links"
    begin(stage_dir, key)
    return plan_links(dumps, stage_dir / "links.parquet", link_config)


def finish_links(out_dir: Path, key: str, plan: Any, unit_counts: Sequence[dict]) -> dict:
    from corpus.links import finish_links

    return finish(out_dir / "links", key, finish_links(plan, unit_counts).to_dict())


def run_links(dumps: Sequence[Path], out_dir: Path, link_config: Any) -> tuple[str, dict]:
    from corpus.links import harvest_links

    stage_dir = out_dir / "links"
    key = links_key(dumps, link_config)
    if (stats := completed(stage_dir, key)) is not None:
        return key, stats
    begin(stage_dir, key)
    result = harvest_links(dumps, stage_dir / "links.parquet", link_config)
    return key, finish(stage_dir, key, result.to_dict())


def fetch_key(links_key: str) -> str:
    """The key is the link list only: where pages are routed, and how many parts fetch them, is not what was fetched."""
    return stage_key("fetch", links_key)


def plan_fetch(out_dir: Path, key: str, parts: int) -> int:
    """Prepare the fetch stage folder and split the links into parts by host (corpus.fetch_parts); returns the count."""
    from corpus import fetch_parts

    stage_dir = out_dir / "fetch"
    begin(stage_dir, key)
    return fetch_parts.plan(out_dir / "links" / "links.parquet", stage_dir, parts)["parts"]


def finish_fetch(out_dir: Path, key: str) -> dict:
    """The outcome of every link, from every part's log (also what an earlier, interrupted run fetched)."""
    from corpus import fetch_parts

    stage_dir = out_dir / "fetch"
    outcomes: Counter[str] = Counter()
    for log_path in fetch_parts.logs(stage_dir):
        outcomes.update(pq.read_table(log_path, columns=["outcome"]).column("outcome").to_pylist())
    links = json.loads((stage_dir / "_plan.json").read_text())["links"]
    stats = {
        "in": links,
        "out": outcomes.get("ok", 0),
        "dropped": {k: v for k, v in sorted(outcomes.items()) if k != "ok"},
        "outcomes": dict(sorted(outcomes.items())),
    }
    return finish(stage_dir, key, stats)


def run_fetch(
    out_dir: Path, links_key: str, fetch_config: Any, progress: Callable[[dict], None] | None = None, parts: int = 1
) -> tuple[str, dict]:
    """Fetch every link, part after part in this process (the flow runs the parts on the Dask cluster)."""
    from corpus import fetch_parts

    key = fetch_key(links_key)
    if (stats := completed(out_dir / "fetch", key)) is not None:
        return key, stats
    for k in range(plan_fetch(out_dir, key, parts)):
        fetch_parts.fetch_part(out_dir / "fetch", k, fetch_config, progress)
    return key, finish_fetch(out_dir, key)


def warc_inputs_key(links_key: str | None, warcs: Sequence[Path]) -> str:
    """The upstream key of extraction from given WARC files (not fetched ones): the flow's and build_from_warcs'."""
    return stage_key("warc_inputs", links_key, fingerprints(warcs))


def fetched_warcs(out_dir: Path) -> list[Path]:
    from corpus import fetch_parts

    return fetch_parts.warcs(out_dir / "fetch")


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


def plan_extract(
    out_dir: Path, warcs: Sequence[Path], upstream_key: str, config: BuildConfig
) -> tuple[str, list[ExtractUnit]]:
    """Split the WARC files into units of `pages_per_part` HTML records; returns (stage key, units not done yet)."""
    from corpus.warc import html_record_offsets

    stage_dir = out_dir / "extract"
    key = stage_key("extract", upstream_key, fingerprints(warcs), config.extract, config.pages_per_part)
    if completed(stage_dir, key) is not None:
        return key, []
    begin(stage_dir, key)
    plan_file = stage_dir / "_plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
    else:  # per WARC file: its number of HTML pages and the byte offset of each part's first page
        plan = []
        for warc in warcs:
            offsets = html_record_offsets(warc)
            plan.append({"pages": len(offsets), "part_offsets": offsets[:: config.pages_per_part]})
        _write_json(plan_file, plan)
    units = []
    for i, (warc, file_plan) in enumerate(zip(warcs, plan)):
        n = file_plan["pages"]
        for c, (start, offset) in enumerate(zip(range(0, n, config.pages_per_part), file_plan["part_offsets"])):
            units.append(ExtractUnit(warc, i, c, start, min(n, start + config.pages_per_part), offset))
    return key, units


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
        _write_parquet(pa.Table.from_pylist(rows, schema=EXTRACT_SCHEMA), path)
    outcomes = pq.read_table(path, columns=["outcome"]).column("outcome").to_pylist()
    return dict(Counter(outcomes))


def finish_extract(out_dir: Path, key: str, units_done: Sequence[dict[str, int]] | None = None) -> dict:
    stage_dir = out_dir / "extract"
    if (stats := completed(stage_dir, key)) is not None:
        return stats
    outcomes: Counter[str] = Counter()
    for part in extract_parts(out_dir):
        outcomes.update(pq.read_table(part, columns=["outcome"]).column("outcome").to_pylist())
    pages = sum(outcomes.values())
    stats = {
        "in": pages,
        "out": outcomes.get("ok", 0),
        "dropped": {k: v for k, v in sorted(outcomes.items()) if k != "ok"},
    }
    return finish(stage_dir, key, stats)


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
    if links_path is None:
        return {}
    table = pq.read_table(links_path, columns=["url", "karma", "subreddits", "title", "first_created_utc"])
    table = table.filter(pc.is_in(table.column("url"), value_set=pa.array(sorted(set(urls)), pa.string())))
    return {row["url"]: row for row in table.to_pylist()}


def filter_part(out_dir: Path, part: Path, links_path: Path | None, config: BuildConfig) -> dict[str, int]:
    """Join extracted pages with their Reddit link, apply the filters, add dedup signatures: filter/<part>."""
    from corpus.urls import canonicalize_url, registered_domain, url_host

    path = out_dir / "filter" / part.name
    if path.exists():
        return json.loads((out_dir / "filter" / f"{part.stem}.json").read_text())
    pages = pq.read_table(part).to_pylist()
    links = [p["link_url"] or canonicalize_url(p["url"]) for p in pages]
    meta = _link_metadata(links_path, links)
    dropped: Counter[str] = Counter()
    rows = []
    for page, link in zip(pages, links):
        if page["outcome"] != "ok":
            dropped[f"extract_{page['outcome']}"] += 1
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
    _write_json(out_dir / "filter" / f"{part.stem}.json", stats)  # first: the part's existence means both exist
    _write_parquet(pa.Table.from_pylist(rows, schema=FILTERED_SCHEMA), path)
    return stats


def filter_key(extract_key: str, links_key: str | None, config: BuildConfig) -> str:
    return stage_key("filter", extract_key, links_key, config.filter, config.dedup)


def filtered_parts(out_dir: Path) -> list[Path]:
    return sorted((out_dir / "filter").glob("[0-9]*.parquet"))


def _merge_counts(stats: Sequence[dict]) -> dict:
    dropped: Counter[str] = Counter()
    for s in stats:
        dropped.update(s["dropped"])
    return {
        "in": sum(s["in"] for s in stats),
        "out": sum(s["out"] for s in stats),
        "dropped": dict(sorted(dropped.items())),
    }


# ---- dedup, wikipedia --------------------------------------------------------------------------------------------


def _iter_columns(parts: Sequence[Path], columns: list[str], removed: IdSet | None = None) -> Iterator[dict]:
    """Rows of the filtered parts, a row group at a time; with `removed`, only rows whose id is not in it."""
    for part in parts:
        pf = pq.ParquetFile(part)
        for i in range(pf.num_row_groups):
            table = pf.read_row_group(i, columns=columns)
            if removed is not None and len(removed):
                table = table.filter(pa.array(~removed.contains(table.column("id").to_pylist())))
            yield from table.to_pylist()


def dedup_key(upstream_key: str, config: DedupConfig) -> str:
    return stage_key("dedup", upstream_key, config)


def plan_dedup(out_dir: Path, key: str, config: DedupConfig, partition_docs: int) -> dedup_parts.DedupPlan:
    """Prepare the dedup stage folder and split its work into parts (corpus.dedup_parts)."""
    stage_dir = out_dir / "dedup"
    begin(stage_dir, key)
    return dedup_parts.plan(stage_dir, filtered_parts(out_dir), config, partition_docs)


def finish_dedup(out_dir: Path, key: str, plan: dedup_parts.DedupPlan) -> dict:
    """dedup/removed.parquet (id, reason, duplicate_of) from the finished parts; the shuffled work files go."""
    stage_dir = out_dir / "dedup"
    table, stats = dedup_parts.finish(plan)
    _write_parquet(table, stage_dir / "removed.parquet", row_group_size=REMOVED_ROW_GROUP)
    finish(stage_dir, key, stats)
    shutil.rmtree(plan.work, ignore_errors=True)
    return stats


def run_dedup(
    out_dir: Path, upstream_key: str, config: DedupConfig, partition_docs: int = BuildConfig.dedup_partition_docs
) -> tuple[str, dict]:
    """Exact and near-duplicate removal, every part in this process: dedup/removed.parquet lists the removed ids.

    Memory is set by `partition_docs` (corpus.dedup_parts), not by the corpus; the flow runs the same parts on Dask.
    """
    key = dedup_key(upstream_key, config)
    if (stats := completed(out_dir / "dedup", key)) is not None:
        return key, stats
    plan = plan_dedup(out_dir, key, config, partition_docs)
    dedup_parts.run_all(plan)
    return key, finish_dedup(out_dir, key, plan)


REMOVED_ROW_GROUP = 65536  # rows of removed.parquet read at once


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


def run_wikipedia(out_dir: Path, upstream_key: str) -> tuple[str, dict]:
    """Remove documents on Wikipedia: wikipedia/removed.parquet. A link archived twice goes when either copy is.

    `upstream_key` is the dedup stage's key: its counts give this stage's input, so no id set of the corpus is held.
    """
    stage_dir = out_dir / "wikipedia"
    key = stage_key("wikipedia", upstream_key)
    if (stats := completed(stage_dir, key)) is not None:
        return key, stats
    dedup_stats = completed(out_dir / "dedup", upstream_key)
    if dedup_stats is None:
        raise ValueError(
            f"Wikipedia removal needs the dedup stage finished with key {upstream_key} in {out_dir / 'dedup'}"
        )
    begin(stage_dir, key)
    dup = _removed_ids(out_dir / "dedup" / "removed.parquet")
    wiki: set[str] = set()
    for row in _iter_columns(filtered_parts(out_dir), ["id", "url", "link_url"], removed=dup):
        if is_wikipedia(row["url"], row["link_url"]):
            wiki.add(row["id"])
    table = pa.table({"id": sorted(wiki)}, schema=pa.schema([("id", pa.string())]))
    _write_parquet(table, stage_dir / "removed.parquet", row_group_size=REMOVED_ROW_GROUP)
    kept = dedup_stats["out"]
    return key, finish(stage_dir, key, {"in": kept, "out": kept - len(wiki), "dropped": {"wikipedia": len(wiki)}})


# ---- shards, manifest, card --------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    names = [
        "trafilatura",
        "resiliparse",
        "readability-lxml",
        "newspaper4k",
        "datasketch",
        "pyarrow",
        "py3langid",
        "warcio",
        "zstandard",
    ]
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
    card = render_card(json.loads(json.dumps(_jsonable(manifest))))
    (out_dir / "shards" / "README.md").write_text(card)
    _write_json(manifest_path, manifest)  # written last: the build's completion marker
    return manifest, False


def config_summary(config: BuildConfig, link_config: Any = None, **extra: Any) -> dict:
    """The configuration as it goes into manifest.json (and the card)."""
    summary = _jsonable(
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
    return {**summary, **_jsonable(extra)}


REQUEST_FILE = "_REQUEST"


def finished_build(out_dir: Path, request_key: str) -> dict | None:
    """manifest.json of a build finished from the same inputs and settings, or None."""
    manifest, request = out_dir / "manifest.json", out_dir / REQUEST_FILE
    if manifest.exists() and request.exists() and request.read_text() == request_key and (out_dir / "shards").is_dir():
        return json.loads(manifest.read_text())
    return None


def record_request(out_dir: Path, request_key: str) -> None:
    tmp = out_dir / f".{REQUEST_FILE}.tmp"
    tmp.write_text(request_key)
    os.replace(tmp, out_dir / REQUEST_FILE)


def stage_row(stage: str, stats: dict) -> dict:
    return {"stage": stage, "in": stats["in"], "out": stats["out"], "dropped": dict(stats.get("dropped", {}))}


@dataclass
class BuildResult:
    manifest: dict
    already_done: bool
    stage_seconds: dict[str, float] = field(default_factory=dict)


def build_from_warcs(
    warcs: Sequence[Path],
    out_dir: Path,
    config: BuildConfig = BuildConfig(),
    links_path: Path | None = None,
    links_key: str | None = None,
) -> BuildResult:
    """Extract -> filter -> dedup -> wikipedia -> shards in this process (no Prefect); see flows/webtext.py.

    Holds `out_dir` for the whole build (corpus.buildlock): another build there is refused at once."""
    with build_lock(out_dir) as out:
        return _build_from_warcs(warcs, out, config, links_path, links_key)


def _build_from_warcs(
    warcs: Sequence[Path], out_dir: Path, config: BuildConfig, links_path: Path | None, links_key: str | None
) -> BuildResult:
    seconds: dict[str, float] = {}
    t = time.monotonic()
    upstream = warc_inputs_key(links_key, warcs)
    ekey, units = plan_extract(out_dir, warcs, upstream, config)
    for unit in units:
        extract_unit(out_dir, unit, config.extract)
    extract_stats = finish_extract(out_dir, ekey)
    seconds["extract"] = time.monotonic() - t
    fkey, filter_stats = run_filter_stage(out_dir, ekey, links_path, links_key, config)
    seconds["filter"] = time.monotonic() - t - sum(seconds.values())
    dkey, dedup_stats = run_dedup(out_dir, fkey, config.dedup, config.dedup_partition_docs)
    seconds["dedup"] = time.monotonic() - t - sum(seconds.values())
    wkey, wiki_stats = run_wikipedia(out_dir, dkey)
    rows = [
        stage_row("extract", extract_stats),
        stage_row("filter", filter_stats),
        stage_row("dedup", dedup_stats),
        stage_row("wikipedia", wiki_stats),
    ]
    manifest, done = run_shards(out_dir, wkey, config, rows, config_summary(config))
    seconds["shards"] = time.monotonic() - t - sum(seconds.values())
    return BuildResult(manifest, done, seconds)


def run_filter_stage(
    out_dir: Path, extract_key: str, links_path: Path | None, links_key: str | None, config: BuildConfig
) -> tuple[str, dict]:
    key = filter_key(extract_key, links_key, config)
    stage_dir = out_dir / "filter"
    if (stats := completed(stage_dir, key)) is not None:
        return key, stats
    begin(stage_dir, key)
    results = [filter_part(out_dir, part, links_path, config) for part in extract_parts(out_dir)]
    return key, finish_filter(out_dir, key, results)


def finish_filter(out_dir: Path, key: str, part_stats: Sequence[dict]) -> dict:
    """Record the filter stage done with the counts of all its parts summed (the flow filters parts in parallel)."""
    return finish(out_dir / "filter", key, _merge_counts(part_stats))

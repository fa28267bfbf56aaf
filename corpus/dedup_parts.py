"""Exact and near-duplicate removal in parts: the result of `corpus.dedup.Deduplicator` without a whole-corpus index.

Every step reads and writes Parquet files under `<dedup>/_work` and is split into independent parts (one Dask task
each in the flow). A part holds about `partition_docs` documents' worth of rows, so memory per process is set by that
setting, not by the corpus; disk holds the shuffled rows (about 2 KB a document: two copies of the 512-byte
signature, and 14 band keys at the default threshold) plus the candidates' shingles, until the stage ends.

 1. scatter  (per group of filter parts): rows -> partitions by document id
 2. repeats  (per id partition): a link archived twice keeps its first copy -> partitions by text hash
 3. exact    (per text partition): exact groups keep their best; the best's LSH band keys -> partitions by band key
 4. buckets  (per band partition): documents sharing a band key are candidate pairs -> partitions by first id
 5. shingles (per group of filter parts): shingle hashes of candidate documents -> partitions by id
 6. attach   (per id partition): unique candidate pairs get the first document's shingles -> partitions by second id
 7. verify   (per id partition): exact Jaccard of every candidate pair -> verified edges
 finish: survivors by the in-memory rule (`corpus.dedup`) over the verified edges; it holds only documents that have a
 verified duplicate, and the removed ids.

Bands are datasketch's MinHashLSH bands for the threshold (same b x r) compared by their raw values, so the candidate
pairs are exactly the in-memory index's, and the removed ids equal `Deduplicator`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch.lsh import _optimal_param

from corpus.dedup import DedupConfig, jaccard_hashes, shingle_hashes
from corpus.files import run_once, write_json, write_parquet

log = logging.getLogger(__name__)
STEPS = ("scatter", "repeats", "exact", "buckets", "shingles", "attach", "verify")
_PER_SOURCE_GROUP = {"scatter", "shingles"}  # the other steps run once per partition
_U64, _I64 = pa.uint64(), pa.int64()


@dataclass(frozen=True)
class DedupPlan:
    """What every part is sent: small whatever the corpus (the list of filter parts stays in the plan file)."""

    work: Path
    source: Path  # the filter parts' folder
    groups: tuple[tuple[int, int], ...]  # [start, stop) ranges of `parts` read by one scatter or shingles part
    partitions: int
    config: DedupConfig

    def count(self, step: str) -> int:
        return len(self.groups) if step in _PER_SOURCE_GROUP else self.partitions

    @property
    def parts(self) -> tuple[Path, ...]:
        """The filter parts in order; row j of part i has ordinal (i << 32) | j."""
        plan_file = self.work.parent / "_plan.json"
        return tuple(self.source / name for name in _part_names(plan_file, plan_file.stat().st_mtime_ns))


@lru_cache(maxsize=4)
def _part_names(plan_file: Path, mtime_ns: int) -> tuple[str, ...]:
    return tuple(json.loads(plan_file.read_text())["parts"])


def plan(stage_dir: Path, parts: list[Path], config: DedupConfig, partition_docs: int) -> DedupPlan:
    """Split the work; a plan written by an interrupted run of the same stage key is reused as it was."""
    if partition_docs < 1:
        raise ValueError(f"dedup partition_docs must be at least 1, got {partition_docs}")
    plan_file = stage_dir / "_plan.json"
    if plan_file.exists():
        saved = json.loads(plan_file.read_text())
        groups, partitions = [tuple(g) for g in saved["groups"]], saved["partitions"]
    else:
        rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
        partitions = max(1, -(-sum(rows) // partition_docs))
        groups, start, held = [], 0, 0
        for i, n in enumerate(rows):
            if held and held + n > partition_docs:
                groups.append((start, i))
                start, held = i, 0
            held += n
        if start < len(parts):
            groups.append((start, len(parts)))
        stage_dir.mkdir(parents=True, exist_ok=True)
        write_json(plan_file, {"groups": groups, "partitions": partitions, "parts": [p.name for p in parts]})
    source = parts[0].parent if parts else stage_dir
    return DedupPlan(stage_dir / "_work", source, tuple(groups), partitions, config)


def run_part(plan: DedupPlan, step: str, index: int) -> dict:
    """Run one part of one step unless its marker says it is done; returns its counts."""
    return run_once(plan.work / "_done" / f"{step}-{index:05d}.json", lambda: _STEP_FUNCTIONS[step](plan, index))


def run_all(plan: DedupPlan) -> None:
    """Every part of every step in this process (the flow maps them over the Dask cluster instead)."""
    for step in STEPS:
        for index in range(plan.count(step)):
            run_part(plan, step, index)
        log.info("dedup: step %s done (%d parts)", step, plan.count(step))


# ---- columns and partitioned files -------------------------------------------------------------------------------


def id_values(ids: list[str], where: Path) -> np.ndarray:
    """`doc_id`s (16 hex digits) as 64-bit values, which sort as the ids do."""
    if any(len(i) != 16 for i in ids):
        raise ValueError(
            f"{where}: document ids must be 16 hex digits, got e.g. {next(i for i in ids if len(i) != 16)!r}"
        )
    return np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8").astype(np.uint64)


def _fixed_array(values: np.ndarray) -> pa.Array:
    """Rows of a 2-d array as fixed-size binary values."""
    values = np.ascontiguousarray(values)
    width = values.shape[1] * values.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values.tobytes())])


def _fixed_values(column: pa.ChunkedArray, dtype: str, width: int) -> np.ndarray:
    """A fixed-size binary column back as a 2-d array of `dtype`, `width` items a row."""
    arr = column.combine_chunks()
    size = np.dtype(dtype).itemsize * width
    data = np.frombuffer(arr.buffers()[1], dtype=np.uint8)[arr.offset * size : (arr.offset + len(arr)) * size]
    return data.view(dtype).reshape(len(arr), width)


def _minhash_values(column: pa.ChunkedArray, num_perm: int, where: Path) -> np.ndarray:
    """The filter stage's minhash column (num_perm little-endian uint64) as uint32: MinHash values are below 2**32."""
    arr = column.combine_chunks()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    if len(arr) and not np.all(np.diff(offsets) == 8 * num_perm):
        raise ValueError(f"{where}: minhash values must be {num_perm} uint64 each (num_perm={num_perm})")
    data = np.frombuffer(arr.buffers()[2], dtype="<u8")[offsets[0] // 8 : offsets[-1] // 8] if len(arr) else np.empty(0)
    if data.size and data.max() >= 2**32:
        raise ValueError(f"{where}: minhash values above 2**32: not datasketch's affine32 MinHash")
    return data.astype(np.uint32).reshape(len(arr), num_perm)


def _col(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _scatter(table: pa.Table, partition_of: np.ndarray, folder: str, plan: DedupPlan, name: str) -> None:
    """Write the rows of `table` to <work>/<folder>/<partition>/<name>.parquet, one file per non-empty partition."""
    order = np.argsort(partition_of, kind="stable")
    partition_of = partition_of[order]
    table = table.take(pa.array(order))
    bounds = np.searchsorted(partition_of, np.arange(plan.partitions + 1))
    for p in range(plan.partitions):
        if bounds[p + 1] > bounds[p]:
            folder_p = plan.work / folder / f"{p:05d}"
            folder_p.mkdir(parents=True, exist_ok=True)
            write_parquet(
                table.slice(bounds[p], bounds[p + 1] - bounds[p]), folder_p / f"{name}.parquet", compression="lz4"
            )


def _gather(plan: DedupPlan, folder: str, index: int | None = None) -> pa.Table | None:
    """The files of one partition folder (or of a flat folder) as one table; None when there are none."""
    where = plan.work / folder / (f"{index:05d}" if index is not None else "")
    files = sorted(where.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def _partition_of_ids(ids: np.ndarray, plan: DedupPlan) -> np.ndarray:
    return (ids % np.uint64(plan.partitions)).astype(np.int64)  # doc ids are hashes: uniform


# ---- the steps ---------------------------------------------------------------------------------------------------


def _scatter_rows(plan: DedupPlan, group: int) -> dict:
    tables, parts = [], plan.parts
    start, stop = plan.groups[group]
    for i in range(start, stop):
        part = parts[i]
        t = pq.read_table(part, columns=["id", "karma", "created_utc", "text_hash", "minhash"])
        minhash = _minhash_values(t.column("minhash"), plan.config.num_perm, part)
        tables.append(
            pa.table(
                {
                    "id": pa.array(id_values(t.column("id").to_pylist(), part), _U64),
                    "ordinal": pa.array((np.uint64(i) << np.uint64(32)) + np.arange(t.num_rows, dtype=np.uint64), _U64),
                    "karma": t.column("karma").cast(_I64),
                    "created": t.column("created_utc").cast(_I64),
                    "text_hash": t.column("text_hash"),
                    "minhash": _fixed_array(minhash),
                }
            )
        )
    table = pa.concat_tables(tables)
    _scatter(table, _partition_of_ids(_col(table, "id"), plan), "by_id", plan, f"{group:05d}")
    return {"rows": table.num_rows}


def _drop_repeats(plan: DedupPlan, p: int) -> dict:
    """A link archived twice (a fetch retried after a crash) is one document: its first copy in input order."""
    table = _gather(plan, "by_id", p)
    if table is None:
        return {"duplicate_fetch": 0}
    ids, ordinals = _col(table, "id"), _col(table, "ordinal")
    order = np.lexsort((ordinals, ids))
    first = np.ones(len(order), dtype=bool)
    first[1:] = ids[order][1:] != ids[order][:-1]
    table = table.take(pa.array(order[first]))
    text_hash = _fixed_values(table.column("text_hash"), ">u8", 2)
    _scatter(table, (text_hash[:, 0] % np.uint64(plan.partitions)).astype(np.int64), "by_text", plan, f"{p:05d}")
    return {"duplicate_fetch": int(len(order) - first.sum())}


def _bands(config: DedupConfig) -> list[tuple[int, int]]:
    """datasketch's LSH bands for the threshold (MinHashLSH's b x r, default weights): the same candidates as
    `Deduplicator`'s index. Not from a MinHashLSH instance: one refers to itself and lingers until a full collection."""
    b, r = _optimal_param(config.threshold, config.num_perm, 0.5, 0.5)
    return [(i * r, (i + 1) * r) for i in range(b)]


def _exact_groups(plan: DedupPlan, q: int) -> dict:
    """Exact duplicates keep their best document (highest karma, earliest, smallest id), which alone goes on."""
    table = _gather(plan, "by_text", q)
    if table is None:
        return {"exact_duplicate": 0, "representatives": 0}
    text_hash = _fixed_values(table.column("text_hash"), ">u8", 2)
    ids, karma, created = _col(table, "id"), _col(table, "karma"), _col(table, "created")
    order = np.lexsort((ids, created, -karma, text_hash[:, 1], text_hash[:, 0]))
    hashes = text_hash[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(hashes[1:] != hashes[:-1], axis=1)
    best_of = order[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
    members = ~first
    _mkdir(plan.work / "exact")
    write_parquet(
        pa.table({"id": pa.array(ids[order[members]], _U64), "duplicate_of": pa.array(ids[best_of[members]], _U64)}),
        plan.work / "exact" / f"{q:05d}.parquet",
    )
    best = np.sort(order[first])
    minhash = _fixed_values(table.column("minhash"), "<u4", plan.config.num_perm)[best]
    bands = []
    for band, (lo, hi) in enumerate(_bands(plan.config)):
        key = np.concatenate([np.full((len(best), 1), band, dtype=np.uint32), minhash[:, lo:hi]], axis=1)
        bands.append(
            pa.table(
                {
                    "key": _fixed_array(key),
                    "id": pa.array(ids[best], _U64),
                    "ordinal": pa.array(_col(table, "ordinal")[best], _U64),
                    "karma": pa.array(karma[best], _I64),
                    "created": pa.array(created[best], _I64),
                    "partition": pa.array((minhash[:, lo].astype(np.int64) + band) % plan.partitions),
                }
            )
        )
    rows = pa.concat_tables(bands)
    _scatter(rows.drop_columns(["partition"]), _col(rows, "partition"), "bands", plan, f"{q:05d}")
    return {"exact_duplicate": int(members.sum()), "representatives": int(len(best))}


def _mkdir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


_PAIR_COLUMNS = ("a", "a_karma", "a_created", "b", "b_karma", "b_created")


def _bucket_pairs(plan: DedupPlan, k: int) -> dict:
    """Every two documents with the same band key are a candidate pair (a, b), a the smaller id."""
    table = _gather(plan, "bands", k)
    if table is None:
        return {"bucket_pairs": 0}
    width = table.schema.field("key").type.byte_width // 4  # the band number and its r MinHash values
    keys = _fixed_values(table.column("key"), "<u4", width)
    ids = _col(table, "id")
    order = np.lexsort((ids,) + tuple(keys[:, c] for c in reversed(range(width))))
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)])
    sizes = np.diff(np.r_[starts, len(order)])
    twos = starts[sizes == 2]  # most buckets with a pair hold just that pair
    left, right = [order[twos]], [order[twos + 1]]
    for start, size in zip(starts[sizes > 2], sizes[sizes > 2]):
        i, j = np.triu_indices(size, 1)  # ids ascend within a bucket: i's id < j's id
        left.append(order[start + i])
        right.append(order[start + j])
    a, b = np.concatenate(left), np.concatenate(right)
    karma, created, ordinal = _col(table, "karma"), _col(table, "created"), _col(table, "ordinal")
    pairs = pa.table(
        {
            "a": pa.array(ids[a], _U64),
            "a_karma": pa.array(karma[a], _I64),
            "a_created": pa.array(created[a], _I64),
            "b": pa.array(ids[b], _U64),
            "b_karma": pa.array(karma[b], _I64),
            "b_created": pa.array(created[b], _I64),
        }
    )
    _scatter(pairs, _partition_of_ids(ids[a], plan), "pairs", plan, f"{k:05d}")
    ends = np.unique(np.concatenate([ordinal[a], ordinal[b]]))
    _mkdir(plan.work / "ends")
    write_parquet(pa.table({"ordinal": pa.array(ends, _U64)}), plan.work / "ends" / f"{k:05d}.parquet")
    return {"bucket_pairs": int(len(a))}


def _candidate_shingles(plan: DedupPlan, group: int) -> dict:
    """Shingle hashes of the documents in some candidate pair, read from the filter parts of one group."""
    ends_table = _gather(plan, "ends")
    ends = np.unique(_col(ends_table, "ordinal")) if ends_table is not None else np.empty(0, dtype=np.uint64)
    ids_out, shingles_out, parts = [], [], plan.parts
    start, stop = plan.groups[group]
    for i in range(start, stop):
        lo, hi = np.searchsorted(ends, [np.uint64(i) << np.uint64(32), np.uint64(i + 1) << np.uint64(32)])
        if hi == lo:
            continue
        rows = (ends[lo:hi] & np.uint64(0xFFFFFFFF)).astype(np.int64)
        t = pq.read_table(parts[i], columns=["id", "text"]).take(pa.array(rows))
        ids_out.append(id_values(t.column("id").to_pylist(), parts[i]))
        shingles_out += [
            shingle_hashes(text, plan.config.shingle_words).astype("<u8").tobytes()
            for text in t.column("text").to_pylist()
        ]
    if not ids_out:
        return {"candidates": 0}
    ids = np.concatenate(ids_out)
    table = pa.table({"id": pa.array(ids, _U64), "shingles": pa.array(shingles_out, pa.large_binary())})
    _scatter(table, _partition_of_ids(ids, plan), "shingles", plan, f"{group:05d}")
    return {"candidates": int(len(ids))}


def _shingles_of(plan: DedupPlan, p: int) -> dict[int, bytes]:
    table = _gather(plan, "shingles", p)
    if table is None:
        return {}
    return dict(zip(_col(table, "id").tolist(), table.column("shingles").to_pylist()))


def _attach(plan: DedupPlan, p: int) -> dict:
    """Candidate pairs whose first document is in partition p, once each, with that document's shingles."""
    pairs = _gather(plan, "pairs", p)
    if pairs is None:
        return {"candidate_pairs": 0}
    a, b = _col(pairs, "a"), _col(pairs, "b")
    order = np.lexsort((b, a))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])
    pairs = pairs.take(pa.array(order[first]))
    shingles = _shingles_of(plan, p)
    attached = pairs.append_column(
        "a_shingles", pa.array([shingles[x] for x in _col(pairs, "a").tolist()], pa.large_binary())
    )
    _scatter(attached, _partition_of_ids(_col(pairs, "b"), plan), "half", plan, f"{p:05d}")
    return {"candidate_pairs": int(pairs.num_rows)}


def _verify(plan: DedupPlan, q: int) -> dict:
    """Exact Jaccard of each candidate pair whose second document is in partition q: verified edges."""
    half = _gather(plan, "half", q)
    if half is None:
        return {"verified_pairs": 0, "rejected_pairs": 0}
    shingles = _shingles_of(plan, q)
    keep = np.array(
        [
            jaccard_hashes(np.frombuffer(sa, dtype="<u8"), np.frombuffer(shingles[b], dtype="<u8"))
            >= plan.config.threshold
            for sa, b in zip(half.column("a_shingles").to_pylist(), _col(half, "b").tolist())
        ],
        dtype=bool,
    )
    _mkdir(plan.work / "edges")
    write_parquet(half.select(list(_PAIR_COLUMNS)).filter(pa.array(keep)), plan.work / "edges" / f"{q:05d}.parquet")
    return {"verified_pairs": int(keep.sum()), "rejected_pairs": int((~keep).sum())}


_STEP_FUNCTIONS: dict[str, Callable[[DedupPlan, int], dict]] = {
    "scatter": _scatter_rows,
    "repeats": _drop_repeats,
    "exact": _exact_groups,
    "buckets": _bucket_pairs,
    "shingles": _candidate_shingles,
    "attach": _attach,
    "verify": _verify,
}


# ---- finish ------------------------------------------------------------------------------------------------------


def _step_stats(plan: DedupPlan, step: str) -> list[dict]:
    return [json.loads((plan.work / "_done" / f"{step}-{i:05d}.json").read_text()) for i in range(plan.count(step))]


def finish(plan: DedupPlan) -> tuple[pa.Table, dict]:
    """The removed ids (id, reason, duplicate_of; sorted by id) and the stage's counts, from the finished steps.

    Survivors: the same rule as `Deduplicator.resolve`: best-ranked documents first, each removes its verified
    duplicates that rank below it and are not removed yet."""
    removed: dict[int, tuple[str, int]] = {}
    exact = _gather(plan, "exact")
    if exact is not None:
        for doc, kept in zip(_col(exact, "id").tolist(), _col(exact, "duplicate_of").tolist()):
            removed[doc] = ("exact_duplicate", kept)
    edges = _gather(plan, "edges")
    rank: dict[int, tuple[int, int, int]] = {}
    neighbours: dict[int, set[int]] = {}
    if edges is not None:
        columns = [_col(edges, c).tolist() for c in _PAIR_COLUMNS]
        for a, ka, ca, b, kb, cb in zip(*columns):
            rank[a], rank[b] = (-ka, ca, a), (-kb, cb, b)
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
    near: set[int] = set()
    for node in sorted(neighbours, key=rank.__getitem__):
        if node in near:
            continue
        for other in neighbours[node]:
            if other not in near and rank[other] > rank[node]:
                near.add(other)
                removed[other] = ("near_duplicate", node)
    ordered = sorted(removed)
    table = pa.table(
        {
            "id": [f"{i:016x}" for i in ordered],
            "reason": [removed[i][0] for i in ordered],
            "duplicate_of": [f"{removed[i][1]:016x}" for i in ordered],
        }
    )
    rows = sum(s["rows"] for s in _step_stats(plan, "scatter"))
    repeats = sum(s["duplicate_fetch"] for s in _step_stats(plan, "repeats"))
    verify = _step_stats(plan, "verify")
    counts = {"exact_duplicate": len(removed) - len(near), "near_duplicate": len(near)}
    if repeats:
        counts["duplicate_fetch"] = repeats
    stats = {
        "in": rows,
        "out": rows - repeats - len(removed),
        "dropped": counts,
        "lsh_candidate_pairs": sum(s["candidate_pairs"] for s in _step_stats(plan, "attach")),
        "verified_pairs": sum(s["verified_pairs"] for s in verify),
        "rejected_pairs": sum(s["rejected_pairs"] for s in verify),
        "partitions": plan.partitions,
    }
    return table, stats

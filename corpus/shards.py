"""Parquet shards of the finished corpus: deterministic split, deterministic bytes, memory bounded by a setting.

Layout: `shards/train-00000-of-000NN.parquet` and `shards/val-00000-of-000MM.parquet`. A document goes to val when a
hash of its id falls under `val_fraction`, so the split never changes when documents are added or removed; only when
no document of a corpus of two or more falls under it (a small build: about 1/val_fraction documents or fewer) does
the one with the lowest hash go to val, so that every build can be validated on. Within a
split, a second 64-bit hash of the id (`shard_key`) picks the shard and orders its rows (ties by id), so the order is
a fixed pseudo-random shuffle. Writer settings are fixed (zstd level, row groups of exactly `row_group_rows` rows but
the last, dictionary, statistics) and no wall-clock time is written, so the same documents give byte-identical files,
whatever their input order and whatever `memory_text_bytes`.

Memory: the writer never holds more than about `memory_text_bytes` of text (default 32 MiB). Documents pass once
through one temporary Arrow file per output shard (buffered up to that size in all); a shard with more text than that
is split by ranges of its key into pieces of about that size, and each piece, sorted alone, is appended to the shard in
key order. Nothing held grows with the corpus or the shard size.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.files import atomic_folder

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),  # final URL of the page, after redirects
        ("link_url", pa.string()),  # canonical URL of the Reddit link it was fetched for
        ("domain", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("karma", pa.int64()),
        ("subreddits", pa.list_(pa.string())),
        ("created_utc", pa.int64()),
        ("fetched_at", pa.string()),
        ("extractor", pa.string()),
        ("n_words", pa.int64()),
    ]
)
SPLITS = ("train", "val")
_BUCKET_SCHEMA = SCHEMA.append(pa.field("_key", pa.uint64()))  # temporary files: rows and their shard_key
_BUCKET_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


@dataclass(frozen=True)
class ShardConfig:
    val_fraction: float = 0.005
    shard_text_bytes: int = 256 * 2**20  # text bytes per shard (about 200 MB compressed-out Parquet files)
    row_group_rows: int = 1024  # about 5 MB of text per row group: streams without loading a shard
    zstd_level: int = 6
    memory_text_bytes: int = 32 * 2**20  # text held in memory at once while writing; never changes the output

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"ShardConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.row_group_rows < 1 or self.memory_text_bytes < 1:
            raise ValueError(f"ShardConfig.row_group_rows and memory_text_bytes must be >= 1, got {self}")


def _unit(doc_id: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(doc_id: str, val_fraction: float) -> str:
    return "val" if _unit(doc_id, "split") < val_fraction else "train"


def shard_key(doc_id: str) -> int:
    """64-bit hash of the id: shard i of n holds the keys in [i, i + 1) * 2**64 / n, in key order."""
    return int.from_bytes(hashlib.blake2b(f"shard:{doc_id}".encode(), digest_size=8).digest(), "big")


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


@dataclass(frozen=True)
class ShardFile:
    name: str
    split: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "split": self.split, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_shards(
    docs: Callable[[], Iterable[dict]], shards_dir: Path, config: ShardConfig = ShardConfig()
) -> list[ShardFile]:
    """Write the documents yielded by `docs()` (called twice: sizes, then rows) as Parquet shards in `shards_dir`.

    Each doc is a dict with the SCHEMA columns. The directory is written under a temporary name and swapped in at
    the end (`atomic_folder`), so it is never partial. Duplicate ids keep the first occurrence.
    """
    shards_dir = Path(shards_dir)
    text_bytes, split = _plan_split(docs, config.val_fraction)
    counts = {split: max(1, -(-n // config.shard_text_bytes)) for split, n in text_bytes.items()}

    files: list[ShardFile] = []
    with atomic_folder(shards_dir) as tmp:
        buckets = _Buckets(tmp / ".buckets", config.memory_text_bytes)
        for doc in docs():
            doc_split = split(doc["id"])
            key = shard_key(doc["id"])
            buckets.add((doc_split, key * counts[doc_split] >> 64), key, doc)
        buckets.close()
        for split in SPLITS:
            if text_bytes[split] == 0:
                continue
            for index in range(counts[split]):
                lo, hi = (index << 64) // counts[split], ((index + 1) << 64) // counts[split]
                pieces = buckets.pieces((split, index), lo, hi)
                path = tmp / shard_name(split, index, counts[split])
                rows = _write_shard(pieces, path, config)
                files.append(ShardFile(path.name, split, rows, path.stat().st_size, _sha256(path)))
        shutil.rmtree(buckets.folder)
    return files


def _plan_split(docs: Callable[[], Iterable[dict]], val_fraction: float) -> tuple[dict[str, int], Callable[[str], str]]:
    """Text bytes per split, and the split of a document id: `split_of`, except that when no document falls under
    `val_fraction` and there are at least two distinct ids, the id with the lowest split hash (then the smallest id)
    goes to val. It depends on the set of ids only, not on their order, so the shards stay byte-identical."""
    text_bytes = {split: 0 for split in SPLITS}
    val_docs, first_id, distinct = 0, None, False
    lowest: tuple[float, str, int] | None = None  # split hash, id, text bytes of the best val candidate
    for doc in docs():
        size = len(doc["text"].encode())
        doc_split = split_of(doc["id"], val_fraction)
        text_bytes[doc_split] += size
        val_docs += doc_split == "val"
        first_id = doc["id"] if first_id is None else first_id
        distinct = distinct or doc["id"] != first_id
        candidate = (_unit(doc["id"], "split"), doc["id"], size)
        if lowest is None or candidate[:2] < lowest[:2]:
            lowest = candidate
    if val_docs or not distinct or val_fraction <= 0 or lowest is None:
        return text_bytes, lambda doc_id: split_of(doc_id, val_fraction)
    _, val_id, size = lowest
    text_bytes["train"] -= size
    text_bytes["val"] += size
    return text_bytes, lambda doc_id: "val" if doc_id == val_id else split_of(doc_id, val_fraction)


class _Buckets:
    """One temporary Arrow IPC file of rows per output shard. Rows wait in one in-memory buffer of a quarter of
    `limit` text bytes for all shards, then go to their files; `pieces` splits a file holding more text than
    `limit` into key ranges of about that size."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self.limit = limit
        self.buffer: dict[tuple[str, int], list[dict]] = {}
        self.buffered = 0
        self.text_bytes: Counter[tuple[str, int]] = Counter()
        self.writers: dict[tuple[str, int], _IpcWriter] = {}

    def path(self, shard: tuple[str, int]) -> Path:
        return self.folder / f"{shard[0]}-{shard[1]}.arrow"

    def add(self, shard: tuple[str, int], key: int, doc: dict) -> None:
        row = {name: doc.get(name) for name in SCHEMA.names}
        row["_key"] = key
        self.buffer.setdefault(shard, []).append(row)
        size = len(doc["text"].encode())
        self.text_bytes[shard] += size
        self.buffered += size
        if self.buffered >= self.limit // 4:
            self.flush()

    def flush(self) -> None:
        while self.buffer:
            shard, rows = self.buffer.popitem()
            if shard not in self.writers:
                self.writers[shard] = _IpcWriter(self.path(shard))
            self.writers[shard].write(pa.Table.from_pylist(rows, schema=_BUCKET_SCHEMA))
        self.buffered = 0

    def close(self) -> None:
        self.flush()
        for writer in self.writers.values():
            writer.close()

    def pieces(self, shard: tuple[str, int], lo: int, hi: int) -> list[Path]:
        """The shard's rows as files covering consecutive ranges of [lo, hi), each with about `limit` text bytes."""
        path = self.path(shard)
        n = -(-self.text_bytes[shard] // self.limit)
        if n <= 1:
            return [path] if path.exists() else []
        edges = np.array([lo + (hi - lo) * j // n for j in range(1, n)], dtype=np.uint64)
        writers = [_IpcWriter(path.with_name(f"{path.stem}.{j:05d}.arrow")) for j in range(n)]
        with pa.OSFile(str(path)) as source:
            for batch in pa.ipc.open_stream(source):  # one buffer flush at a time
                piece = np.searchsorted(edges, batch.column("_key").to_numpy(), side="right")
                for j in np.unique(piece):
                    writers[j].write(pa.Table.from_batches([batch.filter(pa.array(piece == j))]))
        for writer in writers:
            writer.close()
        path.unlink()
        return [w.path for w in writers if w.path.exists()]


class _IpcWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, _BUCKET_SCHEMA, options=_BUCKET_OPTIONS)

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()
        self.sink.close()


def _read_ipc(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:  # read into memory, not mapped: the pages are freed with the table
        return pa.ipc.open_stream(source).read_all()


def _write_shard(pieces: list[Path], path: Path, config: ShardConfig) -> int:
    """Sort each piece by (key, id), drop repeated ids, append to the shard in row groups of exactly row_group_rows
    rows (the last may be shorter): the bytes depend on the rows only, not on how they were split into pieces."""
    size = config.row_group_rows
    writer = pq.ParquetWriter(
        path,
        SCHEMA,
        compression="zstd",
        compression_level=config.zstd_level,
        use_dictionary=["domain", "extractor", "subreddits"],
        write_statistics=True,
        data_page_version="2.0",
    )
    rows = 0
    carry = SCHEMA.empty_table()  # sorted rows not yet written: fewer than one row group
    for piece in pieces:
        table = _read_ipc(piece)
        piece.unlink()
        # a stable sort: among equal ids the first to arrive stays first
        order = pc.sort_indices(table, sort_keys=[("_key", "ascending"), ("id", "ascending")])
        table = pa.concat_tables([carry, _first_per_id(table.take(order)).drop_columns(["_key"])])
        full = table.num_rows - table.num_rows % size
        for start in range(0, full, size):
            writer.write_table(table.slice(start, size).combine_chunks(), row_group_size=size)
        carry = table.take(np.arange(full, table.num_rows))  # a copy: the piece's memory is freed
        rows += full
    if carry.num_rows or not rows:
        writer.write_table(carry.combine_chunks(), row_group_size=size)
    writer.close()
    return rows + carry.num_rows


def _first_per_id(table: pa.Table) -> pa.Table:
    ids = table.column("id").to_pylist()
    keep = [i for i, doc_id in enumerate(ids) if i == 0 or doc_id != ids[i - 1]]
    return table if len(keep) == len(ids) else table.take(keep)


def iter_shard_rows(shards_dir: Path, split: str = "train", columns: list[str] | None = None) -> Iterable[dict]:
    """Stream the rows of one split, shard by shard and row group by row group."""
    for path in sorted(Path(shards_dir).glob(f"{split}-*.parquet")):
        pf = pq.ParquetFile(path)
        for i in range(pf.num_row_groups):
            yield from pf.read_row_group(i, columns=columns).to_pylist()

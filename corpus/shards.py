"""Parquet shards of the finished corpus: deterministic split, deterministic bytes.

Layout: `shards/train-00000-of-000NN.parquet` and `shards/val-00000-of-000MM.parquet`. A document goes to val when a
hash of its id falls under `val_fraction`, so the split never changes when documents are added or removed. Within a
split, a second hash of the id picks the shard and rows are sorted by id, so the order is a fixed pseudo-random
shuffle. Writer settings are fixed (zstd level, row-group size, dictionary, statistics) and no wall-clock time is
written, so the same documents give byte-identical files.

Memory: documents pass once through one temporary bucket file per output shard, then each shard is sorted alone;
peak memory is about one shard, not the corpus.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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


@dataclass(frozen=True)
class ShardConfig:
    val_fraction: float = 0.005
    shard_text_bytes: int = 256 * 2**20  # text bytes per shard (about 200 MB compressed-out Parquet files)
    row_group_rows: int = 1024  # about 5 MB of text per row group: streams without loading a shard
    zstd_level: int = 6

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"ShardConfig.val_fraction must be in [0, 1), got {self.val_fraction}")


def _unit(doc_id: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(doc_id: str, val_fraction: float) -> str:
    return "val" if _unit(doc_id, "split") < val_fraction else "train"


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

    Each doc is a dict with the SCHEMA columns. The directory is written under a temporary name and renamed at the
    end, so it is either complete or absent. Duplicate ids keep the first occurrence.
    """
    shards_dir = Path(shards_dir)
    text_bytes = {split: 0 for split in SPLITS}
    for doc in docs():
        text_bytes[split_of(doc["id"], config.val_fraction)] += len(doc["text"].encode())
    counts = {split: max(1, -(-n // config.shard_text_bytes)) for split, n in text_bytes.items()}

    tmp = shards_dir.with_name(f".{shards_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    buckets_dir = tmp / ".buckets"
    buckets_dir.mkdir(parents=True)
    writers: dict[tuple[str, int], pq.ParquetWriter] = {}
    batch: dict[tuple[str, int], list[dict]] = {}

    def flush(key: tuple[str, int]) -> None:
        if key not in writers:
            writers[key] = pq.ParquetWriter(buckets_dir / f"{key[0]}-{key[1]}.parquet", SCHEMA, compression="none")
        writers[key].write_table(pa.Table.from_pylist(batch.pop(key), schema=SCHEMA))

    for doc in docs():
        split = split_of(doc["id"], config.val_fraction)
        key = (split, int(_unit(doc["id"], "shard") * counts[split]))
        batch.setdefault(key, []).append({name: doc.get(name) for name in SCHEMA.names})
        if len(batch[key]) >= config.row_group_rows:
            flush(key)
    for key in list(batch):
        flush(key)
    for writer in writers.values():
        writer.close()

    files: list[ShardFile] = []
    for split in SPLITS:
        if text_bytes[split] == 0:
            continue
        for index in range(counts[split]):
            bucket = buckets_dir / f"{split}-{index}.parquet"
            table = pq.read_table(bucket) if bucket.exists() else SCHEMA.empty_table()
            table = _first_per_id(table.sort_by("id"))  # a stable sort keeps arrival order among equal ids
            path = tmp / shard_name(split, index, counts[split])
            pq.write_table(
                table,
                path,
                compression="zstd",
                compression_level=config.zstd_level,
                row_group_size=config.row_group_rows,
                use_dictionary=["domain", "extractor", "subreddits"],
                write_statistics=True,
                data_page_version="2.0",
            )
            bucket.unlink(missing_ok=True)
            files.append(ShardFile(path.name, split, table.num_rows, path.stat().st_size, _sha256(path)))
    shutil.rmtree(buckets_dir)
    shutil.rmtree(shards_dir, ignore_errors=True)
    os.replace(tmp, shards_dir)
    return files


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

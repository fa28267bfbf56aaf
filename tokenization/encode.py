"""Encode the corpus shards into token shards (the format is `tokenization.shard_format`, llm.c's).

Documents are laid out as llm.c's fineweb.py does: <|endoftext|> BEFORE each document, one Parquet row = one
document; a document may continue into the next shard. train_XXXXXX.bin and val_XXXXXX.bin never mix splits.

out_dir/manifest.json records the cache key (sha256 of the input Parquet files, the tokenizer's fingerprint, the
shard size and this format), every finished shard and where the next one starts (Parquet file, row, token offset),
so an interrupted run resumes at the last finished shard and a finished one is not encoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from corpus.files import write_atomic
from tokenization.bpe import BPETokenizer, shard_paths
from tokenization.shard_format import HEADER_BYTES, TOKEN_DTYPES, TokenShardWriter, version_for

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what goes into a shard changes: it is part of the cache key
SPLITS = ("train", "val")
MANIFEST = "manifest.json"
BATCH_ROWS = 1024  # documents per encode_batch call


def _iter_batches(
    paths: Sequence[Path], start_file: int, start_row: int, rows: int
) -> Iterator[tuple[int, int, list[str]]]:
    """(file index, row index of the batch's first text, texts) from (start_file, start_row) on."""
    for file_index in range(start_file, len(paths)):
        shard = pq.ParquetFile(paths[file_index])
        if "text" not in shard.schema_arrow.names:
            raise ValueError(f"{paths[file_index]}: no 'text' column (has {shard.schema_arrow.names})")
        first = start_row if file_index == start_file else 0
        row = 0
        for batch in shard.iter_batches(batch_size=rows, columns=["text"]):
            if row + batch.num_rows > first:
                texts = [t or "" for t in batch.column(0).to_pylist()[max(first - row, 0) :]]
                yield file_index, max(first, row), texts
            row += batch.num_rows


def _encode_split(
    split: str,
    paths: Sequence[Path],
    tokenizer: BPETokenizer,
    out_dir: Path,
    state: dict[str, Any],
    shard_tokens: int,
    workers: int,
    save: Any,
) -> None:
    """Append shards to state["shards"] until the split is done, saving the manifest after each one."""
    version, eot = version_for(tokenizer.n_vocab - 1), tokenizer.eot_token
    dtype = TOKEN_DTYPES[version]
    shards: list[dict[str, Any]] = state["shards"]
    start_file, start_row, skip = shards[-1]["next"] if shards else (0, 0, 0)
    writer: TokenShardWriter | None = None
    started, n_tokens = time.monotonic(), 0

    def close(next_position: tuple[int, int, int]) -> None:
        nonlocal writer
        assert writer is not None
        writer.finish()
        shards.append(
            {
                "name": writer.path.name,
                "tokens": writer.tokens,
                "documents": writer.documents,
                "next": list(next_position),
            }
        )
        save()
        rate = n_tokens / max(time.monotonic() - started, 1e-9)
        log.info(
            "%s: wrote %s (%d tokens, %d documents; %.2fM tokens/s)",
            split,
            writer.path.name,
            writer.tokens,
            writer.documents,
            rate / 1e6,
        )
        writer = None

    try:
        for file_index, first_row, texts in _iter_batches(paths, start_file, start_row, BATCH_ROWS):
            encoded = tokenizer.encode_batch(texts, threads=workers)
            lengths = np.fromiter((len(ids) + 1 for ids in encoded), dtype=np.int64, count=len(encoded))
            starts = np.concatenate([[0], np.cumsum(lengths)])  # where each document begins in `flat`
            flat = np.empty(int(starts[-1]), dtype=dtype)
            flat[starts[:-1]] = eot
            for ids, begin in zip(encoded, starts[:-1]):
                flat[begin + 1 : begin + 1 + len(ids)] = ids
            position = skip if (file_index, first_row) == (start_file, start_row) else 0  # resume inside a document
            while position < len(flat):
                if writer is None:
                    writer = TokenShardWriter(out_dir / f"{split}_{len(shards):06d}.bin", version)
                take = min(shard_tokens - writer.tokens, len(flat) - position)
                writer.write(flat[position : position + take], eot)
                position += take
                n_tokens += take
                if writer.tokens == shard_tokens:
                    doc = int(np.searchsorted(starts, position, side="right")) - 1
                    close((file_index, first_row + doc, position - int(starts[doc])))
        if writer is not None:
            close((len(paths), 0, 0))
    except BaseException:
        if writer is not None:  # an unfinished shard leaves no file; the manifest says where to resume
            writer.discard()
        raise
    state["complete"] = True
    save()
    finished = {shard["name"] for shard in shards}
    for stale in out_dir.glob(f"{split}_*.bin*"):  # left by an older corpus/tokenizer (or an older .bin.tmp style)
        if stale.name not in finished:
            stale.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_inputs(inputs: dict[str, list[Path]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Name, size, mtime and sha256 of each input; the hash is reused when name, size and mtime are unchanged."""
    known = {(p["split"], p["name"], p["size"], p["mtime_ns"]): p["sha256"] for p in previous}
    described = []
    for split, paths in inputs.items():
        for path in paths:
            stat = path.stat()
            sha = known.get((split, path.name, stat.st_size, stat.st_mtime_ns)) or _sha256(path)
            described.append(
                {"split": split, "name": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
            )
    return described


def _valid_prefix(out_dir: Path, shards: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    """The recorded shards whose files are still there whole; work resumes after the last of them."""
    kept = []
    for shard in shards:
        path = out_dir / shard["name"]
        if not path.is_file() or path.stat().st_size != HEADER_BYTES + shard["tokens"] * TOKEN_DTYPES[version].itemsize:
            break
        kept.append(shard)
    return kept


def _summary(out_dir: Path, manifest: dict[str, Any], cached: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "out_dir": str(out_dir),
        "cached": cached,
        **{k: manifest[k] for k in ("dtype", "version", "eot_token", "n_vocab", "tokenizer", "shard_tokens")},
    }
    for split in SPLITS:
        shards = manifest["splits"][split]["shards"]
        result[split] = {
            "shards": [str(out_dir / s["name"]) for s in shards],
            "tokens": sum(s["tokens"] for s in shards),
            "documents": sum(s["documents"] for s in shards),
        }
    return result


def encode_corpus(
    corpus_dir: str | Path,
    tokenizer: BPETokenizer,
    out_dir: str | Path,
    shard_tokens: int = 100_000_000,
    workers: int = 0,
) -> dict[str, Any]:
    """Encode corpus_dir/shards/{train,val}-*.parquet into out_dir/{train,val}_NNNNNN.bin; return counts.

    `workers` encoding threads (0: one per core). Re-running with the same corpus, tokenizer and shard size returns
    at once (`cached` True); an interrupted run resumes after its last finished shard.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    if not 0 < shard_tokens < 2**31:
        raise ValueError(f"shard_tokens={shard_tokens}: must be in 1 .. 2**31-1 (the header stores an int32)")
    inputs = {split: shard_paths(corpus_dir, split) for split in SPLITS}
    if not any(inputs.values()):
        raise FileNotFoundError(f"no train-*.parquet or val-*.parquet shards in {corpus_dir / 'shards'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST

    previous: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            previous = json.loads(manifest_path.read_text())
        except json.JSONDecodeError:
            log.warning("%s is unreadable; encoding from scratch", manifest_path)
    described = _describe_inputs(inputs, previous.get("inputs", []))
    version = version_for(tokenizer.n_vocab - 1)
    key_fields = {
        "format": FORMAT,
        "tokenizer": tokenizer.fingerprint,
        "shard_tokens": shard_tokens,
        "inputs": [(d["split"], d["name"], d["sha256"]) for d in described],
    }
    key = hashlib.sha256(json.dumps(key_fields).encode()).hexdigest()

    if previous.get("key") == key:
        splits = previous["splits"]
        for state in splits.values():
            kept = _valid_prefix(out_dir, state["shards"], version)
            if len(kept) < len(state["shards"]):
                state["shards"], state["complete"] = kept, False
    else:
        if previous.get("splits"):
            log.warning("%s holds shards of another corpus or tokenizer; replacing them", out_dir)
        splits = {split: {"complete": False, "shards": []} for split in SPLITS}

    manifest = {
        "key": key,
        "format": FORMAT,
        "tokenizer": tokenizer.fingerprint,
        "n_vocab": tokenizer.n_vocab,
        "eot_token": tokenizer.eot_token,
        "eot_placement": "before each document",
        "version": version,
        "dtype": TOKEN_DTYPES[version].name,
        "shard_tokens": shard_tokens,
        "inputs": described,
        "splits": splits,
    }

    def save() -> None:
        write_atomic(manifest_path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))

    if all(state["complete"] for state in splits.values()):
        save()  # refreshes mtimes if the inputs were touched without changing
        log.info("%s already holds this corpus encoded with this tokenizer; nothing to do", out_dir)
        return _summary(out_dir, manifest, cached=True)
    for split in SPLITS:
        if not splits[split]["complete"]:
            if splits[split]["shards"]:
                log.info("%s: resuming after %d finished shards", split, len(splits[split]["shards"]))
            _encode_split(split, inputs[split], tokenizer, out_dir, splits[split], shard_tokens, workers, save)
    return _summary(out_dir, manifest, cached=False)

"""Train/test 8-gram overlap (paper section 4, Table 6) with a Bloom filter of the training corpus.

Text is normalized to lower-cased alphanumeric words joined by single spaces; every 8 consecutive words form an
n-gram. The filter (rbloom) is sized for a false-positive rate of at most 1e-8 and hashes with BLAKE2b, a stable
hash, so a saved filter stays valid in other processes (Python's own str hash is salted per process).
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import string
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow.parquet as pq
from rbloom import Bloom

log = logging.getLogger(__name__)
N = 8
FALSE_POSITIVE_RATE = 1e-8
_WORDS = re.compile(r"[a-z0-9]+")


def stable_hash(item: str) -> int:
    """A 128-bit signed hash, the same in every process (what rbloom needs to save and load filters)."""
    return int.from_bytes(hashlib.blake2b(item.encode("utf-8"), digest_size=16).digest(), "big", signed=True)


def normalized_words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def ngrams(text: str, n: int = N) -> Iterator[str]:
    words = normalized_words(text)
    for i in range(len(words) - n + 1):
        yield " ".join(words[i:i + n])


def count_ngrams(texts: Iterable[str], n: int = N) -> int:
    return sum(max(0, len(normalized_words(t)) - n + 1) for t in texts)


def build_bloom(texts: Iterable[str], expected_items: int, false_positive_rate: float = FALSE_POSITIVE_RATE) -> Bloom:
    bloom = Bloom(max(expected_items, 1), false_positive_rate, hash_func=stable_hash)
    for text in texts:
        bloom.update(ngrams(text))
    return bloom


def _train_shards(corpus_dir: Path) -> list[Path]:
    shards = sorted((Path(corpus_dir) / "shards").glob("train-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"overlap: no training shards {corpus_dir}/shards/train-*.parquet")
    return shards


def _train_texts(shards: list[Path]) -> Iterator[str]:
    for shard in shards:
        for batch in pq.ParquetFile(shard).iter_batches(columns=["text"], batch_size=1024):
            yield from (t for t in batch.column("text").to_pylist() if t)


def corpus_bloom(corpus_dir: Path, cache_dir: Path | None = None,
                 false_positive_rate: float = FALSE_POSITIVE_RATE) -> Bloom:
    """The Bloom filter of a corpus' training 8-grams, cached in cache_dir under a name that changes with the shards."""
    shards = _train_shards(corpus_dir)
    fingerprint = hashlib.blake2b(repr([(s.name, s.stat().st_size, s.stat().st_mtime_ns) for s in shards]
                                       + [false_positive_rate]).encode(), digest_size=8).hexdigest()
    cache = None if cache_dir is None else Path(cache_dir) / f"train-8grams-{fingerprint}.bloom"
    if cache is not None and cache.is_file():
        return Bloom.load(str(cache), stable_hash)
    expected = count_ngrams(_train_texts(shards))  # an upper bound on distinct 8-grams
    log.info("overlap: building a Bloom filter for %d training 8-grams of %s", expected, corpus_dir)
    bloom = build_bloom(_train_texts(shards), expected, false_positive_rate)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + f".tmp{os.getpid()}")
        bloom.save(str(partial))
        partial.replace(cache)
    return bloom


def measured_false_positive_rate(bloom: Bloom, samples: int = 1_000_000, seed: int = 0) -> float:
    """Hits among random 8-grams of random 12-letter words, which no real corpus holds (the paper used 1M)."""
    rng = random.Random(seed)
    letters = string.ascii_lowercase
    hits = sum(" ".join("".join(rng.choices(letters, k=12)) for _ in range(N)) in bloom for _ in range(samples))
    return hits / samples


def overlap_percent(bloom: Bloom, texts: Iterable[str]) -> float:
    """Percentage of all the texts' 8-grams found in the filter (Table 6)."""
    found = total = 0
    for text in texts:
        for gram in ngrams(text):
            total += 1
            found += gram in bloom
    return 100 * found / total if total else 0.0


def per_example_overlap(bloom: Bloom, texts: Iterable[str]) -> list[float]:
    """For each text, the percentage of its 8-grams found in the filter (0 for texts shorter than 8 words)."""
    return [overlap_percent(bloom, [t]) for t in texts]

"""Train/test 8-gram overlap (paper section 4, Table 6) with a Bloom filter of the training corpus.

Text is normalized to lower-cased alphanumeric words; every 8 consecutive words form an n-gram. An 8-gram enters the
filter as a stable 64-bit hash (the same in every process, so a saved filter stays valid; Python's own str hash is
salted per process), computed in bulk rather than per 8-gram string:

- each distinct word is hashed once, BLAKE2b to 64 bits, through a bounded cache;
- an 8-gram's hash chains its 8 word hashes through the splitmix64 finalizer in vectorized uint64 arithmetic;
- the rbloom filter (Rust) takes that integer as its own hash (`hash_func=int`) and derives its bit positions from it.

False positives, by construction at most `false_positive_rate`: the Bloom filter's own rate plus 64-bit hash
collisions. An absent 8-gram shares its hash with one of n stored ones with probability n / 2^64 (modelling the hash
as random: 4e-10 at WebText's ~8e9 8-grams; the ~n^2 / 2^65 colliding pairs among stored 8-grams only make the
filter fuller), so the filter is sized for `false_positive_rate - n / 2^64`. Texts go in batches of ~1M words.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rbloom import Bloom

from corpus.files import fingerprints, write_atomic

log = logging.getLogger(__name__)
N = 8
FALSE_POSITIVE_RATE = 1e-8
FORMAT = "ngram64"  # the 8-gram hashing scheme; in the cache's file name, so another scheme's file is never read
BATCH_WORDS = 1 << 20
WORD_CACHE_SIZE = 1 << 20  # at most ~150 MB of Python objects; cleared when full
_WORDS = re.compile(r"[a-z0-9]+")
_ALNUM = b"abcdefghijklmnopqrstuvwxyz0123456789"
_SEPARATE = bytes(c if c in _ALNUM else ord(" ") for c in range(256))  # every other byte becomes a space


def normalized_words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _word_bytes(text: str) -> list[bytes]:
    """normalized_words as bytes, ~2x faster: a non-ASCII character becomes one '?', i.e. a separator, as in the regex."""
    return text.lower().encode("ascii", "replace").translate(_SEPARATE).split()


def ngrams(text: str, n: int = N) -> Iterator[str]:
    words = normalized_words(text)
    for i in range(len(words) - n + 1):
        yield " ".join(words[i : i + n])


def count_ngrams(texts: Iterable[str], n: int = N) -> int:
    return sum(max(0, len(_word_bytes(t)) - n + 1) for t in texts)


def _fmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 in which every input bit flips about half the output bits."""
    x = x ^ (x >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _word_hash(word: bytes) -> int:
    """64-bit BLAKE2b of a word as a signed int (numpy converts a list of those to int64 quickly)."""
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little", signed=True)


class _WordHashes:
    """Word -> 64-bit hash, each distinct word hashed once while it stays in a bounded cache."""

    def __init__(self, limit: int = WORD_CACHE_SIZE) -> None:
        self.limit = limit
        self.cache: dict[bytes, int] = {}

    def __call__(self, words: list[bytes]) -> list[int]:
        try:
            return list(map(self.cache.__getitem__, words))
        except KeyError:
            if len(self.cache) > self.limit:
                self.cache.clear()
            for word in set(words).difference(self.cache):
                self.cache[word] = _word_hash(word)
            return list(map(self.cache.__getitem__, words))


_word_hashes = _WordHashes()


def _gram_hashes(columns: list[np.ndarray]) -> list[int]:
    """64-bit hashes (signed ints) of 8-grams given as 8 uint64 columns of word hashes (column j: the j-th words)."""
    h = np.zeros(len(columns[0]), dtype=np.uint64)
    for column in columns:  # a chain, not a sum: the order of the words matters
        h = _fmix(h ^ column)
    return h.view(np.int64).tolist()


def _text_batches(texts: Iterable[str]) -> Iterator[tuple[list[int], np.ndarray]]:
    """(8-gram hashes, 8-grams per text) for batches of consecutive texts; 8-grams never straddle two texts."""
    hashes: list[int] = []
    lengths: list[int] = []
    for text in texts:
        words = _word_bytes(text)
        hashes += _word_hashes(words)
        lengths.append(len(words))
        if len(hashes) >= BATCH_WORDS:
            yield _batch_gram_hashes(hashes, lengths)
            hashes, lengths = [], []
    if lengths:
        yield _batch_gram_hashes(hashes, lengths)


def _batch_gram_hashes(hashes: list[int], lengths: list[int]) -> tuple[list[int], np.ndarray]:
    words = np.array(hashes, dtype=np.int64).view(np.uint64)
    length = np.array(lengths, dtype=np.int64)
    windows = max(len(words) - N + 1, 0)
    # The window starting at word i is an 8-gram of its text when it ends (i + N) within that text.
    valid = np.arange(windows) + N <= np.repeat(np.cumsum(length), length)[:windows]
    return _gram_hashes([words[j : j + windows][valid] for j in range(N)]), np.maximum(length - N + 1, 0)


def _rbloom_rate(rate: float) -> float:
    """The rate to ask rbloom for so that its filter, full, stays at or under `rate`.

    rbloom gives m = n * log2(1/rate) / ln 2 bits but k = floor(log2(1/rate)) hash positions, and with k rounded
    down the rate at n items, (1 - exp(-k n / m))^k, is above the one asked (by 0.1% at 1e-8, 2% at 1e-3). Asking
    for 2^-L, with L the bits-per-item factor at which those k positions give exactly `rate`, keeps k and meets it.
    """
    k = max(1, math.floor(-math.log2(rate)))
    bits_factor = -k / math.log2(1 - rate ** (1 / k))
    return 2**-bits_factor * (1 - 1e-9)


class NgramBloom:
    """A Bloom filter of 8-grams: `add_texts` inserts every 8-gram of texts, `contains_texts` counts those found."""

    def __init__(self, bloom: Bloom) -> None:
        self.bloom = bloom

    @classmethod
    def sized(cls, expected_items: int, false_positive_rate: float = FALSE_POSITIVE_RATE) -> NgramBloom:
        """An empty filter whose false-positive rate, 64-bit hash collisions included, stays under the given one."""
        expected_items = max(int(expected_items), 1)
        collisions = expected_items / 2**64
        if not 0 < false_positive_rate < 1 or collisions > false_positive_rate / 2:
            raise ValueError(
                f"NgramBloom: false_positive_rate {false_positive_rate} is not in (0, 1) or leaves no "
                f"room for the 64-bit hash collisions ({collisions:.1e}) of {expected_items} items"
            )
        return cls(Bloom(expected_items, _rbloom_rate(false_positive_rate - collisions), hash_func=int))

    def add_texts(self, texts: Iterable[str]) -> None:
        for hashes, _ in _text_batches(texts):
            self.bloom.update(hashes)

    def contains_texts(self, texts: Iterable[str]) -> Iterator[tuple[int, int]]:
        """(8-grams found, 8-grams) for each text, in order."""
        for hashes, grams in _text_batches(texts):
            found = np.fromiter(map(self.bloom.__contains__, hashes), dtype=np.int64, count=len(hashes))
            found_before = np.concatenate(([0], np.cumsum(found)))
            ends = np.cumsum(grams)
            yield from zip((found_before[ends] - found_before[ends - grams]).tolist(), grams.tolist())

    def contains_hashes(self, hashes: list[int]) -> int:
        """How many of these 8-gram hashes the filter holds."""
        return sum(map(self.bloom.__contains__, hashes))

    def __contains__(self, gram: str) -> bool:
        """Whether an 8-gram (a string of exactly 8 words once normalized) is in the filter."""
        words = _word_bytes(gram)
        if len(words) != N:
            raise ValueError(f"NgramBloom: {gram!r} is not an {N}-gram")
        (gram_hash,) = _gram_hashes([np.array([_word_hash(w)], dtype=np.int64).view(np.uint64) for w in words])
        return gram_hash in self.bloom

    def save(self, path: Path) -> None:
        self.bloom.save(str(path))

    @classmethod
    def load(cls, path: Path) -> NgramBloom:
        # rbloom's file is the number of hash positions k (8 bytes, little-endian) then the bits; rbloom itself
        # would read any file of 9 bytes or more as a filter.
        with open(path, "rb") as f:
            k = int.from_bytes(f.read(8), "little")
            has_bits = bool(f.read(1))
        if not 1 <= k <= 64 or not has_bits:
            raise ValueError(f"NgramBloom: {path} is not a saved filter (k={k}, {'some' if has_bits else 'no'} bits)")
        return cls(Bloom.load(str(path), int))


def build_bloom(
    texts: Iterable[str], expected_items: int, false_positive_rate: float = FALSE_POSITIVE_RATE
) -> NgramBloom:
    bloom = NgramBloom.sized(expected_items, false_positive_rate)
    bloom.add_texts(texts)
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


def corpus_bloom(
    corpus_dir: Path, cache_dir: Path | None = None, false_positive_rate: float = FALSE_POSITIVE_RATE
) -> NgramBloom:
    """The Bloom filter of a corpus' training 8-grams, cached in cache_dir under a name that changes with the shards
    and with the filter's format (a file of another format is never read as this one)."""
    shards = _train_shards(corpus_dir)
    fingerprint = hashlib.blake2b(
        repr(fingerprints(shards) + [false_positive_rate, FORMAT]).encode(), digest_size=8
    ).hexdigest()
    cache = None if cache_dir is None else Path(cache_dir) / f"train-8grams-{fingerprint}.{FORMAT}"
    if cache is not None and cache.is_file():
        return NgramBloom.load(cache)
    expected = count_ngrams(_train_texts(shards))  # an upper bound on distinct 8-grams
    log.info("overlap: building a Bloom filter for %d training 8-grams of %s", expected, corpus_dir)
    bloom = build_bloom(_train_texts(shards), expected, false_positive_rate)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache, bloom.save)
    return bloom


def measured_false_positive_rate(bloom: NgramBloom, samples: int = 1_000_000, seed: int = 0) -> float:
    """Hits among random 8-grams of random 12-letter words, which no real corpus holds (the paper used 1M)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, samples, 100_000):  # chunks bound the memory of the random words
        chunk = min(100_000, samples - start)
        letters = rng.integers(ord("a"), ord("z") + 1, size=(chunk * N, 12), dtype=np.uint8)
        words = np.array([_word_hash(w) for w in letters.view("S12").ravel().tolist()], dtype=np.int64)
        hits += bloom.contains_hashes(_gram_hashes(list(words.view(np.uint64).reshape(chunk, N).T)))
    return hits / samples if samples else 0.0


def overlap_percent(bloom: NgramBloom, texts: Iterable[str]) -> float:
    """Percentage of all the texts' 8-grams found in the filter (Table 6)."""
    found = total = 0
    for hits, grams in bloom.contains_texts(texts):
        found += hits
        total += grams
    return 100 * found / total if total else 0.0


def per_example_overlap(bloom: NgramBloom, texts: Iterable[str]) -> list[float]:
    """For each text, the percentage of its 8-grams found in the filter (0 for texts shorter than 8 words)."""
    return [100 * hits / grams if grams else 0.0 for hits, grams in bloom.contains_texts(texts)]

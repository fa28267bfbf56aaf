"""Exact and near-duplicate removal.

Exact: documents whose normalized text (NFKC, lower case, punctuation dropped, whitespace collapsed) has the same
hash are one group.

Near: datasketch MinHash (128 permutations) of the set of word 5-gram shingles of the normalized text, indexed in a
MinHashLSH with threshold 0.7 (datasketch picks bands x rows for it). LSH only proposes candidate pairs; each pair is
verified by the Jaccard similarity of the two shingle sets (compared as 64-bit hashes of the shingles: exact unless
two different shingles of the pair share a hash, about 1 in 10^13 for two 500-word texts), and a pair below the
threshold is never merged.

Survivor: in each group of verified duplicates the documents are ranked by (highest karma, earliest created_utc,
smallest id). The best one is kept and everything verified as its duplicate is removed; then the best one left that
is not removed is kept, and so on. Every removed document thus has a kept document it is verified to duplicate, and
the result does not depend on input order.

Memory: the in-memory index holds, per document, its key in each LSH band's hash table (datasketch), its text hash,
its id, karma and time, so it grows with the corpus (`benchmarks/bench_dedup.py`). The corpus build does not use it: it
runs `corpus.dedup_parts`, which gives the same result with memory set per partition, and is tested against this
class. `DedupConfig.lsh_storage` takes datasketch's storage config (e.g. Redis) for callers of this class.

Usage is two passes over the documents, neither of which holds the corpus in memory:
    dd = Deduplicator(config)
    for d in docs: dd.add(d.id, text_hash(d.text), signature(d.text), d.karma, d.created_utc)  # pass 1: no text kept
    need = dd.candidate_ids()                                                          # usually a small set
    result = dd.resolve((d.id, d.text) for d in docs if d.id in need)                   # pass 2: verify pairs
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")
MINHASH_SCHEME = "affine32"  # datasketch 2.x default; stored signatures must be read back with the same scheme


@dataclass(frozen=True)
class DedupConfig:
    threshold: float = 0.7  # Jaccard similarity of 5-gram shingle sets at or above which two docs are duplicates
    num_perm: int = 128
    shingle_words: int = 5
    seed: int = 1
    lsh_storage: dict | None = None  # datasketch storage_config; None = in memory
    lsh_basename: bytes = b"webtext-dedup"  # key prefix in a shared storage backend

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"DedupConfig.threshold must be in (0, 1], got {self.threshold}")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def text_hash(text: str) -> bytes:
    """16-byte hash of the normalized text: equal for exact duplicates up to case, punctuation and spacing."""
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).digest()


def shingles(text: str, n: int = 5) -> set[str]:
    """Word n-grams of the normalized text; a text shorter than n words is one shingle."""
    words = normalize_text(text).split()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def shingle_hashes(text: str, n: int = 5) -> np.ndarray:
    """The shingle set as sorted unique 64-bit hashes: 8 bytes a shingle instead of a Python str in a set."""
    digests = b"".join(hashlib.blake2b(s.encode(), digest_size=8).digest() for s in shingles(text, n))
    return np.unique(np.frombuffer(digests, dtype="<u8"))


def jaccard_hashes(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sets given as sorted unique arrays (`shingle_hashes`)."""
    if not a.size and not b.size:
        return 1.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def signature(text: str, config: DedupConfig = DedupConfig()) -> np.ndarray:
    """MinHash hash values (uint64, num_perm) of the text's shingle set; cheap to store and ship between workers."""
    mh = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=MINHASH_SCHEME)
    mh.update_batch([s.encode() for s in shingles(text, config.shingle_words)])
    return mh.hashvalues


@dataclass
class DedupResult:
    removed: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (reason, id of the kept duplicate)
    candidate_pairs: int = 0
    verified_pairs: int = 0
    rejected_pairs: int = 0  # LSH candidates below the threshold: never merged

    def counts(self) -> dict[str, int]:
        out = {"exact_duplicate": 0, "near_duplicate": 0}
        for reason, _ in self.removed.values():
            out[reason] += 1
        return out


class Deduplicator:
    def __init__(self, config: DedupConfig = DedupConfig()) -> None:
        self.config = config
        storage = {}
        if config.lsh_storage is not None:
            storage = {"storage_config": {**config.lsh_storage, "basename": config.lsh_basename}, "prepickle": True}
        self.lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, **storage)
        self.ids: list[str] = []
        self.karma = array("q")  # rank of doc i: (-karma[i], created[i], ids[i]), smaller is better
        self.created = array("q")
        self.exact_first: dict[bytes, int] = {}  # text hash -> first doc index with it
        self.exact_of: dict[int, int] = {}  # doc index -> first doc index of its exact group (members only)
        self.pairs: set[tuple[int, int]] = set()  # LSH candidate pairs between exact-group representatives

    def rank(self, index: int) -> tuple[int, int, str]:
        return -self.karma[index], self.created[index], self.ids[index]

    def add(self, doc_id: str, text_digest: bytes, hashvalues: np.ndarray, karma: int, created_utc: int) -> None:
        """Pass 1: index one document by its text hash and MinHash hash values."""
        index = len(self.ids)
        self.ids.append(doc_id)
        self.karma.append(int(karma))
        self.created.append(int(created_utc))
        first = self.exact_first.setdefault(text_digest, index)
        if first != index:
            self.exact_of[index] = first
            return
        mh = LeanMinHash(seed=self.config.seed, hashvalues=hashvalues, scheme=MINHASH_SCHEME)
        for other in self.lsh.query(mh):
            self.pairs.add((other, index))
        self.lsh.insert(index, mh, check_duplication=False)

    def candidate_ids(self) -> set[str]:
        """Ids whose text pass 2 must supply: both ends of every LSH candidate pair."""
        return {self.ids[i] for pair in self.pairs for i in pair}

    def resolve(self, texts: Iterable[tuple[str, str]]) -> DedupResult:
        """Pass 2: verify candidate pairs by exact Jaccard and pick survivors."""
        position = {self.ids[i]: i for pair in self.pairs for i in pair}
        shingle_sets: dict[int, np.ndarray] = {}
        for doc_id, text in texts:
            if doc_id in position:
                shingle_sets[position[doc_id]] = shingle_hashes(text, self.config.shingle_words)
        missing = set(position.values()) - set(shingle_sets)
        if missing:
            raise ValueError(f"resolve() got no text for {len(missing)} candidate ids, e.g. {self.ids[min(missing)]}")

        result = DedupResult(candidate_pairs=len(self.pairs))
        groups: dict[int, list[int]] = {}
        for member, first in self.exact_of.items():
            groups.setdefault(first, [first]).append(member)
        best = {first: min(members, key=self.rank) for first, members in groups.items()}

        neighbours: dict[int, set[int]] = {}
        for a, b in sorted(self.pairs):
            if jaccard_hashes(shingle_sets[a], shingle_sets[b]) >= self.config.threshold:
                result.verified_pairs += 1
                ra, rb = best.get(a, a), best.get(b, b)
                neighbours.setdefault(ra, set()).add(rb)
                neighbours.setdefault(rb, set()).add(ra)
            else:
                result.rejected_pairs += 1

        for first, members in groups.items():
            for m in members:
                if m != best[first]:
                    result.removed[self.ids[m]] = ("exact_duplicate", self.ids[best[first]])
        removed_near: set[int] = set()
        for node in sorted(neighbours, key=self.rank):
            if node in removed_near:
                continue
            for other in neighbours[node]:
                if other not in removed_near and self.rank(other) > self.rank(node):
                    removed_near.add(other)
                    result.removed[self.ids[other]] = ("near_duplicate", self.ids[node])
        return result

    def __len__(self) -> int:
        return len(self.ids)

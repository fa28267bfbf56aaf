"""MinHash + LSH de-duplication: docs/s and index memory at 10k (default) and 100k (--large) generated documents.

Documents are 300 random words from a 50k vocabulary; 10% are near-duplicates (3 edited words) and 2% exact copies.
Figures: signature docs/s (shingling + MinHash, the part that runs in parallel in the flow), index docs/s (LSH query
+ insert, single process), verify time (exact Jaccard of the candidate pairs), memory of the in-memory index per
document (tracemalloc, a second build), recall of the generated near-duplicates, and, as the peer measured in the
same run, a plain Python `set` of the same docs' shingle hashes (what exact pairwise verification would hold).

    .venv/bin/python benchmarks/bench_dedup.py [--docs 10000] [--large]
"""
from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from corpus.dedup import DedupConfig, Deduplicator, shingles, signature, text_hash


def generate(n: int, seed: int = 0) -> tuple[list[tuple[str, str, int, int]], set[tuple[str, str]]]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(50_000)]
    docs, near = [], set()
    for i in range(n):
        r = rng.random()
        if i > 10 and r < 0.10:
            j = rng.randrange(len(docs))
            words = docs[j][1].split()
            for k in rng.sample(range(len(words)), 3):
                words[k] = rng.choice(vocab)
            docs.append((f"d{i:07d}", " ".join(words), 1, i))
            near.add((docs[j][0], f"d{i:07d}"))
        elif i > 10 and r < 0.12:
            docs.append((f"d{i:07d}", docs[rng.randrange(len(docs))][1], 1, i))
        else:
            docs.append((f"d{i:07d}", " ".join(rng.choice(vocab) for _ in range(300)), 1, i))
    return docs, near


def build_index(docs, sigs, hashes, config):
    dd = Deduplicator(config)
    for (doc_id, _, karma, created), sig, h in zip(docs, sigs, hashes):
        dd.add(doc_id, h, sig, karma, created)
    return dd


def run(n: int) -> None:
    config = DedupConfig()
    docs, near = generate(n)
    t = time.perf_counter()
    sigs = [signature(text, config) for _, text, _, _ in docs]
    hashes = [text_hash(text) for _, text, _, _ in docs]
    sig_s = time.perf_counter() - t

    t = time.perf_counter()
    dd = build_index(docs, sigs, hashes, config)
    index_s = time.perf_counter() - t
    t = time.perf_counter()
    need = dd.candidate_ids()
    result = dd.resolve((d, text) for d, text, _, _ in docs if d in need)
    verify_s = time.perf_counter() - t

    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    index = build_index(docs, sigs, hashes, config)
    index_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del index

    sample = docs[: min(n, 2000)]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = [{hash(s) for s in shingles(text)} for _, text, _, _ in sample]
    set_bytes = (tracemalloc.get_traced_memory()[0] - base) / len(sample)
    tracemalloc.stop()
    del held

    # a pair (kept, copy) is caught when the copy is removed, directly or through another copy of the same original
    caught = sum(1 for a, b in near if b in result.removed or a in result.removed)
    print(f"documents {n:,}: signatures {n / sig_s:,.0f} docs/s | index {n / index_s:,.0f} docs/s | "
          f"verify {verify_s:.1f} s for {result.candidate_pairs:,} candidate pairs "
          f"({result.rejected_pairs:,} rejected below {config.threshold})")
    print(f"  index memory {index_bytes / 2**20:,.1f} MiB = {index_bytes / n:,.0f} B/doc "
          f"(peer: a set of one doc's shingle hashes {set_bytes:,.0f} B/doc, {set_bytes / (index_bytes / n):.1f}x)")
    print(f"  removed {result.counts()} | near-duplicate recall {caught / max(len(near), 1):.3f} of {len(near):,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="*", default=[10_000])
    parser.add_argument("--large", action="store_true", help="also 100k documents (several minutes)")
    args = parser.parse_args()
    for n in args.docs + ([100_000] if args.large else []):
        run(n)


if __name__ == "__main__":
    main()

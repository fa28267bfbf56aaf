"""The shard writer's peak memory as the corpus grows: `corpus.shards.write_shards` on generated documents, each size
in a fresh process, at the default text budget (`ShardConfig.memory_text_bytes`) and, as the peer measured in the
same run, at a quarter of it. A writer whose memory is bounded by its budget levels off once a shard's text exceeds
the budget; one that holds the corpus keeps growing.

Documents: 150 to 1,200 words (about 4 KB of text on average) from a 5,000-word vocabulary, ids and domains as in a
build. Figures per size and budget: peak RSS of the process over its RSS before writing (ru_maxrss), the peak of
Arrow's memory pool, and docs/s.

    .venv/bin/python benchmarks/bench_shards.py [--docs 10000 50000 100000] [--budgets-mib 8 32]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def documents(n: int, seed: int = 0) -> Iterator[dict]:
    rng = random.Random(seed)
    vocab = [hashlib.md5(str(i).encode()).hexdigest()[: 2 + i % 8] for i in range(5000)]
    for i in range(n):
        words = rng.randint(150, 1200)
        url = f"https://site{i % 3000}.example.com/{i}"
        yield {
            "id": hashlib.blake2b(url.encode(), digest_size=8).hexdigest(),
            "url": url,
            "link_url": url,
            "domain": f"site{i % 3000}.example.com",
            "title": f"Document {i}",
            "text": " ".join(rng.choice(vocab) for _ in range(words)),
            "karma": 3 + i % 50,
            "subreddits": ["news"],
            "created_utc": 1_500_000_000 + i,
            "fetched_at": "2026-01-01T00:00:00Z",
            "extractor": "trafilatura",
            "n_words": words,
        }


def measure(n: int, budget_mib: int) -> dict:
    """In this process: write the shards of `n` documents with a text budget of `budget_mib` MiB."""
    import pyarrow as pa

    from corpus.shards import ShardConfig, write_shards

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = write_shards(
            lambda: documents(n), Path(tmp) / "shards", ShardConfig(memory_text_bytes=budget_mib << 20)
        )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rise_mib": (peak - before) / 1024,
        "arrow_mib": pa.default_memory_pool().max_memory() / 2**20,
        "docs_per_s": n / seconds,
        "shards": len(files),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--budgets-mib", type=int, nargs="+", default=[8, 32], help="ShardConfig.memory_text_bytes")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # a child: N BUDGET
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    print(
        f"{'docs':>8s} {'budget MiB':>10s} {'peak rise MiB':>13s} {'Arrow pool MiB':>14s} {'docs/s':>7s} {'shards':>6s}"
    )
    for budget in args.budgets_mib:
        for n in args.docs:
            child = subprocess.run(
                [sys.executable, __file__, "--one", str(n), str(budget)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            r = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"{n:8d} {budget:10d} {r['rise_mib']:13.0f} {r['arrow_mib']:14.0f} {r['docs_per_s']:7.0f} "
                f"{r['shards']:6d}"
            )


if __name__ == "__main__":
    main()

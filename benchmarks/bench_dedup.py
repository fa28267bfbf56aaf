"""MinHash + LSH de-duplication: docs/s and index memory at 10k (default) and 100k (--large) generated documents.

Documents are 300 random words from a 50k vocabulary; 10% are near-duplicates (3 edited words) and 2% exact copies.
Figures: signature docs/s (shingling + MinHash, the part that runs in parallel in the flow), index docs/s (LSH query
+ insert, single process), verify time (exact Jaccard of the candidate pairs), memory of the in-memory index per
document (tracemalloc, a second build), recall of the generated near-duplicates, and, as the peer measured in the
same run, a plain Python `set` of the same docs' shingle hashes (what exact pairwise verification would hold).

    .venv/bin/python benchmarks/bench_dedup.py [--docs 10000] [--large]

`--rss N...` measures the build's dedup stage instead (`corpus.dedup_parts` through `build.DedupStage`, every part in
one process, as one Dask worker runs them): its peak RSS at each size against today's in-memory index
(`Deduplicator` over the same filter parts) at the first size, each in a fresh process. The filter parts are
generated: 150-word texts, 10% near-duplicates (3 words of the text edited, and MinHash values redrawn with
probability 0.1: the MinHash statistics of a copy with Jaccard 0.9) and 2% exact copies; the signatures are
generated, not computed from the texts (signing 1M texts takes longer than the dedup itself); verification uses the
generated texts.

    .venv/bin/python benchmarks/bench_dedup.py --rss 100000 1000000 [--partition-docs 50000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

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
    print(
        f"documents {n:,}: signatures {n / sig_s:,.0f} docs/s | index {n / index_s:,.0f} docs/s | "
        f"verify {verify_s:.1f} s for {result.candidate_pairs:,} candidate pairs "
        f"({result.rejected_pairs:,} rejected below {config.threshold})"
    )
    print(
        f"  index memory {index_bytes / 2**20:,.1f} MiB = {index_bytes / n:,.0f} B/doc "
        f"(peer: a set of one doc's shingle hashes {set_bytes:,.0f} B/doc, {set_bytes / (index_bytes / n):.1f}x)"
    )
    print(f"  removed {result.counts()} | near-duplicate recall {caught / max(len(near), 1):.3f} of {len(near):,}")


REPO = Path(__file__).resolve().parents[1]


def write_filter_parts(folder: Path, n: int, rows_per_part: int = 5000, seed: int = 0) -> None:
    """Generated filter-stage parts (see the module docstring), built a part at a time with numpy."""
    import hashlib

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.build import FILTERED_SCHEMA, doc_id
    from corpus.dedup import normalize_text

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    window = 20_000  # copies come from the last `window` documents: bounded generator memory
    words = np.zeros((window, 150), dtype=np.int64)
    sigs = np.zeros((window, 128), dtype=np.uint64)
    digits = np.frombuffer(b"0123456789", dtype=np.uint8)
    for start in range(0, n, rows_per_part):
        m = min(rows_per_part, n - start)
        w = rng.integers(0, 100_000, size=(m, 150))
        s = rng.integers(0, 2**32, size=(m, 128), dtype=np.uint64)
        kind = rng.random(m)
        for i in range(m):  # copies may copy documents of this part: row by row
            if start + i > 10 and kind[i] < 0.12:
                j = int(rng.integers(min(start + i, window)))
                w[i], s[i] = words[j], sigs[j]
                if kind[i] < 0.10:  # near: 3 words edited, MinHash values redrawn with probability 0.1
                    w[i, rng.choice(150, 3, replace=False)] = rng.integers(0, 100_000, 3)
                    redraw = rng.random(128) < 0.1
                    s[i, redraw] = rng.integers(0, 2**32, int(redraw.sum()), dtype=np.uint64)
            words[(start + i) % window], sigs[(start + i) % window] = w[i], s[i]
        # text "w01234 w56789 ...": fixed-width words written as bytes, already in normalized form
        chars = np.empty((m, 150, 7), dtype=np.uint8)
        chars[:, :, 0] = ord("w")
        for d in range(5):
            chars[:, :, 1 + d] = digits[(w // 10 ** (4 - d)) % 10]
        chars[:, :, 6] = ord(" ")
        raw = chars.reshape(m, -1)[:, :-1].tobytes()
        width = 150 * 7 - 1
        texts = [raw[k * width : (k + 1) * width].decode() for k in range(m)]
        assert normalize_text(texts[0]) == texts[0]
        urls = [f"https://site{(start + k) % 500}.example.com/{start + k}" for k in range(m)]
        table = pa.table(
            {
                "id": [doc_id(u) for u in urls],
                "url": urls,
                "link_url": urls,
                "domain": [u.split("/")[2] for u in urls],
                "title": pa.nulls(m, pa.string()),
                "text": texts,
                "karma": rng.integers(1, 50, m),
                "subreddits": pa.array([[]] * m, pa.list_(pa.string())),
                "created_utc": np.arange(start, start + m),
                "fetched_at": ["2026-11-30T00:00:00Z"] * m,
                "extractor": ["trafilatura"] * m,
                "n_words": np.full(m, 150),
                "text_hash": pa.array(
                    [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts], pa.binary(16)
                ),
                "minhash": [row.astype("<u8").tobytes() for row in s],
            },
            schema=FILTERED_SCHEMA,
        )
        pq.write_table(table, folder / f"00000-{start // rows_per_part:05d}.parquet")


def _peak_rss_mib() -> float:
    """This process's peak RSS since it started (VmHWM; ru_maxrss would carry the parent's from before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_child(method: str, out_dir: Path, partition_docs: int) -> None:
    """One dedup run in this fresh process; prints its peak RSS and result as JSON."""
    import numpy as np
    import pyarrow.parquet as pq

    from corpus.build import DedupStage, filtered_parts, stage_key
    from corpus.stages import map_in_process, run_stage

    base = _peak_rss_mib()
    start = time.perf_counter()
    if method == "parts":
        stage = DedupStage(out_dir, DedupConfig(), partition_docs)
        removed = run_stage(stage, stage_key("bench"), map_in_process)[1].dropped
    else:  # today's in-memory index over the same parts (the build's dedup before corpus.dedup_parts)
        dd = Deduplicator(DedupConfig())
        parts = filtered_parts(out_dir)
        for part in parts:
            t = pq.read_table(part, columns=["id", "karma", "created_utc", "text_hash", "minhash"]).to_pylist()
            for row in t:
                dd.add(
                    row["id"],
                    row["text_hash"],
                    np.frombuffer(row["minhash"], dtype="<u8"),
                    row["karma"],
                    row["created_utc"],
                )
        need = dd.candidate_ids()
        texts = (
            (r["id"], r["text"])
            for part in parts
            for r in pq.read_table(part, columns=["id", "text"]).to_pylist()
            if r["id"] in need
        )
        removed = dd.resolve(texts).counts()
    print(
        json.dumps(
            {"seconds": time.perf_counter() - start, "removed": removed, "base_mib": base, "peak_mib": _peak_rss_mib()}
        )
    )


def rss(sizes: list[int], partition_docs: int) -> None:
    print(
        f"dedup stage, peak RSS of the process (fresh process each; after imports in brackets), "
        f"partition_docs={partition_docs:,}"
    )
    runs = [("in-memory", sizes[0])] + [("parts", n) for n in sizes]
    for method, n in runs:
        with tempfile.TemporaryDirectory(dir=REPO / ".tmp" if (REPO / ".tmp").is_dir() else None) as tmp:
            t = time.perf_counter()
            write_filter_parts(Path(tmp) / "filter", n)
            generated = time.perf_counter() - t
            out = subprocess.run(
                [sys.executable, __file__, "--rss-child", method, tmp, str(partition_docs)],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if out.returncode:
                raise SystemExit(f"{method} at {n:,} documents failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"  {method:>9s} {n:>9,} docs: peak {r['peak_mib']:7.0f} MiB ({r['base_mib']:.0f} after imports), "
            f"{r['seconds']:6.1f} s ({n / r['seconds']:,.0f} docs/s; input generated in {generated:.0f} s), "
            f"removed {r['removed']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="*", default=[10_000])
    parser.add_argument("--large", action="store_true", help="also 100k documents (several minutes)")
    parser.add_argument("--rss", type=int, nargs="*", help="peak RSS of the build's dedup stage at these sizes")
    parser.add_argument("--partition-docs", type=int, default=50_000)
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        method, out_dir, partition_docs = args.rss_child
        rss_child(method, Path(out_dir), int(partition_docs))
    elif args.rss:
        rss(args.rss, args.partition_docs)
    else:
        for n in args.docs + ([100_000] if args.large else []):
            run(n)


if __name__ == "__main__":
    main()

"""Peak memory of a whole corpus build (library level, no Prefect server): WARC -> extract -> filter -> dedup ->
Wikipedia removal -> shards, on generated pages, at several corpus sizes.

Each size runs in a fresh process; printed: wall time, docs/s, peak RSS of the build process, the stage it peaked in,
how much the dedup stage alone raised RSS per document (the index: the peer the growth is measured against), and the
peak RSS of the largest extraction worker; then the growth of the peak per document between consecutive sizes. The
goal: the peak grows with the corpus only by the dedup index (`bench_dedup.py`: about 4.5-4.9 KB per document of
Python objects, ~5.5 KB of RSS).

Measured on the otherwise idle 2-core machine with the build's dedup in parts (`corpus.dedup_parts`, 50,000
documents a partition): 10k documents 412 MiB peak (in the shards stage), 100k documents 559 MiB (in the dedup
stage: its partitions hold up to 50,000 documents' rows), 341 and 362 docs/s (100k: 4.6 min). With the in-memory
index before it: 379 and 801 MiB, 199 and 249 docs/s. `bench_dedup.py --rss` measures the dedup stage alone up to 1M.

    .venv/bin/python benchmarks/bench_build.py [--docs 1000 3000] [--large]   # --large: 10k and 100k (~8 min)
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def write_warc(path: Path, n: int, seed: int = 0) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(30_000)]
    texts: list[list[str]] = []
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for i in range(n):
            if texts and rng.random() < 0.05:  # near-duplicates for the dedup stage
                words = list(rng.choice(texts))
                words[rng.randrange(len(words))] = "edited"
            else:
                words = [rng.choice(vocab) for _ in range(350)]
                texts.append(words)
            paragraphs = "".join(f"<p>{' '.join(words[k : k + 50])}.</p>" for k in range(0, len(words), 50))
            html = (
                f"<html><head><title>Page {i}</title></head><body><nav><a href='/'>Home</a> <a href='/a'>About</a>"
                f"</nav><article><h1>Story {i}</h1>{paragraphs}</article><footer>Copyright site{i % 50}</footer>"
                f"</body></html>"
            ).encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            url = f"https://site{i % 50}.example.com/story/{i}"
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(html), http_headers=headers)
            )


class RssSampler(threading.Thread):
    """RSS of this process every 20 ms, to tell which stage the peak is in."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        proc = psutil.Process()
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), proc.memory_info().rss))
            self.stop.wait(0.02)

    def stages(self, start: float, stage_seconds: dict[str, float]) -> dict[str, tuple[int, int]]:
        """(RSS when the stage began, peak RSS in it) per stage."""
        out = {}
        for name, seconds in stage_seconds.items():
            inside = [rss for t, rss in self.samples if start <= t < start + seconds] or [0]
            out[name] = (inside[0], max(inside))
            start += seconds
        return out


def child(n: int, workdir: Path) -> None:
    from corpus.build import BuildConfig, build_from_warcs
    from corpus.extract import ExtractConfig, close_shared_pools

    warc = workdir / "pages.warc.gz"
    write_warc(warc, n)
    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    t0 = time.monotonic()
    result = build_from_warcs(
        [warc], workdir / "out", BuildConfig(extract=ExtractConfig(method="trafilatura"), pages_per_part=256)
    )
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    close_shared_pools()  # extraction workers are waited for, so their peak RSS is counted below
    stages = sampler.stages(t0, result.stage_seconds)
    print(
        json.dumps(
            {
                "docs": n,
                "wall_s": wall,
                "kept": result.manifest["totals"]["documents"],
                "stage_s": result.stage_seconds,
                "peak_stage": max(stages, key=lambda name: stages[name][1]),
                "dedup_rise_bytes": stages["dedup"][1] - stages["dedup"][0],
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="*", default=[500, 2000])
    parser.add_argument(
        "--large", action="store_true", help="10k and 100k documents (100k: about 7 minutes on 2 cores)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir)
        return
    sizes = [10_000, 100_000] if args.large else args.docs
    print(
        f"{'docs':>8s} {'kept':>8s} {'wall s':>8s} {'docs/s':>8s} {'peak RSS MiB':>13s} {'peak in':>8s} "
        f"{'dedup rise KB/doc':>18s} {'worker RSS MiB':>15s}  stages (s; shards includes wikipedia)"
    )
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=REPO / ".tmp" if (REPO / ".tmp").is_dir() else None) as tmp:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(n), "--workdir", tmp],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        stages = " ".join(f"{k} {v:.1f}" for k, v in r["stage_s"].items())
        print(
            f"{n:8d} {r['kept']:8d} {r['wall_s']:8.1f} {n / r['wall_s']:8.1f} {r['rss_mib']:13.0f} "
            f"{r['peak_stage']:>8s} {r['dedup_rise_bytes'] / n / 1000:18.1f} {r['worker_rss_mib']:15.0f}  {stages}"
        )
    for a, b in zip(results, results[1:]):
        growth = (b["rss_mib"] - a["rss_mib"]) * 2**20 / (b["docs"] - a["docs"]) / 1000
        index = (b["dedup_rise_bytes"] - a["dedup_rise_bytes"]) / (b["docs"] - a["docs"]) / 1000
        print(
            f"peak RSS growth {a['docs']:,} -> {b['docs']:,} documents: {growth:.1f} KB/doc; the dedup stage's own "
            f"rise grows {index:.1f} KB/doc (ratio {growth / index if index > 0 else float('nan'):.2f})"
        )


if __name__ == "__main__":
    main()

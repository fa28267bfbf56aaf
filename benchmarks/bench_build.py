"""Peak memory of a whole corpus build (library level, no Prefect server): WARC -> extract -> filter -> dedup ->
Wikipedia removal -> shards, on generated pages, at several corpus sizes.

Each size runs in a fresh process; printed: wall time, docs/s, peak RSS of the build process and of its largest
extraction worker. The goal is a peak that grows with the corpus only by the dedup index (`bench_dedup.py`: about
4.5-4.9 KB per document). Measured on 2 cores: 408 MiB at 10k documents, 1,683 MiB at 100k, i.e. about 14.5 KB per
document: the goal is not met yet (the shard writer sorts up to a 256 MB shard in memory; dedup keeps per-document
state beside the index).

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
import time
from pathlib import Path

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
            paragraphs = "".join(f"<p>{' '.join(words[k:k + 50])}.</p>" for k in range(0, len(words), 50))
            html = (f"<html><head><title>Page {i}</title></head><body><nav><a href='/'>Home</a> <a href='/a'>About</a>"
                    f"</nav><article><h1>Story {i}</h1>{paragraphs}</article><footer>Copyright site{i % 50}</footer>"
                    f"</body></html>").encode()
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            url = f"https://site{i % 50}.example.com/story/{i}"
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(html),
                                                          http_headers=headers))


def child(n: int, workdir: Path) -> None:
    from corpus.build import BuildConfig, build_from_warcs
    from corpus.extract import ExtractConfig, close_shared_pools

    warc = workdir / "pages.warc.gz"
    write_warc(warc, n)
    start = time.perf_counter()
    result = build_from_warcs([warc], workdir / "out", BuildConfig(extract=ExtractConfig(method="trafilatura"),
                                                                   pages_per_part=256))
    wall = time.perf_counter() - start
    close_shared_pools()  # extraction workers are waited for, so their peak RSS is counted below
    print(json.dumps({"docs": n, "wall_s": wall, "kept": result.manifest["totals"]["documents"],
                      "stage_s": result.stage_seconds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="*", default=[500, 2000])
    parser.add_argument("--large", action="store_true", help="10k and 100k documents (100k: about 7 minutes on 2 cores)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir)
        return
    sizes = [10_000, 100_000] if args.large else args.docs
    print(f"{'docs':>8s} {'kept':>8s} {'wall s':>8s} {'docs/s':>8s} {'peak RSS MiB':>13s} {'worker RSS MiB':>15s}  stages (s)")
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=REPO / ".tmp" if (REPO / ".tmp").is_dir() else None) as tmp:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--workdir", tmp], cwd=REPO,
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
        stages = " ".join(f"{k} {v:.1f}" for k, v in r["stage_s"].items())
        print(f"{n:8d} {r['kept']:8d} {r['wall_s']:8.1f} {n / r['wall_s']:8.1f} {r['rss_mib']:13.0f} "
              f"{r['worker_rss_mib']:15.0f}  {stages}")


if __name__ == "__main__":
    main()

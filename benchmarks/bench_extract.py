"""Extraction benchmarks on the 300 real pages of ../shared/data/web/trafilatura/.

Default: docs/s per core of the pipeline (corpus.extract.ExtractorPool: worker process, per-page deadline, cache
resets) against a bare `trafilatura.extract` loop on the same pages in this process; the target is an overhead of
at most 10%. `--quality`: precision/recall/F1 of trafilatura alone, newspaper4k alone and the combination, scored like
trafilatura's own evaluation (a "with" snippet found is a true positive, a "without" snippet found a false positive).

    .venv/bin/python benchmarks/bench_extract.py [--pages 100] [--quality]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES_DIR = Path(os.environ.get("WEBTEXT_SHARED_DIR", REPO.parent / "shared")) / "data" / "web" / "trafilatura"


def load_pages(limit: int) -> list[dict]:
    if not (PAGES_DIR / "manifest.json").exists():
        raise SystemExit(f"needs the shared pages in {PAGES_DIR} (set WEBTEXT_SHARED_DIR)")
    manifest = json.loads((PAGES_DIR / "manifest.json").read_text())[:limit]
    for entry in manifest:
        entry["html"] = (PAGES_DIR / entry["file"]).read_bytes()
        entry["url"] = entry["url"] if entry["url"].startswith("http") else None
    return manifest


def speed(pages: list[dict]) -> None:
    import trafilatura

    from corpus.extract import ExtractConfig, ExtractorPool

    for p in pages[:5]:  # warm imports and lxml
        trafilatura.extract(p["html"], url=p["url"], include_comments=False)
    t = time.perf_counter()
    for p in pages:
        trafilatura.extract(p["html"], url=p["url"], include_comments=False)
    bare = len(pages) / (time.perf_counter() - t)

    rows = [("bare trafilatura.extract loop (1 process)", bare, 1)]
    for method, workers in (("trafilatura", 1), ("combined", 1), ("trafilatura", os.cpu_count() or 1)):
        with ExtractorPool(ExtractConfig(method=method, workers=workers)) as pool:
            list(pool.imap((i, p["html"], p["url"]) for i, p in enumerate(pages[: 2 * workers])))  # start-up
            t = time.perf_counter()
            list(pool.imap((i, p["html"], p["url"]) for i, p in enumerate(pages)))
            rows.append((f"pipeline pool, method={method}, workers={workers}", len(pages) / (time.perf_counter() - t), workers))
    print(f"{'extraction of ' + str(len(pages)) + ' real pages':58s} {'docs/s':>8s} {'docs/s/core':>12s} {'vs bare':>8s}")
    for name, rate, cores in rows:
        print(f"{name:58s} {rate:8.1f} {rate / cores:12.1f} {rate / cores / bare:8.2f}")
    overhead = 1 - rows[1][1] / bare
    print(f"pipeline overhead per core (method=trafilatura, 1 worker): {overhead:+.1%} (target <= 10%)")


def quality(pages: list[dict]) -> None:
    from corpus.extract import ExtractConfig, _decode, _newspaper, _trafilatura, choose

    outputs = []
    for p in pages:
        html = _decode(p["html"])
        traf = _trafilatura(html, p["url"])
        try:
            news = _newspaper(html, p["url"])
        except Exception:
            news = None
        outputs.append((traf, news))
    print(f"{'extractor (' + str(len(pages)) + ' pages)':40s} {'precision':>9s} {'recall':>7s} {'F1':>6s}")
    for method in ("trafilatura", "newspaper4k", "combined"):
        tp = fp = fn = 0
        for p, (traf, news) in zip(pages, outputs):
            text = choose(traf, news, ExtractConfig(method=method))[0] or ""
            tp += sum(s in text for s in p["with"])
            fn += sum(s not in text for s in p["with"])
            fp += sum(s in text for s in p["without"])
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        print(f"{method:40s} {precision:9.3f} {recall:7.3f} {2 * precision * recall / (precision + recall):6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100, help="pages to use (of 300)")
    parser.add_argument("--quality", action="store_true", help="precision/recall/F1 instead of speed (all pages)")
    args = parser.parse_args()
    if args.quality:
        quality(load_pages(300 if args.pages == 100 else args.pages))
    else:
        speed(load_pages(args.pages))


if __name__ == "__main__":
    main()

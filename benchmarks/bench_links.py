"""Link harvesting: submissions/s and peak memory of corpus.links against the in-memory aggregation it replaced.

A generated .zst dump of N submissions (default 300k) with Reddit-like URL reuse: most links are submitted once, a
few are reposted many times under other spellings (www., tracking parameters, trailing slash); about a third are self
posts, Reddit or media links, NSFW. Each harvest runs in its own process, so its peak RSS (ru_maxrss) is its own:

    peer       the in-memory aggregation corpus.links used before (one `_Link` per candidate URL, kept below as it was)
    spilled    corpus.links with the default memory_rows (1 M: at the default size nothing spills before the end)
    bounded    corpus.links with memory_rows = N / 10 (spills, aggregates and merges in ~10 units)

Printed: submissions/s, peak RSS and RSS above the interpreter + imports baseline, that figure per candidate URL, the
ratios against the peer, and whether links.parquet is byte-identical to the peer's.

    .venv/bin/python benchmarks/bench_links.py                     # 300k submissions, about a minute
    .venv/bin/python benchmarks/bench_links.py --submissions 3000000
    .venv/bin/python benchmarks/bench_links.py --pool system      # Arrow on malloc: RSS follows what is in use
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus.links import (  # noqa: E402
    DROP_REASONS,
    LINKS_SCHEMA,
    LinkConfig,
    LinkStats,
    _score,
    classify_submission,
    harvest_links,
)
from corpus.reddit import iter_submissions, write_submissions  # noqa: E402
from corpus.urls import registered_domain, url_host  # noqa: E402

WORDS = (
    "the a of new how why study finds city court report after says first year world police study data "
    "open source game review election market climate science space music film health school"
).split()


def generate(n: int, path: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    hosts = [f"{rng.choice(['news', 'blog', 'www', 'en', ''])}.site{i}.com".lstrip(".") for i in range(5_000)]
    subreddits = [f"sub{i}" for i in range(3_000)]
    links: list[str] = []

    def record(i: int) -> dict:
        kind = rng.random()
        if kind < 0.65 or not links:
            url = (
                f"http://{rng.choice(hosts)}/{rng.randrange(2005, 2018)}/{rng.randrange(1, 13):02d}/"
                + "-".join(rng.choices(WORDS, k=6))
                + f"-{i}.html"
            )
            links.append(url)
        elif kind < 0.80:  # a repost, popular links more often (Pareto-distributed rank from the newest)
            url = links[max(0, len(links) - int(rng.paretovariate(0.7)))]
            url = rng.choice([url, url.replace("http://", "https://"), url + "?utm_source=feed", url + "#c"])
        elif kind < 0.88:
            url = f"https://i.imgur.com/{rng.randrange(10**9):x}.jpg"
        else:
            url = f"https://www.reddit.com/r/{rng.choice(subreddits)}/comments/{i:x}/"
        return {
            "id": f"{i:x}",
            "subreddit": rng.choice(subreddits),
            "score": int(rng.paretovariate(1.2)) - 1,
            "url": url,
            "is_self": url.startswith("https://www.reddit.com") and rng.random() < 0.8,
            "over_18": rng.random() < 0.03,
            "created_utc": 1_136_073_600 + i * 300,
            "title": " ".join(rng.choices(WORDS, k=rng.randrange(6, 16))).capitalize(),
            "domain": url_host(url) if url.startswith("http") else "self",
            "num_comments": rng.randrange(50),
        }

    return write_submissions(path, (record(i) for i in range(n)))


# ---- the peer: the in-memory aggregation corpus.links used before (commit 0863db8) ---------------------------------


@dataclass
class _Link:
    karma: int = 0
    n_submissions: int = 0
    original_urls: set[str] = field(default_factory=set)
    subreddits: set[str] = field(default_factory=set)
    best_score: int | None = None
    title: str = ""
    first_created_utc: int | None = None
    last_created_utc: int | None = None

    def add(self, record: dict, url: str, score: int) -> None:
        self.karma += score
        self.n_submissions += 1
        self.original_urls.add(url)
        if record.get("subreddit"):
            self.subreddits.add(str(record["subreddit"]))
        if self.best_score is None or score > self.best_score:
            self.best_score, self.title = score, str(record.get("title") or "")
        created = record.get("created_utc")
        if created is not None:
            self.first_created_utc = created if self.first_created_utc is None else min(self.first_created_utc, created)
            self.last_created_utc = created if self.last_created_utc is None else max(self.last_created_utc, created)


def in_memory_harvest(dumps: list[Path], out_path: Path, config: LinkConfig) -> tuple[LinkStats, int]:
    """Returns the stats and the number of candidate URLs (distinct canonical URLs held in memory)."""
    cutoff = config.cutoff_ts()
    blocked_subs = frozenset(s.lower() for s in config.subreddit_blocklist)
    dropped: Counter[str] = Counter()
    links: dict[str, _Link] = {}
    stats = LinkStats()

    def count_malformed(path: Path, line_no: int, reason: str) -> None:
        dropped["malformed_line"] += 1
        stats.submissions += 1

    for path in dumps:
        for record in iter_submissions(path, on_malformed=count_malformed):
            stats.submissions += 1
            reason, url, original = classify_submission(record, config, cutoff, blocked_subs)
            if reason is None:
                links.setdefault(url, _Link()).add(record, original, _score(record))
            else:
                dropped[reason] += 1
    kept = sorted(url for url, link in links.items() if link.karma >= config.min_karma)
    for link in links.values():
        if link.karma < config.min_karma:
            stats.urls_below_min_karma += 1
            dropped["below_min_karma"] += link.n_submissions
    rows = [links[url] for url in kept]
    pq.write_table(
        pa.table(
            {
                "url": kept,
                "original_urls": [sorted(link.original_urls) for link in rows],
                "domain": [registered_domain(url_host(url)) for url in kept],
                "karma": [link.karma for link in rows],
                "n_submissions": [link.n_submissions for link in rows],
                "subreddits": [sorted(link.subreddits) for link in rows],
                "title": [link.title for link in rows],
                "first_created_utc": [link.first_created_utc for link in rows],
                "last_created_utc": [link.last_created_utc for link in rows],
            },
            schema=LINKS_SCHEMA,
        ),
        out_path,
        compression="zstd",
    )
    stats.kept = len(kept)
    stats.kept_submissions = sum(link.n_submissions for link in rows)
    stats.dropped = {reason: dropped[reason] for reason in DROP_REASONS}
    return stats, len(links)


# ---- one harvest per process --------------------------------------------------------------------------------------


def child(mode: str, dump: Path, out: Path, memory_rows: int) -> None:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if mode == "peer":
        stats, candidate_urls = in_memory_harvest([dump], out, LinkConfig())
    else:
        stats, candidate_urls = harvest_links([dump], out, LinkConfig(memory_rows=memory_rows)), None
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - start,
                "stats": stats.to_dict(),
                "candidate_urls": candidate_urls,
                "baseline_kib": baseline,
                "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
            }
        )
    )


def measure(mode: str, dump: Path, out: Path, memory_rows: int, pool: str | None) -> dict:
    env = {**os.environ, **({"ARROW_DEFAULT_MEMORY_POOL": pool} if pool else {})}
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(dump), str(out), str(memory_rows)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=300_000)
    parser.add_argument(
        "--pool",
        choices=["mimalloc", "jemalloc", "system"],
        help="Arrow memory pool of the harvests (default: pyarrow's mimalloc, which keeps freed pages)",
    )
    parser.add_argument("--child", nargs=4, metavar=("MODE", "DUMP", "OUT", "MEMORY_ROWS"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", metavar="DUMP", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, dump, out, memory_rows = args.child
        child(mode, Path(dump), Path(out), int(memory_rows))
        return
    if args.generate:
        generate(args.submissions, Path(args.generate))
        return
    (Path(__file__).resolve().parents[1] / ".tmp").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / ".tmp") as tmp:
        start = time.perf_counter()
        # in a process of its own too: a harvest forked from a big parent would start with the parent's peak RSS
        dump = Path(tmp) / "RS_bench.zst"
        subprocess.run(
            [sys.executable, __file__, "--submissions", str(args.submissions), "--generate", str(dump)], check=True
        )
        print(
            f"generated {args.submissions:,} submissions ({dump.stat().st_size / 2**20:.1f} MiB .zst) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        runs = {"peer": measure("peer", dump, Path(tmp) / "peer.parquet", 0, args.pool)}
        candidate_urls = runs["peer"]["candidate_urls"]
        runs["spilled"] = measure("new", dump, Path(tmp) / "spilled.parquet", LinkConfig().memory_rows, args.pool)
        runs["bounded"] = measure("new", dump, Path(tmp) / "bounded.parquet", max(1, args.submissions // 10), args.pool)
    peer = runs["peer"]
    candidates = peer["stats"]["kept_submissions"] + peer["stats"]["dropped"]["below_min_karma"]
    print(
        f"candidate URLs: {candidate_urls:,}; candidate submissions: {candidates:,}; "
        f"kept links: {peer['stats']['kept']:,}"
    )
    print(
        f"{'run':8} {'subs/s':>9} {'x peer':>7} {'peak MiB':>9} {'above base':>10} {'B/cand.URL':>10} "
        f"{'x peer':>7}  same bytes, same stats"
    )
    for name, run in runs.items():
        rate = run["stats"]["submissions"] / run["seconds"]
        above = (run["peak_kib"] - run["baseline_kib"]) * 1024
        print(
            f"{name:8} {rate:9,.0f} {rate / (peer['stats']['submissions'] / peer['seconds']):7.2f} "
            f"{run['peak_kib'] / 1024:9.0f} {above / 2**20:10.0f} {above / candidate_urls:10.0f} "
            f"{above / ((peer['peak_kib'] - peer['baseline_kib']) * 1024):7.2f}  "
            f"{run['sha256'] == peer['sha256']}, "
            f"{ {**run['stats'], 'elapsed_s': 0} == {**peer['stats'], 'elapsed_s': 0} }"
        )


if __name__ == "__main__":
    main()

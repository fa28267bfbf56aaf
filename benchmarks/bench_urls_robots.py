"""Throughput of canonicalize_url (the links stage calls it once per submission) and of the robots.txt decision,
each against a standard-library peer measured in the same run:

    canonicalize_url   vs  urllib.parse.urlsplit + urlunsplit (a bare split and join: no normalization at all)
    RobotsRules        vs  urllib.robotparser (what corpus.fetch used before RFC 9309), parse and can_fetch

URLs are Reddit-like: 95 % plain ASCII (many with www., tracking parameters, trailing slashes), 5 % with a non-ASCII
host or path. The robots.txt has 40 groups of 25 rules with wildcards, like a big site's.

    .venv/bin/python benchmarks/bench_urls_robots.py            # a few seconds
    .venv/bin/python benchmarks/bench_urls_robots.py --urls 500000
"""

from __future__ import annotations

import argparse
import random
import time
import urllib.robotparser
from urllib.parse import urlsplit, urlunsplit

from corpus.robots import RobotsRules
from corpus.urls import canonicalize_url

UA = "WebTextBot/0.1 (research crawler)"


def make_urls(count: int, rng: random.Random) -> list[str]:
    urls = []
    for i in range(count):
        host = rng.choice(["www.", ""]) + f"site{rng.randrange(5000)}.com"
        if rng.random() < 0.05:
            host = rng.choice(["münchen.de", "faß.de", "例え.jp"])
            path = f"/résumé/{i}"
        else:
            path = f"/news/{rng.randrange(10**6)}/story-{i}" + rng.choice(["", "/", ".html"])
        query = rng.choice(["", "?utm_source=reddit", f"?id={i}&b=2", f"?id={i}&fbclid=abc"])
        urls.append(f"{rng.choice(['http', 'https'])}://{host}{path}{query}")
    return urls


def make_robots(rng: random.Random) -> str:
    groups = []
    for g in range(40):
        agent = "*" if g == 39 else f"Bot{g}"
        rules = [
            f"{rng.choice(['Allow', 'Disallow'])}: /{rng.choice(['a', 'b', 'c'])}{r}/{rng.choice(['', '*', '*.php$'])}"
            for r in range(25)
        ]
        groups.append(f"User-agent: {agent}\n" + "\n".join(rules))
    return "\n\n".join(groups) + "\n"


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:12,.0f}/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    urls = make_urls(args.urls, rng)

    start = time.perf_counter()
    for url in urls:
        urlunsplit(urlsplit(url))
    peer_s = time.perf_counter() - start
    start = time.perf_counter()
    for url in urls:
        canonicalize_url(url)
    ours_s = time.perf_counter() - start
    print(
        f"canonicalize_url        {rate(len(urls), ours_s)}  peer urlsplit+urlunsplit {rate(len(urls), peer_s)}"
        f"  ratio {peer_s / ours_s:.2f}x of peer"
    )

    robots = make_robots(rng)
    paths = [urlsplit(url)._replace(netloc="site.test").geturl() for url in urls[:20_000]]
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        peer = urllib.robotparser.RobotFileParser()
        peer.parse(robots.splitlines())
    peer_parse_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        rules = RobotsRules.parse(robots.encode(), UA)
    ours_parse_s = time.perf_counter() - start
    print(
        f"robots.txt parse ({len(robots) // 1024} KiB) {rate(repeats, ours_parse_s)}  peer urllib.robotparser "
        f"{rate(repeats, peer_parse_s)}  ratio {peer_parse_s / ours_parse_s:.2f}x of peer"
    )
    start = time.perf_counter()
    for url in paths:
        peer.can_fetch(UA, url)
    peer_s = time.perf_counter() - start
    start = time.perf_counter()
    for url in paths:
        rules.allowed(url)
    ours_s = time.perf_counter() - start
    print(
        f"robots decision         {rate(len(paths), ours_s)}  peer urllib.robotparser {rate(len(paths), peer_s)}"
        f"  ratio {peer_s / ours_s:.2f}x of peer"
    )


if __name__ == "__main__":
    main()

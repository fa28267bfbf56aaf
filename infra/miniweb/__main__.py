"""`python -m infra.miniweb [--out DIR] [--seed N] [--articles N | --small] [--serve [--port P]]`

Generates the mini web (or reuses the one in DIR when it has the same seed and size), prints where its dump and
ground truth are, and with --serve runs its HTTP server in the foreground until Ctrl-C, printing the `connect_to`
mapping to give the fetcher (`webtext/build-corpus --param connect_to=...`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infra.env import REPO
from infra.miniweb import DEFAULT_ARTICLES, DEFAULT_SEED, SMALL_ARTICLES, build_miniweb, serve_miniweb
from infra.miniweb.server import wait_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.miniweb", description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "demo" / "miniweb")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--articles", type=int, default=DEFAULT_ARTICLES)
    size.add_argument("--small", action="store_const", const=SMALL_ARTICLES, dest="articles")
    parser.add_argument("--serve", action="store_true", help="run the HTTP server until Ctrl-C")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)
    try:
        web = build_miniweb(args.seed, args.articles, args.out)
    except ValueError as exc:
        parser.error(str(exc))
    counts = web.expectations()["counts"]
    print(
        f"mini web in {web.root} (seed {web.seed}, {web.n_articles} articles; "
        f"{counts['submissions']} submissions, {counts['links_kept']} links to keep, "
        f"{counts['documents']} documents expected in the corpus)"
    )
    print("dumps:", " ".join(str(d) for d in web.dumps))
    print("ground truth:", web.expectations_path)
    if args.serve:
        server = serve_miniweb(web, args.host, args.port)
        print(f"serving on {server.url}; connect_to:")
        print(json.dumps(server.connect_to))
        print("Ctrl-C stops it.", flush=True)
        wait_forever(server)


if __name__ == "__main__":
    main()

"""Fetcher throughput and politeness against a local HTTP server (in its own process).

1. Pages/s at concurrency 64 over many host names (routed to the server with connect_to), for corpus.fetch (with
   robots.txt, charset detection, WARC archive and log) and for the peer: a plain httpx.AsyncClient gather loop
   with a semaphore of 64 that only downloads the same pages. Same server, same run.
2. Politeness: the smallest interval the server observed between two requests to one host, against min_delay_s.

    .venv/bin/python benchmarks/bench_fetch.py                 # 2,000 pages over 200 hosts (about a minute)
    .venv/bin/python benchmarks/bench_fetch.py --pages 20000 --hosts 2000

3. `--parts`: the build's fetch stage in parts (corpus.fetch_parts: links split by host, each part one fetch_urls run
   in its own process, as on Dask workers) with 2 parts against 1, same links, same per-part concurrency, against the
   server delaying every response by `--page-delay` seconds: pages/s of each and the ratio.

    .venv/bin/python benchmarks/bench_fetch.py --parts --pages 4000 --hosts 400 --page-delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus.fetch import FetchConfig, fetch_urls  # noqa: E402

PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>bench</title></head><body>"
    + "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit. </p>" * 300
    + "</body></html>"
).encode()


def serve(port_queue: mp.Queue, stop: mp.Event, log_queue: mp.Queue, delay: float = 0.0) -> None:
    """A minimal keep-alive HTTP/1.1 server: robots.txt is 404, every other path the same ~19 KB page, each answered
    `delay` seconds after its request (a slow site)."""
    arrivals: list[tuple[float, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                host = next(
                    (line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("host:")), ""
                )
                arrivals.append((time.monotonic(), host.split(":")[0]))
                if delay:
                    await asyncio.sleep(delay)
                status, body = (b"404 Not Found", b"") if path == "/robots.txt" else (b"200 OK", PAGE)
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()
        log_queue.put(arrivals)

    asyncio.run(main())


async def peer(urls: list[str], port: int, concurrency: int) -> int:
    """The plain way: one AsyncClient, gather with a semaphore, bodies read; no robots, archive or log."""
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def get(url: str) -> int:
            parsed = httpx.URL(url)
            async with semaphore:
                response = await client.get(
                    f"http://127.0.0.1:{port}{parsed.raw_path.decode()}", headers={"Host": parsed.host}
                )
                return len(response.content)

        sizes = await asyncio.gather(*(get(url) for url in urls))
    return sum(1 for size in sizes if size == len(PAGE))


@contextmanager
def served(ctx: Any, page_delay: float = 0.0) -> Iterator[tuple[Any, int, Path, list]]:
    """The test server in its own process and a scratch folder: (process, port, folder, arrivals); `arrivals` is
    filled with the server's (time, host) log when the block ends, for the politeness check."""
    port_queue, log_queue, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve, args=(port_queue, stop, log_queue, page_delay), daemon=True)
    server.start()
    port = port_queue.get(timeout=30)
    scratch = Path(__file__).resolve().parents[1] / ".tmp"
    work = Path(tempfile.mkdtemp(prefix="bench_fetch_", dir=scratch if scratch.is_dir() else None))
    arrivals: list = []
    try:
        yield server, port, work, arrivals
    finally:
        stop.set()
        arrivals += log_queue.get(timeout=30)
        server.join(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _fetch_part(fetch_dir: Path, k: int, config: FetchConfig) -> dict:
    from corpus.fetch_parts import fetch_part

    return fetch_part(fetch_dir, k, config)


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children (the pool's fetch processes once the pool is shut down)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parts_scale(args: argparse.Namespace) -> None:
    """2 parts in 2 processes against 1 part, same links and per-part concurrency, a server that delays each page."""
    from concurrent.futures import ProcessPoolExecutor

    import psutil
    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus.fetch_parts import plan

    ctx = mp.get_context("spawn")
    with served(ctx, args.page_delay) as (server, port, work, _):
        urls = [f"http://h{i % args.hosts}.bench.test/page/{i}" for i in range(args.pages)]
        links = {"url": urls, "original_urls": [[u] for u in urls], "karma": [3] * len(urls)}
        links |= {"subreddits": [["news"]] * len(urls), "title": urls, "first_created_utc": [0] * len(urls)}
        pq.write_table(pa.table(links), work / "links.parquet")
        config = FetchConfig(
            concurrency=args.concurrency,
            per_host=2,
            min_delay_s=0.0,
            progress_interval_s=3600,
            connect_to={"*.bench.test": f"127.0.0.1:{port}"},
        )
        rates = {}
        for parts in (1, 2):
            fetch_dir = work / f"parts{parts}"
            plan(work / "links.parquet", fetch_dir, parts)
            server_cpu = sum(psutil.Process(server.pid).cpu_times()[:2])
            start, cpu = time.perf_counter(), _children_cpu_s()
            with ProcessPoolExecutor(max_workers=parts, mp_context=ctx) as pool:
                outcomes = list(pool.map(_fetch_part, [fetch_dir] * parts, range(parts), [config] * parts))
            seconds, cpu = time.perf_counter() - start, _children_cpu_s() - cpu
            server_cpu = sum(psutil.Process(server.pid).cpu_times()[:2]) - server_cpu
            ok = sum(o.get("ok", 0) for o in outcomes)
            rates[parts] = ok / seconds
            print(
                f"  {parts} part(s) in {parts} process(es): {ok} ok of {args.pages} in {seconds:.2f} s = "
                f"{rates[parts]:.1f} pages/s (concurrency {args.concurrency} per part, page delay "
                f"{args.page_delay * 1000:.0f} ms, {args.hosts} hosts); fetcher CPU {cpu:.1f} s "
                f"({cpu / seconds:.2f} cores busy on average), server CPU {server_cpu:.1f} s"
            )
        print(f"  scale, 2 parts against 1: {rates[2] / rates[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.2, help="min_delay_s for the politeness check")
    parser.add_argument("--parts", action="store_true", help="fetch in 2 parts against 1 (see 3. above)")
    parser.add_argument("--page-delay", type=float, default=0.05, help="seconds the server waits before each page")
    args = parser.parse_args()
    if args.parts:
        parts_scale(args)
        return

    with served(mp.get_context("spawn")) as (_, port, work, arrivals):
        connect_to = {"*.bench.test": f"127.0.0.1:{port}"}
        urls = [f"http://h{i % args.hosts}.bench.test/page/{i}" for i in range(args.pages)]
        config = FetchConfig(
            concurrency=args.concurrency, per_host=2, min_delay_s=0.0, connect_to=connect_to, progress_interval_s=3600
        )

        start = time.perf_counter()
        ok_peer = asyncio.run(peer(urls, port, args.concurrency))
        peer_s = time.perf_counter() - start

        start = time.perf_counter()
        summary = fetch_urls(urls, work / "run", config)
        ours_s = time.perf_counter() - start

        start = time.perf_counter()
        bare = fetch_urls(urls, work / "bare", FetchConfig(**{**config.__dict__, "obey_robots": False}))
        bare_s = time.perf_counter() - start

        print(
            f"throughput: {args.pages} pages of {len(PAGE):,} bytes over {args.hosts} hosts, "
            f"concurrency {args.concurrency}"
        )
        print(f"  peer httpx gather loop : {args.pages / peer_s:8.1f} pages/s  ({ok_peer} ok, {peer_s:.2f} s)")
        print(
            f"  corpus.fetch           : {args.pages / ours_s:8.1f} pages/s  ({summary.outcomes.get('ok', 0)} ok, "
            f"{ours_s:.2f} s; robots.txt + WARC + log)  ratio {peer_s / ours_s:.2f}x of peer"
        )
        print(
            f"  corpus.fetch, no robots: {args.pages / bare_s:8.1f} pages/s  ({bare.outcomes.get('ok', 0)} ok, "
            f"{bare_s:.2f} s)  ratio {peer_s / bare_s:.2f}x of peer"
        )

        polite_urls = [f"http://polite.bench.test/p/{i}" for i in range(20)]
        polite = FetchConfig(concurrency=args.concurrency, per_host=2, min_delay_s=args.delay, connect_to=connect_to)
        start = time.perf_counter()
        fetch_urls(polite_urls, work / "polite", polite)
        polite_s = time.perf_counter() - start

    times = sorted(t for t, host in arrivals if host == "polite.bench.test")
    gaps = [b - a for a, b in zip(times, times[1:])]
    print(f"politeness: {len(times)} requests to one host (robots.txt + 20 pages) in {polite_s:.2f} s, per_host=2")
    print(
        f"  smallest interval observed at the server: {min(gaps):.3f} s; configured min_delay_s {args.delay:.3f} s "
        f"(ratio {min(gaps) / args.delay:.2f})"
    )


if __name__ == "__main__":
    main()

"""Peak memory and time of a whole corpus build (WARC -> extract -> filter -> dedup -> Wikipedia removal -> shards) on
generated pages, at several corpus sizes, in two modes.

1. Library level (default): `corpus.build.build_from_warcs` in one process per size, no Prefect. Printed: wall time,
   docs/s, peak RSS of the build process, the stage it peaked in, how much the dedup stage alone raised RSS per
   document, the peak RSS of the largest extraction worker, and the growth of the peak per document between sizes.
   Measured on the otherwise idle 2-core machine with the build's dedup in parts: 10k documents 412 MiB peak (in the
   shards stage), 100k documents 559 MiB (in the dedup stage), 341 and 362 docs/s. With the in-memory index before
   it: 379 and 801 MiB. `bench_dedup.py --rss` measures the dedup stage alone up to 1M.

    .venv/bin/python benchmarks/bench_build.py [--docs 1000 3000] [--large]   # --large: 10k and 100k (~8 min)

2. `--flow`: the `webtext` flow as users run it (Prefect server of our own on a free loopback port, the flow's local
   Dask cluster), each size built once per worker count into a fresh out_dir, from the same WARC file. A thread
   samples the RSS of every process of the flow process's tree at 10 Hz; printed: the peak of the flow process (it
   also holds the local cluster's scheduler and nannies), of each Dask worker, of the largest extraction child (forked
   from its worker, so its RSS counts pages it shares with it) and of the whole tree at one instant; the speed-up of
   each worker count against the first; where the time went (every task's span and busy time, read back from the
   Prefect API); the Dask workers' RSS at the start of each step and their peak while it ran; the sha256 of every
   file under shards/ (builds that differ exit 1); the peak growth between sizes.

    .venv/bin/python benchmarks/bench_build.py --flow          # 10k and 100k on 1 and 2 workers (~25-30 min)
    .venv/bin/python benchmarks/bench_build.py --flow --docs 2000   # under 2 minutes
    .venv/bin/python benchmarks/bench_build.py --flow --docs 10000 --workers 1,2 --param pages_per_part=1024
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import resource
import shutil
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


# ---- flow mode: the `webtext` flow as users run it, against a Prefect server of our own ----


class TreeSampler(threading.Thread):
    """RSS of a process and of every descendant every `interval` s: each process's peak and the peak of their sum."""

    def __init__(self, root_pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.interval = interval
        # Keyed by (process, role): a process is its pid and start time, so a reused pid is another process; a fork
        # seen before it executes its program (a Dask worker a moment after its start) is "other" until then.
        self.peaks: dict[tuple[psutil.Process, str], int] = {}
        self.roles: dict[psutil.Process, str] = {}
        self.seen: dict[tuple[psutil.Process, str], tuple[int, str]] = {}  # parent pid and command
        self.cpu: dict[psutil.Process, float] = {}  # CPU seconds of each process when last seen
        self.total_peak = 0
        self.worker_samples: list[tuple[float, int, int]] = []  # (epoch s, pid, RSS): which step each peak is in
        self.cpu_s = 0.0  # this thread's own CPU time: the measurement's cost to the build
        self.stop = threading.Event()

    def role(self, proc: psutil.Process) -> str:
        if proc in self.roles:
            return self.roles[proc]
        command = " ".join(proc.cmdline())
        if proc == self.root:
            role = "flow"  # the flow run, and the local cluster's scheduler and nannies (threads of it)
        elif "resource_tracker" in command or "forkserver" in command:
            role = "helper"
        else:
            parent = proc.parent()
            parent_role = self.role(parent) if parent is not None else "other"
            if parent_role == "flow" and "spawn_main" in command:
                role = "worker"
            else:
                role = "extraction" if parent_role == "worker" else "other"
        if role != "other":  # "other" is asked again: it may yet execute a worker
            self.roles[proc] = role
        self.seen.setdefault((proc, role), (proc.ppid(), command[-80:]))
        return role

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    self.cpu[proc] = sum(proc.cpu_times()[:2])
                    key = (proc, self.role(proc))
                except psutil.Error:  # ended between the listing and the reading
                    continue
                self.peaks[key] = max(self.peaks.get(key, 0), rss)
                if key[1] == "worker":
                    self.worker_samples.append((time.time(), proc.pid, rss))
                total += rss
            self.total_peak = max(self.total_peak, total)
            self.stop.wait(self.interval)
        self.cpu_s = time.thread_time()

    def worker_peaks(self, stages: dict[str, dict[str, float]]) -> dict[str, tuple[int, int]]:
        """(RSS of the largest worker when the step began, the workers' peak RSS while it ran) per step; steps of a
        stage may overlap, so a peak can count in two of them."""
        out = {}
        for name, s in stages.items():
            inside = [rss for t, _, rss in self.worker_samples if s["start"] <= t <= s["end"]] or [0]  # 0: no sample
            before = [rss for t, _, rss in self.worker_samples if t <= s["start"]][-8:] or [0]  # last sample of each
            out[name] = (max(before), max(inside))
        return out

    def processes(self) -> list[dict]:
        """Role, pid, parent pid, peak RSS and command of each process seen, in the order they started."""
        return [
            {"role": role, "pid": p.pid, "ppid": self.seen[p, role][0], "peak": peak, "cmd": self.seen[p, role][1]}
            for (p, role), peak in sorted(
                self.peaks.items(), key=lambda item: (item[0][0].create_time(), item[0][0].pid)
            )
        ]


def timeline(api_url: str, flow_run_id: str, launched: float, ended: float) -> tuple[dict, dict]:
    """Where one build's time went, from the Prefect API: (phases, stages). Phases split the flow process's life
    (`launched` to `ended`, epoch seconds); stages are per task name (a stage, or a step of one) in the run's subflows:
    tasks, span from the first start to the last end, and the sum of the tasks' run times."""
    from datetime import datetime

    from infra.server import api_request

    def epoch(run: dict, key: str) -> float:
        return datetime.fromisoformat(run[key]).timestamp()

    root = api_request(api_url, "GET", f"flow_runs/{flow_run_id}")
    subflows, frontier = [], [flow_run_id]
    while frontier:
        body = {"flow_runs": {"parent_flow_run_id": {"any_": frontier}}, "limit": 200}
        found = api_request(api_url, "POST", "flow_runs/filter", body)
        subflows += found
        frontier = [run["id"] for run in found]
    runs: list[dict] = []
    while True:  # the API returns at most 200 a call
        body = {"task_runs": {"flow_run_id": {"any_": [flow_run_id, *(r["id"] for r in subflows)]}}, "limit": 200}
        page = api_request(api_url, "POST", "task_runs/filter", {**body, "offset": len(runs)})
        runs += page
        if len(page) < 200:
            break
    wrappers = {run["parent_task_run_id"] for run in subflows}  # the task run standing for a subflow in its parent
    tasks = sorted(
        (epoch(run, "start_time"), epoch(run, "end_time"), run["name"].rsplit("-", 1)[0], run["total_run_time"])
        for run in runs
        if run["id"] not in wrappers and run["start_time"] and run["end_time"]
    )
    stages: dict[str, dict[str, float]] = {}
    covered_until = tasks[0][0]
    for start, end, name, busy in tasks:
        if name not in stages:  # no task of any kind ran before it began: the driver's own steps, Dask start-up
            stages[name] = {"tasks": 0, "start": start, "end": end, "busy": 0.0, "idle_in": 0.0}
            stages[name]["idle_before"] = max(0.0, start - covered_until)
        else:  # no task ran between two of its own: scheduling overhead, or a step of the stage
            stages[name]["idle_in"] += max(0.0, start - covered_until)
        stage = stages[name]
        stage["tasks"] += 1
        stage["end"] = max(stage["end"], end)
        stage["busy"] += busy
        covered_until = max(covered_until, end)
    for stage in stages.values():
        stage["span"] = stage["end"] - stage["start"]
    called = [epoch(run, "start_time") for run in runs if run["id"] in wrappers and run["start_time"]]
    sub_start = min([epoch(run, "start_time") for run in subflows] + called, default=epoch(root, "start_time"))
    idle = sum(s["idle_before"] + s["idle_in"] for s in stages.values())
    phases = {
        "process start-up (imports, flow run created)": epoch(root, "start_time") - launched,
        "flow run before its subflow (inputs, lock)": sub_start - epoch(root, "start_time"),
        "subflow start to its first task (Dask cluster start-up)": tasks[0][0] - sub_start,
        "some task running": covered_until - tasks[0][0] - idle,
        "no task running, between the first and last (driver steps)": idle,
        "after the last task (cluster shut-down, artifacts, exit)": ended - covered_until,
    }
    return phases, stages


def peaks_by_role(processes: list[dict]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for proc in processes:
        out.setdefault(proc["role"], []).append(proc["peak"])
    return out


def shard_hashes(shards: Path) -> dict[str, str]:
    return {
        str(p.relative_to(shards)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(shards.rglob("*"))
        if p.is_file()
    }


def flow_child(params: dict, result_path: Path) -> None:
    """The flow process: run the flow, write its run's id and state where the parent reads them."""
    from flows.webtext import webtext

    state = webtext(**params, return_state=True)
    result_path.write_text(
        json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.name, "message": state.message})
    )


def tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of a process and its descendants (`prefect server start` runs uvicorn in a child)."""
    return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])


def run_flow(env: dict[str, str], server: psutil.Process, warc: Path, out: Path, n_workers: int, extra: dict) -> dict:
    """One build through the flow in a fresh process, its process tree sampled; returns the figures."""
    from infra.server import log_tail

    params = {"warc_inputs": [str(warc)], "out_dir": str(out), "n_workers": n_workers, **extra}
    result_path, log_path = out.with_suffix(".result.json"), out.with_suffix(".log")
    with open(log_path, "wb") as log:
        start, launched, server_cpu = time.perf_counter(), time.time(), tree_cpu(server)
        child = subprocess.Popen(
            [sys.executable, __file__, "--flow-child", json.dumps(params), "--result", str(result_path)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = TreeSampler(child.pid)
        sampler.start()
        child.wait()
        wall, ended = time.perf_counter() - start, time.time()
        server_cpu = tree_cpu(server) - server_cpu
    sampler.stop.set()
    sampler.join()
    if child.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"the flow process exited {child.returncode}; end of {log_path}:\n{log_tail(log_path)}")
    result = json.loads(result_path.read_text())
    if result["state"] != "Completed":
        raise RuntimeError(f"the flow run ended {result['state']}: {result['message']}\n{log_tail(log_path)}")
    manifest = json.loads((out / "manifest.json").read_text())
    phases, stages = timeline(env["PREFECT_API_URL"], result["flow_run_id"], launched, ended)
    return {
        "wall_s": wall,
        "kept": manifest["totals"]["documents"],
        "processes": sampler.processes(),
        "total_peak": sampler.total_peak,
        "tree_cpu_s": sum(sampler.cpu.values()),
        "server_cpu_s": server_cpu,
        "load": psutil.getloadavg()[0],
        "sampler_cpu_s": sampler.cpu_s,
        "phases": phases,
        "stages": stages,
        "worker_steps": sampler.worker_peaks(stages),
        "hashes": shard_hashes(out / "shards"),
    }


def flow_mode(sizes: list[int], workers: list[int], extra: dict) -> int:
    from infra.processes import stop_tree
    from infra.server import start_private_server

    mib = 2**20
    failed = False
    with tempfile.TemporaryDirectory(dir=REPO / ".tmp" if (REPO / ".tmp").is_dir() else None) as tmp:
        work = Path(tmp)
        server, env = start_private_server(work / "prefect-home")
        try:
            print(
                f"{'docs':>8s} {'workers':>7s} {'kept':>7s} {'wall s':>7s} {'docs/s':>7s} {'flow MiB':>9s} "
                f"{'each worker MiB':>16s} {'extraction MiB':>15s} {'total MiB':>10s}  (peak RSS of each process)"
            )
            results: dict[tuple[int, int], dict] = {}
            for n in sizes:
                warc = work / f"pages-{n}.warc.gz"
                write_warc(warc, n)
                for w in workers:
                    out = work / f"out-{n}-{w}"
                    r = results[n, w] = run_flow(env, psutil.Process(server.pid), warc, out, w, extra)
                    shutil.rmtree(out)  # its shards' hashes are kept; the disk is not
                    p = peaks_by_role(r["processes"])
                    each = "/".join(f"{v / mib:.0f}" for v in p.get("worker", []))
                    extraction = max(p.get("extraction", [0])) / mib
                    print(
                        f"{n:8d} {w:7d} {r['kept']:7d} {r['wall_s']:7.1f} {n / r['wall_s']:7.1f} "
                        f"{max(p['flow']) / mib:9.0f} {each:>16s} {extraction:15.0f} {r['total_peak'] / mib:10.0f}"
                    )
                warc.unlink()
            print()
            failed = report_flow(results, sizes, workers)
        finally:
            stop_tree(server.pid)
            server.wait(timeout=10)
    return 1 if failed else 0


def report_flow(results: dict[tuple[int, int], dict], sizes: list[int], workers: list[int]) -> bool:
    """Where the time went, the scaling and the memory growth; True when two builds' shards differ."""
    mib = 2**20
    for (n, w), r in results.items():
        print(
            f"{n} docs, {w} worker(s): {r['wall_s']:.1f} s; CPU of the tree {r['tree_cpu_s']:.0f} s "
            f"({r['tree_cpu_s'] / r['wall_s']:.2f} cores busy on average), of the Prefect server "
            f"{r['server_cpu_s']:.0f} s, of the sampler {r['sampler_cpu_s']:.1f} s; machine load average at the end "
            f"{r['load']:.1f}"
        )
        for proc in r["processes"]:
            print(
                f"    {proc['role']:10s} pid {proc['pid']:7d} (parent {proc['ppid']:7d}) {proc['peak'] / mib:6.0f} MiB  "
                f"{proc['cmd']}"
            )
        for phase, seconds in r["phases"].items():
            print(f"    {seconds:7.1f} s  {phase}")
        for name, s in r["stages"].items():
            print(
                f"    {name:16s} {s['tasks']:5.0f} tasks  span {s['span']:7.1f} s  busy {s['busy']:7.1f} task-s  "
                f"({s['busy'] / max(s['span'], 1e-9):.2f} running on average); no task running: "
                f"{s['idle_before']:.1f} s before it, {s['idle_in']:.1f} s in it"
            )
        print("    Dask workers' RSS per step (MiB): at its start, peak while it ran")
        for name, (at_start, peak) in r["worker_steps"].items():
            print(f"    {name:16s} {at_start / mib:6.0f} {f'{peak / mib:.0f}' if peak else '-':>6}")  # -: under 0.1 s
    failed = False
    for n in sizes:
        hashes = {w: results[n, w]["hashes"] for w in workers}
        base = hashes[workers[0]]
        same = all(h == base for h in hashes.values())
        print(
            f"\n{n} docs: shards/ files, sha256 ({'identical in' if same else 'DIFFER between'} the builds on "
            f"{', '.join(map(str, workers))} worker(s)):"
        )
        for name in sorted(set().union(*hashes.values())):
            values = {hashes[w].get(name, "missing") for w in workers}
            print(
                f"    {name:40s} "
                + (" | ".join(hashes[w].get(name, "missing") for w in workers) if len(values) > 1 else base[name])
            )
        failed |= not same
        for w in workers[1:]:
            ratio = results[n, workers[0]]["wall_s"] / results[n, w]["wall_s"]
            print(f"  speed-up, {w} workers against {workers[0]}: {ratio:.2f}x")
    for a, b in zip(sizes, sizes[1:]):
        for w in workers:
            pa, pb = (peaks_by_role(results[n, w]["processes"]) for n in (a, b))
            growth = ", ".join(
                f"{role} {max(pb[role]) / max(pa[role]) - 1:+.0%}"
                for role in ("flow", "worker", "extraction")
                if role in pa and role in pb
            )
            total = results[b, w]["total_peak"] / results[a, w]["total_peak"] - 1
            print(
                f"peak RSS growth {a:,} -> {b:,} documents on {w} worker(s): {growth}, total {total:+.0%} "
                f"({results[a, w]['total_peak'] / mib:.0f} -> {results[b, w]['total_peak'] / mib:.0f} MiB)"
            )
    if failed:
        print("error: the builds' shards differ", file=sys.stderr)
    return failed


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=_sizes, nargs="*", help="sizes, e.g. 1000 3000 or 1000,3000")
    parser.add_argument(
        "--large", action="store_true", help="library mode at 10k and 100k documents (100k: about 7 minutes on 2 cores)"
    )
    parser.add_argument("--flow", action="store_true", help="run the webtext flow (see 2. above)")
    parser.add_argument("--workers", type=_sizes, default=[1, 2], help="flow mode: Dask workers, e.g. 1,2")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=JSON", help="flow mode: another flow parameter"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--flow-child", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [n for group in args.docs for n in group] if args.docs else None
    if args.child:
        child(args.child, args.workdir)
        return
    if args.flow_child:
        flow_child(json.loads(args.flow_child), args.result)
        return
    if args.flow:
        extra = {name: json.loads(value) for name, value in (item.split("=", 1) for item in args.param)}
        sys.exit(flow_mode(sizes or [10_000, 100_000], args.workers, extra))
    library_mode([10_000, 100_000] if args.large else sizes or [500, 2000])


def library_mode(sizes: list[int]) -> None:
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

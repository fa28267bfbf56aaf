"""A standing Dask cluster on this machine for the corpus stages: `python -m infra.dask up|down` (`make dask`).

Starts `dask scheduler` on loopback (a free port; always loopback: Dask's protocol has no password, and anyone who
reaches a scheduler runs code on its workers) and `dask worker` processes (one thread each, non-daemonic:
extraction runs each page in a child process), records them by PID file beside the stack's (`make down` stops them
too) and prints the address to pass as `--param dask_address=...` to `webtext/build-corpus`. Without it the corpus
flow starts a throw-away local cluster per run; for several machines see the README's production path.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infra.env import REPO, service_env
from infra.processes import read_pid_file, spawn, stop_pid_file, write_pid_file
from infra.server import free_port, log_tail
from infra.services import Stack

START_TIMEOUT = 120.0
HOST = "127.0.0.1"  # never WEBTEXT_HOST: a cluster across machines needs Dask's TLS (see the README)


def address_file(stack: Stack) -> Path:
    return stack.home / "run" / "dask-address"


def wait_workers(address: str, n_workers: int, timeout: float) -> None:
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(n_workers, timeout=timeout)


def up(stack: Stack, n_workers: int) -> str:
    """Start the scheduler and `n_workers` worker processes unless they run; return the scheduler's address."""
    if read_pid_file(stack.pid_file("dask-scheduler")) is not None:
        address = address_file(stack).read_text().strip()
        print(f"dask cluster already running at {address}")
        return address
    env = service_env(stack.home, stack.host, stack.port)
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"  # workers must be allowed child processes
    address = f"tcp://{HOST}:{free_port(HOST)}"
    scheduler_log, worker_log = stack.log_file("dask-scheduler"), stack.log_file("dask-worker")
    scheduler = spawn(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            HOST,
            "--port",
            address.rsplit(":", 1)[1],
            "--no-dashboard",
        ],
        env,
        scheduler_log,
        cwd=REPO,
    )
    write_pid_file(stack.pid_file("dask-scheduler"), scheduler.pid)
    workers = spawn(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nworkers",
            str(n_workers),
            "--nthreads",
            "1",
            "--no-dashboard",
            "--host",
            HOST,
            "--local-directory",
            str(stack.home / "tmp" / "dask"),
        ],
        env,
        worker_log,
        cwd=REPO,
    )
    write_pid_file(stack.pid_file("dask-worker"), workers.pid)
    address_file(stack).write_text(address)
    try:
        wait_workers(address, n_workers, START_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        down(stack)
        raise RuntimeError(
            f"the Dask cluster did not come up ({exc}); end of {worker_log}:\n{log_tail(worker_log)}"
        ) from None
    print(
        f"dask cluster: {address} ({n_workers} workers)\n"
        f"use it:       prefect deployment run webtext/build-corpus --param dask_address={address} ...\n"
        f"stop it:      make down (stops the whole stack) or python -m infra.dask down"
    )
    return address


def down(stack: Stack) -> None:
    for name in ("dask-worker", "dask-scheduler"):
        stopped = stop_pid_file(stack.pid_file(name))
        print(f"{name}: stopped pids {stopped}" if stopped else f"{name}: not running")
    address_file(stack).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.dask", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    args = parser.parse_args(argv)
    stack = Stack.from_env()
    try:
        if args.command == "up":
            up(stack, args.workers)
        else:
            down(stack)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

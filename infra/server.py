"""The Prefect server: start it on a loopback port (SQLite in PREFECT_HOME or WEBTEXT_DATABASE_URL), wait for health.

Used by `make up` (infra/services.py) and by the test fixtures (tests/prefect_fixtures.py), so both run the same code.
"""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import psutil

from infra.env import REPO
from infra.processes import spawn

PREFECT = [sys.executable, "-m", "prefect"]  # the CLI of the interpreter running us, wherever it is installed


class PortInUseError(RuntimeError):
    """The server's port is taken by another process."""


class ServerDownError(RuntimeError):
    """No Prefect server answers at the configured API URL."""


class ServerStartError(RuntimeError):
    """The server process exited or never became healthy."""


def port_holder(port: int) -> str:
    """Describe the process listening on `port` (PID and command line), as far as we may see it."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return "an unknown process"
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return f"pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline())[:200]})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return "an unknown process"


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError, naming the holder and what to do, when `host:port` cannot be bound."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"port {port} on {host} is already in use by {port_holder(port)}.\n"
                f"If that is a stack started earlier by `make up` or `make demo`, stop it with `make down`; otherwise "
                f"pick a free port, e.g. `WEBTEXT_PORT={port + 100} make up` (then `source infra/env.sh` again so "
                f"the prefect CLI follows)."
            ) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now (for tests: never a fixed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).json() is True
    except (httpx.HTTPError, ValueError):
        return False


def require_server(api_url: str) -> None:
    """Raise ServerDownError with instructions when no Prefect server answers at `api_url`."""
    if not is_healthy(api_url):
        raise ServerDownError(
            f"no Prefect server answers at {api_url}.\n"
            f"Start the local stack with `make up` (server + deployments, in the background), then "
            f"`source infra/env.sh` in your shell. If a server runs on another port, set WEBTEXT_PORT (or "
            f"PREFECT_API_URL) to match it."
        )


def start_server(env: Mapping[str, str], host: str, port: int, log_path: Path) -> subprocess.Popen:
    """Start `prefect server start` in the foreground of a new process group; `env` must carry PREFECT_HOME."""
    check_port_free(host, port)
    return spawn([*PREFECT, "server", "start", "--host", host, "--port", str(port), "--analytics-off"],
                 env, log_path, cwd=REPO)


def log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_healthy(api_url: str, process: subprocess.Popen | psutil.Process, log_path: Path,
                 timeout: float = 120.0) -> None:
    """Poll /api/health until it answers; fail early, with the log's tail, if the server process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(api_url):
            return
        exited = process.poll() is not None if isinstance(process, subprocess.Popen) else not process.is_running()
        if exited:
            raise ServerStartError(f"the Prefect server exited during start-up; end of {log_path}:\n"
                                   f"{log_tail(log_path)}")
        time.sleep(0.5)
    raise ServerStartError(f"the Prefect server at {api_url} was not healthy after {timeout:.0f} s; end of "
                           f"{log_path}:\n{log_tail(log_path)}")


def main() -> int:
    """`python -m infra.server`: exit 0 when the server at PREFECT_API_URL is healthy, else say what to do."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        print("error: PREFECT_API_URL is not set; run `source infra/env.sh` (the local stack) or point it at your "
              "server", file=sys.stderr)
        return 1
    try:
        require_server(url)
    except ServerDownError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

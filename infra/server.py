"""The Prefect server: start it (SQLite in PREFECT_HOME or WEBTEXT_DATABASE_URL), wait for health; talk to its API.

Beyond loopback it only starts with an auth string (infra/env.py says where it comes from).

Used by `make up` (infra/services.py), the test fixtures (tests/prefect_fixtures.py) and the benchmarks that run
flows, so all run the same code.
"""

from __future__ import annotations

import base64
import errno
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

from infra.env import (
    AUTH_FILE_NAME,
    CLIENT_AUTH,
    REPO,
    SERVER_AUTH,
    auth_file,
    is_loopback,
    server_settings,
    service_env,
)
from infra.processes import spawn, stop_tree

PREFECT = [sys.executable, "-m", "prefect"]  # the CLI of the interpreter running us, wherever it is installed


class PortInUseError(RuntimeError):
    """The server's port is taken by another process."""


class ServerDownError(RuntimeError):
    """No Prefect server answers at the configured API URL."""


class ServerStartError(RuntimeError):
    """The server process exited or never became healthy."""


class InsecureBindError(RuntimeError):
    """A server reachable from other machines was asked for without an auth string."""


class ServerAuthError(RuntimeError):
    """The server requires an auth string and refused the one we sent (or none)."""


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


def auth_headers(auth: str | None) -> dict[str, str]:
    """The Authorization header Prefect's clients send for `auth` (`user:password`), or none."""
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def auth_accepted(api_url: str, auth: str | None) -> bool:
    """Whether the server lets us in with `auth` (a server without an auth string lets everyone in)."""
    try:
        return httpx.get(f"{api_url}/admin/version", headers=auth_headers(auth), timeout=5.0).status_code != 401
    except httpx.HTTPError:
        return False


def require_server(api_url: str, auth: str | None = None) -> None:
    """Raise ServerDownError with instructions when no Prefect server answers at `api_url`, and ServerAuthError
    when it wants an auth string we do not have."""
    if not is_healthy(api_url):
        raise ServerDownError(
            f"no Prefect server answers at {api_url}.\n"
            f"Start the local stack with `make up` (server + deployments, in the background), then "
            f"`source infra/env.sh` in your shell. If a server runs on another port, set WEBTEXT_PORT (or "
            f"PREFECT_API_URL) to match it."
        )
    if not auth_accepted(api_url, auth):
        problem = "refused our auth string" if auth else "requires an auth string and we have none"
        raise ServerAuthError(
            f"the Prefect server at {api_url} {problem} ({CLIENT_AUTH}).\n"
            f"For the local stack, keep it in a file only you can read (`chmod 600`): .prefect/{AUTH_FILE_NAME} or the "
            f"file WEBTEXT_AUTH_FILE names, then `source infra/env.sh` again; for another server, "
            f'export {CLIENT_AUTH}="$(cat FILE)".'
        )


_csrf_clients: dict[str, tuple[str, str] | None] = {}  # api_url -> (client id, token), or None: no CSRF there


def _csrf_headers(api_url: str, auth: str | None) -> dict[str, str]:
    """Prefect's CSRF token for a state-changing request, when the server protects against CSRF."""
    if api_url not in _csrf_clients:
        client = str(uuid.uuid4())
        response = httpx.get(
            f"{api_url}/csrf-token", params={"client": client}, headers=auth_headers(auth), timeout=30.0
        )
        if response.status_code == 422 and "CSRF protection is disabled" in response.text:
            _csrf_clients[api_url] = None
        else:
            response.raise_for_status()
            _csrf_clients[api_url] = (client, response.json()["token"])  # valid for an hour: ample for one process
    pair = _csrf_clients[api_url]
    return {"Prefect-Csrf-Client": pair[0], "Prefect-Csrf-Token": pair[1]} if pair else {}


def api_request(api_url: str, method: str, path: str, body: Any = None, auth: str | None = None) -> Any:
    """Call the REST API (`path` relative to /api) as Prefect's clients do (auth string, CSRF token); decoded JSON."""
    headers = auth_headers(auth)
    if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
        headers.update(_csrf_headers(api_url, auth))
    response = httpx.request(method, f"{api_url}/{path.lstrip('/')}", json=body, headers=headers, timeout=30.0)
    response.raise_for_status()
    return response.json() if response.content else None


def check_bind_allowed(host: str, env: Mapping[str, str]) -> None:
    """Refuse a server other machines could reach unless it requires an auth string."""
    if not is_loopback(host) and not env.get(CLIENT_AUTH):
        path = shlex.quote(str(auth_file(Path(env["PREFECT_HOME"]), env)))
        raise InsecureBindError(
            f"refusing to start the Prefect server on {host}: other machines could reach it, and without an auth "
            f"string anyone who can would read every run and run code on the workers.\n"
            f"Set the API's auth string ({SERVER_AUTH} on the server, {CLIENT_AUTH} on clients; `user:password`) "
            f"without putting it in your shell history: write it to a file only you can read, which the stack "
            f"reads, e.g.\n"
            f"    (umask 077; read -rs -p 'user:password: ' s && printf '%s\\n' \"$s\" > {path})\n"
            f"({AUTH_FILE_NAME} in the stack's home is read by default; WEBTEXT_AUTH_FILE=PATH names another "
            f"file.) Or bind loopback only: unset WEBTEXT_HOST."
        )


def start_server(env: Mapping[str, str], host: str, port: int, log_path: Path) -> subprocess.Popen:
    """Start `prefect server start` in the foreground of a new process group; `env` must carry PREFECT_HOME, and
    PREFECT_API_AUTH_STRING (service_env's) when `host` is not loopback: the server is given it as its own."""
    check_bind_allowed(host, env)
    check_port_free(host, port)
    server_env = {**env, **server_settings(host, env.get(CLIENT_AUTH))}
    return spawn(
        [*PREFECT, "server", "start", "--host", host, "--port", str(port), "--analytics-off"],
        server_env,
        log_path,
        cwd=REPO,
    )


def log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_healthy(
    api_url: str, process: subprocess.Popen | psutil.Process, log_path: Path, timeout: float = 120.0
) -> None:
    """Poll /api/health until it answers; fail early, with the log's tail, if the server process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(api_url):
            return
        exited = process.poll() is not None if isinstance(process, subprocess.Popen) else not process.is_running()
        if exited:
            raise ServerStartError(
                f"the Prefect server exited during start-up; end of {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.5)
    raise ServerStartError(
        f"the Prefect server at {api_url} was not healthy after {timeout:.0f} s; end of "
        f"{log_path}:\n{log_tail(log_path)}"
    )


def start_private_server(
    home: Path, host: str = "127.0.0.1", timeout: float = 180.0
) -> tuple[subprocess.Popen, dict[str, str]]:
    """A server of our own on a free port of `host`, SQLite in `home`: (its process, the environment its clients and
    the flow runs they start need), once healthy. Stop it with `stop_tree(process.pid)`."""
    log_path = home / "server.log"
    for attempt in range(3):  # another process may grab the free port before the server binds it
        port = free_port(host)
        env = service_env(home, host, port)
        try:
            process = start_server(env, host, port, log_path)
        except PortInUseError:
            continue
        try:
            wait_healthy(env["PREFECT_API_URL"], process, log_path, timeout=timeout)
            return process, env
        except ServerStartError:
            stop_tree(process.pid)
            process.wait(timeout=10)
            if attempt == 2 or "already in use" not in log_tail(log_path).lower():
                raise
    raise PortInUseError("three free ports in a row were taken before the server could bind them")


def main() -> int:
    """`python -m infra.server`: exit 0 when the server at PREFECT_API_URL is healthy, else say what to do."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        print(
            "error: PREFECT_API_URL is not set; run `source infra/env.sh` (the local stack) or point it at your server",
            file=sys.stderr,
        )
        return 1
    try:
        require_server(url, os.environ.get(CLIENT_AUTH))
    except (ServerDownError, ServerAuthError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

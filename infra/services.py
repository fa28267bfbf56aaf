"""Start and stop the local stack in the background: `python -m infra.services up|down|status` (`make up` / `make down`).

`up` starts the Prefect server (SQLite under PREFECT_HOME, default .prefect/, or PostgreSQL by WEBTEXT_DATABASE_URL;
on WEBTEXT_HOST:WEBTEXT_PORT, default 127.0.0.1:4200) and the serve process of the deployments, records both by PID
file under PREFECT_HOME/run/, and returns once the server is healthy and the deployments are registered. Running it
again while the stack is up does nothing. Beyond loopback it refuses to start without an auth string
(WEBTEXT_AUTH_FILE, infra/env.py), which every process it starts then sends. `down` stops every process tree recorded
there (served flow runs included; other tools such as the demo may record theirs with `Stack.pid_file(name)` and
`infra.processes.write_pid_file`) and is safe to repeat.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

from infra.deployments import present_specs
from infra.env import (
    CLIENT_AUTH,
    REPO,
    SERVICE_MARK,
    api_url,
    auth_file,
    describe_database,
    service_env,
    stack_auth,
    stack_home,
    stack_host,
    stack_port,
)
from infra.processes import marked_processes, read_pid_file, spawn, stop_pid_file, stop_tree, tree, write_pid_file
from infra.server import (
    InsecureBindError,
    PortInUseError,
    ServerStartError,
    auth_accepted,
    auth_headers,
    is_healthy,
    log_tail,
    start_server,
    wait_healthy,
)

SERVER_TIMEOUT = 180.0
SERVE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Stack:
    home: Path
    host: str
    port: int

    @classmethod
    def from_env(cls) -> Stack:
        return cls(stack_home(), stack_host(), stack_port())

    @property
    def api_url(self) -> str:
        return api_url(self.host, self.port)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def auth(self) -> str | None:
        """The auth string every process of the stack sends (None: the server requires none)."""
        return stack_auth(self.home)

    def pid_file(self, name: str) -> Path:
        return self.home / "run" / f"{name}.pid"

    def other_pid_files(self) -> list[str]:
        """Names of the PID files besides the server's and the serve process's (e.g. the demo's)."""
        return sorted(p.stem for p in (self.home / "run").glob("*.pid") if p.stem not in ("serve", "server"))

    def log_file(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"


class StackError(RuntimeError):
    """`up` could not bring the stack up; the message says why and what to do."""


def _registered_since(api_url: str, full_name: str, since: datetime, auth: str | None) -> bool:
    """Whether deployment `full_name` was created or updated at or after `since` (rows from an earlier run of the
    same database do not count: the serve process just started must have registered it)."""
    try:
        response = httpx.get(f"{api_url}/deployments/name/{full_name}", headers=auth_headers(auth), timeout=5.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and datetime.fromisoformat(response.json()["updated"]) >= since


def wait_registered(
    api_url: str,
    names: list[str],
    process: subprocess.Popen,
    log_path: Path,
    timeout: float = SERVE_TIMEOUT,
    auth: str | None = None,
) -> None:
    """Wait until the serve `process` (just started) has registered every deployment in `names`."""
    since = datetime.fromtimestamp(psutil.Process(process.pid).create_time(), UTC) - timedelta(seconds=1)
    deadline = time.monotonic() + timeout
    while not all(_registered_since(api_url, name, since, auth) for name in names):
        if process.poll() is not None or time.monotonic() > deadline:
            why = (
                f"exited with code {process.returncode}"
                if process.returncode is not None
                else f"did not register {names} within {timeout:.0f} s"
            )
            raise StackError(f"`python -m infra.serve` {why}; end of {log_path}:\n{log_tail(log_path)}")
        time.sleep(0.5)


def _ensure_server(stack: Stack) -> None:
    pid_file, log_path = stack.pid_file("server"), stack.log_file("server")
    running = read_pid_file(pid_file)
    if running is not None:
        if is_healthy(stack.api_url):
            print(f"server already running (pid {running.pid}) at {stack.ui_url}")
            return
        raise StackError(
            f"a server started earlier from {stack.home} (pid {running.pid}) runs but does not answer "
            f"at {stack.api_url} (started on another port?). Run `make down` first."
        )
    env = service_env(stack.home, stack.host, stack.port)
    try:
        process = start_server(env, stack.host, stack.port, log_path)
    except (PortInUseError, InsecureBindError) as exc:
        raise StackError(str(exc)) from None
    write_pid_file(pid_file, process.pid)
    print(f"starting the Prefect server (pid {process.pid}, log {log_path}) ...", flush=True)
    try:
        wait_healthy(stack.api_url, process, log_path, timeout=SERVER_TIMEOUT)
    except ServerStartError as exc:
        stop_pid_file(pid_file)
        raise StackError(str(exc)) from None


def _ensure_serve(stack: Stack, names: list[str]) -> None:
    pid_file, log_path = stack.pid_file("serve"), stack.log_file("serve")
    running = read_pid_file(pid_file)
    if running is not None:
        print(f"deployments already served (pid {running.pid})")
        return
    env = service_env(stack.home, stack.host, stack.port)
    env["PREFECT_RUNNER_POLL_FREQUENCY"] = "2"  # pick scheduled runs up within ~2 s instead of ~10 s
    process = spawn([sys.executable, "-m", "infra.serve"], env, log_path, cwd=REPO)
    write_pid_file(pid_file, process.pid)
    print(f"serving the deployments (pid {process.pid}, log {log_path}) ...", flush=True)
    try:
        wait_registered(stack.api_url, names, process, log_path, auth=env.get(CLIENT_AUTH))
    except StackError as exc:
        stop_pid_file(pid_file)
        raise StackError(f"{exc}\n(the server is still up; `make down` stops it)") from None


def up(stack: Stack) -> None:
    names = [spec.full_name for spec in present_specs()]  # a bad WEBTEXT_DEPLOYMENTS fails before anything starts
    if not names:
        raise StackError("no flow module exists under flows/: there is nothing to serve")
    _ensure_server(stack)
    _ensure_serve(stack, names)
    print(
        f"\nPrefect UI:   {stack.ui_url}\nAPI:          {stack.api_url}\nDatabase:     {describe_database()}\n"
        f"Auth:         {describe_auth(stack)}\nDeployments:  {', '.join(names)}\n"
        f"Use the CLI:  source infra/env.sh && prefect deployment run webtext/build-corpus --param ... --watch\n"
        f"Stop it all:  make down"
    )


def survivors(stack: Stack) -> list[psutil.Process]:
    """Processes started by this stack's services (they carry its SERVICE_MARK) that no recorded process tree holds
    any more: e.g. children of a killed flow run, reparented to PID 1."""
    recorded: set[int] = set()
    for name in ("server", "serve", *stack.other_pid_files()):
        if (proc := read_pid_file(stack.pid_file(name))) is not None:
            recorded |= tree(proc)
    return [proc for proc in marked_processes(SERVICE_MARK, str(stack.home)) if proc.pid not in recorded]


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ({' '.join(proc.cmdline())[:120]})"
    except psutil.Error:
        return f"pid {proc.pid}"


def describe_auth(stack: Stack) -> str:
    """Whether the API requires an auth string, and which file holds it (never the string)."""
    if stack.auth is None:
        return f"none (loopback only; `user:password` in {auth_file(stack.home)} turns it on)"
    return f"required, the string is in {auth_file(stack.home)}"


def _auth_status(stack: Stack) -> str:
    """describe_auth, plus whether the running server agrees."""
    described, auth = describe_auth(stack), stack.auth
    if not is_healthy(stack.api_url):
        return described
    open_server = auth_accepted(stack.api_url, None)
    if auth is None:
        return described if open_server else f"{described}; but the running server requires one"
    if open_server:
        return f"{described}; but the running server does not require it (`make down && make up` to apply it)"
    if auth_accepted(stack.api_url, auth):
        return f"{described}; the server accepts it"
    return f"{described}; the server REFUSES it (`make down && make up` after changing the file)"


def down(stack: Stack) -> None:
    """Stop every process recorded under PREFECT_HOME/run/ (the demo may record its own there too), server last,
    and any survivor of a killed run."""
    for name in ("serve", *stack.other_pid_files()):
        stopped = stop_pid_file(stack.pid_file(name))
        print(f"{name}: stopped pids {stopped}" if stopped else f"{name}: not running")
    for proc in survivors(stack):
        print(f"survivor: stopping {_describe(proc)}")
        stop_tree(proc.pid)
    stopped = stop_pid_file(stack.pid_file("server"))  # the server last: the others report their ends to it
    print(f"server: stopped pids {stopped}" if stopped else "server: not running")


def status(stack: Stack) -> int:
    """Print what runs; 0 when the server and the serve process both do."""
    running = {}
    for name in ("server", "serve", *stack.other_pid_files()):
        proc = read_pid_file(stack.pid_file(name))
        running[name] = proc is not None
        print(f"{name}: " + (f"running (pid {proc.pid})" if proc else "not running"))
    print(f"api {stack.api_url}: " + ("healthy" if is_healthy(stack.api_url) else "not answering"))
    print(f"database: {describe_database()}")
    print(f"auth: {_auth_status(stack)}")
    left = survivors(stack)
    if left:
        print(
            f"{len(left)} process(es) of this stack outside the server and serve trees (left by a killed run? "
            f"`make down` stops them):"
        )
        for proc in left:
            print(f"  {_describe(proc)}")
    return 0 if running["server"] and running["serve"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.services", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        stack = Stack.from_env()
        if args.command == "up":
            up(stack)
        elif args.command == "down":
            down(stack)
        else:
            return status(stack)
    except (StackError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

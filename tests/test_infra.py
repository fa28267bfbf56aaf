"""The local stack: environment, clear errors, `make up` / `make down` lifecycle, work-pool registration.

Every stack here runs on a free ephemeral port with its own PREFECT_HOME under tmp_path, never on 4200.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prefect_fixtures import PrefectServer, run_deployment
from tiny_checkpoint import tiny_corpus_and_checkpoint

from infra.deployments import DEPLOYMENTS, is_present, load_flow, present_specs
from infra.env import REPO, SERVICE_MARK, local_stack_env
from infra.processes import read_pid_file, spawn, stop_tree, write_pid_file
from infra.server import free_port

# Drop any stack settings of the developer's shell so the tests choose them.
_OUTER = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "WEBTEXT_"))}


def stack_env(home: Path, port: int) -> dict[str, str]:
    return {**_OUTER, "WEBTEXT_PREFECT_HOME": str(home), "WEBTEXT_PORT": str(port)}


def run(cmd: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def make(target: str, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess:
    # -o: the venv is the one running these tests; never reinstall it from inside the suite.
    return run(["make", "--no-print-directory", "-o", ".venv/.installed", target], env, timeout)


def test_env_sh_exports_what_env_py_computes(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "home", 4321)
    shown = run(["bash", "-c", "source infra/env.sh && env"], env).stdout
    exported = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    expected = local_stack_env(env)
    assert expected["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert expected["PREFECT_HOME"] == str((tmp_path / "home").resolve())
    assert {key: exported.get(key) for key in expected} == expected
    assert exported["PATH"].split(":")[0] == str(REPO / ".venv" / "bin")


def test_env_py_rejects_a_bad_port() -> None:
    result = run([sys.executable, "infra/env.py"], {**_OUTER, "WEBTEXT_PORT": "42OO"})
    assert result.returncode != 0
    assert "WEBTEXT_PORT must be a TCP port number" in result.stderr and "'42OO'" in result.stderr


def test_a_database_url_that_prefect_cannot_use_is_refused_without_its_password(tmp_path: Path) -> None:
    env = {**stack_env(tmp_path / "home", free_port()), "WEBTEXT_DATABASE_URL": "mysql://root:s3cret@db:3306/prefect"}
    result = make("up", env, timeout=120)
    assert result.returncode != 0
    assert "WEBTEXT_DATABASE_URL must start with postgresql+asyncpg:// or sqlite+aiosqlite://" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert not (tmp_path / "home" / "run" / "server.pid").exists()


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _cluster_folder(as_owner: list[str]) -> Path:
    """A new folder, mode 0700, owned by the user the cluster runs as, inside a folder that user can reach: the
    checkout's .tmp when it can (pytest makes tmp_path private to us), else the system's /tmp (when the checkout
    lies under a private folder, e.g. a clone in /root or in a `mktemp -d` folder)."""
    (REPO / ".tmp").mkdir(exist_ok=True)
    for parent in (REPO / ".tmp", Path("/tmp")):
        if not as_owner or subprocess.run([*as_owner, "test", "-x", str(parent)]).returncode == 0:
            root = Path(tempfile.mkdtemp(prefix="webtext-postgres-", dir=parent))  # mode 0700
            if as_owner:
                shutil.chown(root, user="postgres")
            return root
    pytest.fail(f"the postgres user can reach neither {REPO / '.tmp'} nor /tmp")


@pytest.fixture
def postgres() -> Iterator[str]:
    """A real PostgreSQL server on a free loopback port (its own cluster, removed after); yields its asyncpg URL."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)")
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to the postgres user
        as_owner = ["runuser", "-u", "postgres", "--"]
    root = _cluster_folder(as_owner)
    port = free_port()
    subprocess.run(
        [
            *as_owner,
            str(bin_dir / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "prefect",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_owner,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(root / "data"),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "prefect",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE prefect",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"postgresql+asyncpg://prefect@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(
            [*as_owner, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.server
def test_make_up_on_postgresql_keeps_the_runs_there(tmp_path: Path, postgres: str) -> None:
    home, port = tmp_path / "prefect", free_port()
    env = {**stack_env(home, port), "WEBTEXT_DEPLOYMENTS": "gpt2/evaluate", "WEBTEXT_DATABASE_URL": postgres}
    corpus, checkpoint = tiny_corpus_and_checkpoint(tmp_path)
    try:
        started = make("up", env)
        assert started.returncode == 0, started.stdout + started.stderr
        pg_address = postgres.split("@")[1]
        assert f"Database:     PostgreSQL {pg_address}" in started.stdout
        assert f"database: PostgreSQL {pg_address}" in make("status", env).stdout
        params = {"checkpoint": str(checkpoint), "tasks": ["webtext-val"], "corpus": str(corpus), "limit": 3}
        flow_run = run_deployment(_stack_server(env), "gpt2/evaluate", params, timeout=240)
        # The run's state is in PostgreSQL's tables, and no SQLite database was made.
        pg_port = pg_address.split(":")[1].split("/")[0]
        query = f"SELECT state_type FROM flow_run WHERE id = '{flow_run['id']}'"
        stored = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", pg_port, "-U", "prefect", "-d", "prefect", "-tAc", query],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stored.stdout.strip() == "COMPLETED", stored.stdout + stored.stderr + flow_run["cli_output"]
        assert not (home / "prefect.db").exists()
    finally:
        make("down", env)


def test_up_on_a_taken_port_names_the_holder_and_the_fix(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run([sys.executable, "-m", "infra.services", "up"], stack_env(tmp_path, port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use by pid {os.getpid()}" in result.stderr
    assert "make down" in result.stderr and "WEBTEXT_PORT=" in result.stderr
    assert not (tmp_path / "run" / "server.pid").exists()  # nothing half-started is left behind


def test_running_a_deployment_with_the_server_down_says_make_up(tmp_path: Path) -> None:
    port = free_port()
    result = run(
        [sys.executable, "-m", "infra.run", "webtext/build-corpus", "-p", "out_dir=x"], stack_env(tmp_path, port)
    )
    assert result.returncode == 1
    assert f"no Prefect server answers at http://127.0.0.1:{port}/api" in result.stderr
    assert "make up" in result.stderr


def test_the_sourced_prefect_cli_says_make_up_when_the_server_is_down(tmp_path: Path) -> None:
    port = free_port()
    result = run(
        ["bash", "-c", "source infra/env.sh && prefect deployment run webtext/build-corpus"], stack_env(tmp_path, port)
    )
    assert result.returncode == 1
    assert f"no Prefect server answers at http://127.0.0.1:{port}/api" in result.stderr and "make up" in result.stderr
    assert "Traceback" not in result.stderr


def test_running_an_unknown_deployment_lists_the_real_ones(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "infra.run", "webtext/train"], stack_env(tmp_path, free_port()))
    assert result.returncode == 1
    assert "unknown deployment 'webtext/train'" in result.stderr
    assert all(spec.full_name in result.stderr for spec in DEPLOYMENTS)


def test_an_unknown_deployment_to_serve_fails_before_anything_starts(tmp_path: Path) -> None:
    env = {**stack_env(tmp_path, free_port()), "WEBTEXT_DEPLOYMENTS": "webtext/build-corpus,gpt2/trian"}
    result = run([sys.executable, "-m", "infra.services", "up"], env)
    assert result.returncode == 1
    assert "unknown deployment 'gpt2/trian'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_stop_tree_reaches_children_that_started_their_own_session(tmp_path: Path) -> None:
    # Prefect starts each flow run in a new session; killing the serve process group alone would orphan it.
    script = "sleep 300 & setsid sleep 300 & wait"
    parent = spawn(["bash", "-c", script], dict(os.environ), tmp_path / "log", cwd=tmp_path)
    deadline = time.monotonic() + 10
    while True:  # until both children have exec'd sleep, one of them in its own session
        children = psutil.Process(parent.pid).children(recursive=True)
        sleeping = [c for c in children if c.name() == "sleep"]
        if len(sleeping) == 2 and len({os.getsid(c.pid) for c in sleeping}) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(children) == 2 and len({os.getsid(c.pid) for c in children}) == 2
    stopped = stop_tree(parent.pid, timeout=5)
    parent.wait(timeout=5)
    assert set(stopped) == {parent.pid, *(c.pid for c in children)}
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_status_lists_processes_a_killed_run_left_and_down_stops_them(tmp_path: Path) -> None:
    """A process started by the stack's services (it carries SERVICE_MARK) that no recorded tree holds any more, as
    the children of a SIGKILLed flow run once were, is listed by `make status` and stopped by `make down`."""
    home, port = tmp_path / "home", free_port()
    marked = {**_OUTER, SERVICE_MARK: str(home.resolve())}
    recorded = spawn(["bash", "-c", "sleep 300 & wait"], marked, tmp_path / "serve.log", cwd=tmp_path)
    orphan = spawn(["sleep", "300"], marked, tmp_path / "orphan.log", cwd=tmp_path)
    unrelated = spawn(
        ["sleep", "300"], {**_OUTER, SERVICE_MARK: str(tmp_path / "other")}, tmp_path / "u.log", cwd=tmp_path
    )
    try:
        write_pid_file(home / "run" / "serve.pid", recorded.pid)
        time.sleep(0.2)  # let bash start its child
        status = run([sys.executable, "-m", "infra.services", "status"], stack_env(home, port))
        listed = {int(pid) for pid in re.findall(r"^  pid (\d+) ", status.stdout, re.M)}
        assert listed == {orphan.pid}, status.stdout
        assert "1 process(es) of this stack outside the server and serve trees" in status.stdout
        down = run([sys.executable, "-m", "infra.services", "down"], stack_env(home, port))
        assert f"survivor: stopping pid {orphan.pid} (sleep 300)" in down.stdout, down.stdout
        orphan.wait(timeout=15)
        recorded.wait(timeout=15)
        assert unrelated.poll() is None  # another stack's process is left alone
    finally:
        for proc in (recorded, orphan, unrelated):
            stop_tree(proc.pid, timeout=5)
            proc.wait(timeout=5)


def test_pid_file_ignores_a_dead_or_reused_pid(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "300"])
    pid_file = tmp_path / "x.pid"
    write_pid_file(pid_file, proc.pid)
    assert read_pid_file(pid_file).pid == proc.pid
    proc.kill()
    proc.wait()
    assert read_pid_file(pid_file) is None
    pid_file.write_text(f'{{"pid": {os.getpid()}, "create_time": 1.0}}')  # our PID, another start time
    assert read_pid_file(pid_file) is None


def test_a_deployment_whose_flow_breaks_its_contract_is_refused() -> None:
    spec = next(s for s in DEPLOYMENTS if s.full_name == "webtext/build-corpus")
    if not is_present(spec):
        pytest.skip("flows/webtext.py does not exist yet")
    assert load_flow(spec).name == "webtext"
    with pytest.raises(ValueError, match="is a flow named 'webtext', but deployment gpt2/build-corpus needs"):
        load_flow(dataclasses.replace(spec, flow_name="gpt2"))
    with pytest.raises(ValueError, match=r"sets default parameters \['no_such_parameter'\] that flows/webtext.py"):
        load_flow(dataclasses.replace(spec, parameters={"no_such_parameter": 1}))


@pytest.mark.server
def test_make_dask_starts_a_cluster_that_computes_and_make_down_stops_it(tmp_path: Path) -> None:
    from distributed import Client

    env = {**stack_env(tmp_path, free_port()), "WORKERS": "1"}
    try:
        started = make("dask", env, timeout=200)
        assert started.returncode == 0, started.stdout + started.stderr
        address = (tmp_path / "run" / "dask-address").read_text()
        assert address.startswith("tcp://127.0.0.1:") and f"dask_address={address}" in started.stdout
        pids = set().union(
            *(_tree(read_pid_file(tmp_path / "run" / f"{n}.pid").pid) for n in ("dask-scheduler", "dask-worker"))
        )
        with Client(address, timeout=30) as client:
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
            assert client.run(lambda: __import__("multiprocessing").current_process().daemon) == dict.fromkeys(
                client.scheduler_info()["workers"], False
            )  # pages may get child processes
    finally:
        stopped = make("down", env)
    assert "dask-worker: stopped" in stopped.stdout and "dask-scheduler: stopped" in stopped.stdout
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def _tree(pid: int) -> set[int]:
    proc = psutil.Process(pid)
    return {pid, *(child.pid for child in proc.children(recursive=True))}


def _stack_server(env: dict[str, str]) -> PrefectServer:
    """The server `make up` started with `env`, described as the fixtures describe theirs (for `run_deployment`)."""
    settings = local_stack_env(env)
    home, port = Path(settings["PREFECT_HOME"]), int(env["WEBTEXT_PORT"])
    return PrefectServer(
        api_url=settings["PREFECT_API_URL"],
        ui_url=f"http://127.0.0.1:{port}",
        port=port,
        home=home,
        log_path=home / "logs" / "server.log",
        settings=settings,
        env={**env, **settings},
    )


def _run_through_a_worker(tmp_path: Path, env: dict[str, str]) -> None:
    corpus, checkpoint = tiny_corpus_and_checkpoint(tmp_path)
    client_env = {**env, **local_stack_env(env)}
    deployed = run(
        [sys.executable, "-m", "infra.deploy", "--work-pool", "test-pool"],
        {**env, "WEBTEXT_DEPLOYMENTS": "gpt2/evaluate"},
        timeout=180,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker_log = tmp_path / "worker.log"
    worker = spawn(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "test-pool"],
        {**client_env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
        worker_log,
        cwd=tmp_path,
    )
    try:
        params = {"checkpoint": str(checkpoint), "tasks": ["webtext-val"], "corpus": str(corpus), "limit": 5}
        flow_run = run_deployment(_stack_server(env), "gpt2/evaluate", params, timeout=240)
        assert flow_run["state_type"] == "COMPLETED", flow_run["cli_output"] + worker_log.read_text()
        assert flow_run["work_pool_name"] == "test-pool"
        results = json.loads((checkpoint / "results.json").read_text())
        assert "webtext-val" in json.dumps(results)
    finally:
        stop_tree(worker.pid)
        worker.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.server
def test_make_up_down_up_lifecycle_and_work_pool_registration(tmp_path: Path) -> None:
    home, port = tmp_path / "prefect", free_port()
    # One deployment keeps this test's three flow imports cheap; serving all three is what `served_deployments` does.
    env = {**stack_env(home, port), "WEBTEXT_DEPLOYMENTS": "webtext/build-corpus"}
    names = [spec.full_name for spec in present_specs(env)]
    if not names:
        pytest.skip("flows/webtext.py does not exist yet, so `make up` has nothing to serve")
    api = f"http://127.0.0.1:{port}/api"
    try:
        first = make("up", env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"Prefect UI:   http://127.0.0.1:{port}" in first.stdout
        assert httpx.get(f"{api}/health").json() is True
        for spec in present_specs(env):  # registered with the table's default parameters
            deployment = httpx.get(f"{api}/deployments/name/{spec.full_name}").json()
            assert deployment["parameters"] == spec.parameters, spec.full_name
        server, serve = (read_pid_file(home / "run" / f"{n}.pid") for n in ("server", "serve"))
        assert server is not None and serve is not None
        assert (home / "prefect.db").exists()  # the SQLite database lives in the stack's home
        # Another tool (the demo) may record a helper process of its own; `make down` stops it too.
        extra = spawn(["sleep", "300"], dict(_OUTER), home / "logs" / "extra.log", cwd=tmp_path)
        write_pid_file(home / "run" / "extra.pid", extra.pid)
        pids = _tree(server.pid) | _tree(serve.pid) | {extra.pid}

        again = make("up", env)  # idempotent: nothing new starts
        assert again.returncode == 0, again.stderr
        assert "server already running" in again.stdout and "deployments already served" in again.stdout
        assert read_pid_file(home / "run" / "server.pid").pid == server.pid

        # Production path: the same deployments registered to a process work pool (updated in place).
        deployed = run(
            [sys.executable, "-m", "infra.deploy", "--work-pool", "test-pool", "--create-pool"], env, timeout=180
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "created process work pool 'test-pool'" in deployed.stdout
        for name in names:
            deployment = httpx.get(f"{api}/deployments/name/{name}").json()
            assert deployment["work_pool_name"] == "test-pool", name
            assert deployment["entrypoint"] == next(s.entrypoint for s in DEPLOYMENTS if s.full_name == name)

        # ... and executed there: a `prefect worker` process runs gpt2/evaluate, as one on another machine would.
        _run_through_a_worker(tmp_path, env)

        down = make("down", env)
        assert down.returncode == 0, down.stderr
        assert extra.wait(timeout=10) is not None
        assert not [
            pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        assert not list((home / "run").glob("*.pid"))
        assert "not running" in make("down", env).stdout  # a second down is harmless

        second = make("up", env)  # and the stack comes back on the same database
        assert second.returncode == 0, second.stdout + second.stderr
        assert httpx.get(f"{api}/health").json() is True
        for name in names:  # serve paused them when it stopped; serving them again resumes them
            assert httpx.get(f"{api}/deployments/name/{name}").json()["paused"] is False, name
    finally:
        make("down", env)

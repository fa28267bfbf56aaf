"""The stack never listens beyond loopback without authentication (issue 19).

A real `make up` binds 0.0.0.0 on a free port with an auth file; all traffic goes to 127.0.0.1. Checked: the refusal
before anything listens, 401 without the string, a deployment run end to end through `make run` (`prefect deployment
run`) and through a work-pool worker set up as the README says, the UI's login in Chromium, and that the string shows
up in no log, output or process argument.
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from prefect_fixtures import PrefectServer, read_logs, run_deployment, ui_runs_page
from test_infra import _OUTER, make, run
from tiny_checkpoint import tiny_corpus_and_checkpoint

from infra.env import CLIENT_AUTH, SERVER_AUTH, client_env, is_loopback, local_stack_env
from infra.processes import read_pid_file, spawn, stop_pid_file, stop_tree
from infra.server import auth_headers, free_port


def write_auth_file(path: Path, auth: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(auth + "\n")
    path.chmod(mode)
    return path


def wide_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """A stack bound beyond loopback (all interfaces) on `port`."""
    return {**_OUTER, "WEBTEXT_PREFECT_HOME": str(home), "WEBTEXT_PORT": str(port), "WEBTEXT_HOST": "0.0.0.0", **extra}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop_anything_started(env: dict[str, str]) -> None:
    """`make down` when a test that expects a refusal started something after all."""
    if (Path(env["WEBTEXT_PREFECT_HOME"]) / "run").exists():
        make("down", env)


def test_only_loopback_addresses_count_as_loopback() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.1.2.3", "192.168.0.7", "prefect.internal", ""]))


def test_a_bind_beyond_loopback_without_auth_is_refused_before_anything_listens(tmp_path: Path) -> None:
    port = free_port()
    env = wide_env(tmp_path, port)
    try:
        result = run([sys.executable, "-m", "infra.services", "up"], env)
        assert result.returncode == 1
        assert "refusing to start the Prefect server on 0.0.0.0" in result.stderr
        assert SERVER_AUTH in result.stderr and CLIENT_AUTH in result.stderr
        assert f"> {tmp_path.resolve() / 'auth-string'}" in result.stderr and "umask 077; read -rs" in result.stderr
        assert not listening(port)
        assert not (tmp_path / "run").exists()  # no PID file: nothing was started
    finally:
        stop_anything_started(env)


@pytest.mark.parametrize(
    "mode, content, problem",
    [
        (0o644, "webtext:s3cret-Pa55", "can be read by others (mode 644); make it private with `chmod 600"),
        (0o640, "webtext:s3cret-Pa55", "can be read by others (mode 640)"),
        (0o600, "s3cret-Pa55", "must hold one line `user:password`"),
        (0o600, "webtext:s3cret-Pa55\nsecond line", "must hold one line `user:password`"),
    ],
)
def test_a_bad_auth_file_is_refused_by_name_without_its_content(
    tmp_path: Path, mode: int, content: str, problem: str
) -> None:
    auth_path = write_auth_file(tmp_path / "secret" / "auth", content, mode)
    env = wide_env(tmp_path / "home", free_port(), WEBTEXT_AUTH_FILE=str(auth_path))
    try:
        for result in (make("up", env, timeout=120), run([sys.executable, "infra/env.py"], env)):
            assert result.returncode != 0
            assert f"the auth file {auth_path} " in result.stderr and problem in result.stderr
            assert "s3cret" not in result.stdout + result.stderr
        assert not (tmp_path / "home" / "run").exists()
    finally:
        stop_anything_started(env)


def test_a_missing_auth_file_that_was_named_is_an_error(tmp_path: Path) -> None:
    env = wide_env(tmp_path / "home", free_port(), WEBTEXT_AUTH_FILE=str(tmp_path / "nope"))
    result = make("up", env, timeout=120)
    assert (
        result.returncode != 0 and f"WEBTEXT_AUTH_FILE names {tmp_path / 'nope'}, which does not exist" in result.stderr
    )


def test_env_sh_exports_the_auth_string_without_printing_it(tmp_path: Path) -> None:
    auth = f"webtext:{secrets.token_urlsafe(16)}"
    write_auth_file(tmp_path / "auth-string", auth)
    env = {**_OUTER, "WEBTEXT_PREFECT_HOME": str(tmp_path), "WEBTEXT_PORT": str(free_port())}
    printed = run([sys.executable, "infra/env.py"], env)
    assert printed.returncode == 0 and auth not in printed.stdout + printed.stderr
    exported = run(["bash", "-c", f"source infra/env.sh && printenv {CLIENT_AUTH}"], env)
    assert exported.stdout.strip() == auth


def test_the_local_auth_string_is_not_sent_to_another_server(tmp_path: Path) -> None:
    write_auth_file(tmp_path / "auth-string", "webtext:local-secret")
    local = {**_OUTER, "WEBTEXT_PREFECT_HOME": str(tmp_path), "WEBTEXT_PORT": "4321"}
    assert client_env(local)[CLIENT_AUTH] == "webtext:local-secret"
    other = client_env({**local, "PREFECT_API_URL": "http://prefect.internal:4200/api"})
    assert other["PREFECT_API_URL"] == "http://prefect.internal:4200/api" and CLIENT_AUTH not in other
    assert (
        client_env({**local, "PREFECT_API_URL": "http://prefect.internal:4200/api", CLIENT_AUTH: "prod:secret"})[
            CLIENT_AUTH
        ]
        == "prod:secret"
    )


@dataclass
class AuthStack:
    env: dict[str, str]  # what `make` gets: WEBTEXT_HOST=0.0.0.0, the port, the home (with its auth file)
    auth: str
    auth_path: Path
    api_url: str  # on 127.0.0.1
    home: Path
    outputs: list[str]  # everything our commands printed, searched for the string at the end
    corpus: Path
    checkpoint: Path

    def server(self) -> PrefectServer:
        """The stack as the fixtures describe a server, for run_deployment / read_logs / ui_runs_page."""
        settings = local_stack_env(self.env)
        port = int(self.env["WEBTEXT_PORT"])
        return PrefectServer(
            api_url=self.api_url,
            ui_url=self.api_url.removesuffix("/api"),
            port=port,
            home=self.home,
            log_path=self.home / "logs" / "server.log",
            settings=settings,
            env={**client_env(self.env), "WEBTEXT_DEPLOYMENTS": "gpt2/evaluate"},
        )


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    root = tmp_path_factory.mktemp("auth-stack")
    home, port = root / "prefect", free_port()
    auth = f"webtext:{secrets.token_urlsafe(24)}"
    auth_path = write_auth_file(home / "auth-string", auth)
    env = wide_env(home, port, WEBTEXT_DEPLOYMENTS="gpt2/evaluate")
    corpus, checkpoint = tiny_corpus_and_checkpoint(root)
    stack = AuthStack(env, auth, auth_path, f"http://127.0.0.1:{port}/api", home, [], corpus, checkpoint)
    try:
        started = make("up", env)
        stack.outputs.append(started.stdout + started.stderr)
        assert started.returncode == 0, started.stdout + started.stderr
        yield stack
    finally:
        stack.outputs.append(make("down", env).stdout)


@pytest.mark.server
def test_the_api_answers_401_without_the_string_and_serves_with_it(auth_stack: AuthStack) -> None:
    api, auth = auth_stack.api_url, auth_stack.auth
    assert httpx.get(f"{api}/health").json() is True  # probes stay open
    assert httpx.get(f"{api}/admin/version").status_code == 401
    assert httpx.get(f"{api}/csrf-token", params={"client": "x"}).status_code == 401  # so no change gets through
    assert httpx.get(f"{api}/admin/version", headers=auth_headers("webtext:wrong")).status_code == 401
    assert httpx.get(f"{api}/admin/version", headers=auth_headers(auth)).status_code == 200
    deployment = httpx.get(f"{api}/deployments/name/gpt2/evaluate", headers=auth_headers(auth))
    assert deployment.status_code == 200 and deployment.json()["name"] == "evaluate"
    # Reachable from other machines, so browsers' state changes need Prefect's CSRF token as well.
    for headers in ({}, auth_headers(auth)):
        refused = httpx.post(f"{api}/flow_runs/filter", json={}, headers=headers)
        assert refused.status_code == 403 and "Missing CSRF token" in refused.text
    status = make("status", auth_stack.env)
    auth_stack.outputs.append(status.stdout + status.stderr)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"auth: required, the string is in {auth_stack.auth_path}; the server accepts it" in status.stdout


@pytest.mark.server
def test_a_client_with_the_wrong_string_gets_a_clear_error_without_either_string(
    auth_stack: AuthStack, tmp_path: Path
) -> None:
    wrong = write_auth_file(tmp_path / "wrong", "webtext:not-the-Secret")
    result = make("run", {**auth_stack.env, "WEBTEXT_AUTH_FILE": str(wrong), "DEPLOYMENT": "gpt2/evaluate"})
    assert result.returncode != 0
    assert f"the Prefect server at {auth_stack.api_url} refused our auth string ({CLIENT_AUTH})" in result.stderr
    assert "not-the-Secret" not in result.stdout + result.stderr
    auth_stack.outputs.append(result.stdout + result.stderr)


@pytest.fixture(scope="module")
def run_through_serve(auth_stack: AuthStack) -> dict:
    """`make run` (infra.run -> `prefect deployment run --watch`) of gpt2/evaluate, run by the served deployment."""
    params = {
        "checkpoint": str(auth_stack.checkpoint),
        "tasks": ["webtext-val"],
        "corpus": str(auth_stack.corpus),
        "limit": 3,
    }
    result = make(
        "run",
        {**auth_stack.env, "DEPLOYMENT": "gpt2/evaluate", "ARGS": f"--params '{json.dumps(params)}'", "COLUMNS": "250"},
        timeout=400,
    )
    auth_stack.outputs.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    flow_run_id = next(line.split("UUID:")[1].strip() for line in result.stdout.splitlines() if "UUID:" in line)
    return httpx.get(f"{auth_stack.api_url}/flow_runs/{flow_run_id}", headers=auth_headers(auth_stack.auth)).json()


@pytest.mark.server
@pytest.mark.slow
def test_a_deployment_runs_end_to_end_with_auth(auth_stack: AuthStack, run_through_serve: dict) -> None:
    assert run_through_serve["state_type"] == "COMPLETED", run_through_serve["state_name"]
    logs = read_logs(auth_stack.server(), run_through_serve["id"])  # the flow run's own client reached the API
    assert any("Finished in state Completed" in message for message in logs), logs
    cli = run(["bash", "-c", "source infra/env.sh && prefect deployment ls"], auth_stack.env)
    auth_stack.outputs.append(cli.stdout + cli.stderr)
    assert cli.returncode == 0 and "gpt2/evaluate" in cli.stdout.replace("\n", ""), cli.stdout + cli.stderr


@pytest.mark.server
@pytest.mark.browser
@pytest.mark.slow
def test_the_ui_asks_for_the_string_and_then_shows_the_run(
    auth_stack: AuthStack, run_through_serve: dict, tmp_path: Path
) -> None:
    page = ui_runs_page(auth_stack.server(), [run_through_serve["name"]], tmp_path / "runs.png", auth=auth_stack.auth)
    assert page.login_text is not None and "Login" in page.login_text
    assert run_through_serve["name"] not in page.login_text  # nothing is shown before the login
    assert "Completed" in page.rows[run_through_serve["name"]]
    assert page.hosts == {"127.0.0.1"}, f"the UI contacted {page.hosts - {'127.0.0.1'}}"


@pytest.mark.server
def test_the_string_is_in_no_log_output_or_process_argument(auth_stack: AuthStack) -> None:
    # Runs after the tests above (pytest keeps the file's order), so their outputs are searched too.
    pids = set()
    for name in ("server", "serve"):
        proc = read_pid_file(auth_stack.home / "run" / f"{name}.pid")
        assert proc is not None, f"the {name} process is not running"
        pids |= {proc.pid, *(child.pid for child in proc.children(recursive=True))}
    for pid in pids:
        assert auth_stack.auth not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"), pid
        environ = Path(f"/proc/{pid}/environ")
        assert environ.stat().st_mode & 0o077 == 0  # the environment, which holds it, is private to us
    logs = [path.read_text(errors="replace") for path in (auth_stack.home / "logs").glob("*.log")]
    assert logs and len(auth_stack.outputs) >= 1
    for text in logs + auth_stack.outputs:
        assert auth_stack.auth not in text
        assert auth_stack.auth.split(":", 1)[1] not in text


@pytest.mark.server
@pytest.mark.slow
def test_a_work_pool_worker_set_up_as_the_readme_says_runs_with_auth(auth_stack: AuthStack, tmp_path: Path) -> None:
    # The served deployment would race the worker for the run (same deployment): the stack serves no more.
    stop_pid_file(auth_stack.home / "run" / "serve.pid")
    deployed = run(
        [sys.executable, "-m", "infra.deploy", "--work-pool", "auth-pool", "--create-pool"], auth_stack.env, timeout=180
    )
    auth_stack.outputs.append(deployed.stdout + deployed.stderr)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # The README's worker machine: PREFECT_API_URL and the string read from a private file, never typed.
    script = (
        f"export PREFECT_API_URL={auth_stack.api_url} DO_NOT_TRACK=1 PREFECT_WORKER_QUERY_SECONDS=1 "
        f'{CLIENT_AUTH}="$(cat {auth_stack.auth_path})" && exec {sys.executable} -m prefect worker start '
        f"--pool auth-pool"
    )
    worker_env = {**_OUTER, "PREFECT_HOME": str(tmp_path / "worker-home")}
    worker = spawn(["bash", "-c", script], worker_env, tmp_path / "worker.log", cwd=tmp_path)
    try:
        params = {
            "checkpoint": str(auth_stack.checkpoint),
            "tasks": ["webtext-val"],
            "corpus": str(auth_stack.corpus),
            "limit": 3,
        }
        flow_run = run_deployment(auth_stack.server(), "gpt2/evaluate", params, timeout=300)
        worker_log = (tmp_path / "worker.log").read_text()
        auth_stack.outputs += [flow_run["cli_output"], worker_log]
        assert flow_run["state_type"] == "COMPLETED", flow_run["cli_output"] + worker_log
        assert flow_run["work_pool_name"] == "auth-pool" and flow_run["id"] in worker_log
        assert auth_stack.auth not in " ".join(psutil.Process(worker.pid).cmdline())
        for text in (deployed.stdout + deployed.stderr, flow_run["cli_output"], worker_log):
            assert auth_stack.auth not in text
    finally:
        stop_tree(worker.pid)
        worker.wait(timeout=10)

"""Run a deployment, checking first that the server is up: `python -m infra.run webtext/build-corpus -p KEY=VALUE ...`.

It is `prefect deployment run NAME ... --watch` with the local stack's environment (infra/env.py), except that when
no server answers it says so and tells you to `make up`, instead of a connection traceback, and that when the run
fails it prints why (state messages and the last error logs of the run and its subflows). Every argument after the
name is passed on to `prefect deployment run` unchanged (`-p/--param KEY=VALUE`, `--params JSON`, ...).
"""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from infra.deployments import find
from infra.env import CLIENT_AUTH, client_env
from infra.failures import failure_report
from infra.server import PREFECT, ServerAuthError, ServerDownError, require_server


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print(__doc__.split("\n")[0], file=sys.stderr)
        return 2
    try:
        find(args[0])
        env = client_env()  # a user pointing PREFECT_API_URL at another (e.g. production) server wins
        require_server(env["PREFECT_API_URL"], env.get(CLIENT_AUTH))
    except (ServerDownError, ServerAuthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    watch = [] if "--watch" in args or "--no-watch" in args else ["--watch"]
    cli_args = [a for a in args if a != "--no-watch"]
    return run_and_explain([*PREFECT, "deployment", "run", *cli_args, *watch], env)


_UUID_LINE = re.compile(r"UUID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def run_and_explain(command: list[str], env: dict[str, str]) -> int:
    """Run the Prefect CLI command, passing its output through; when the run it watched did not complete, print why
    (state messages and the last error logs, infra/failures.py) instead of leaving only "finished in state 'Failed'"."""
    process = subprocess.Popen(
        command,
        env={**env, "COLUMNS": env.get("COLUMNS", "250")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    flow_run_id = None
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if flow_run_id is None and (match := _UUID_LINE.search(line)):
            flow_run_id = match.group(1)
    code = process.wait()
    if flow_run_id is not None and "--watch" in command:
        try:
            report = failure_report(env["PREFECT_API_URL"], flow_run_id, auth=env.get(CLIENT_AUTH))
        except httpx.HTTPError as exc:
            report = f"(could not read the run's state and logs back: {exc})"
        if report:
            print(f"\n{report}", file=sys.stderr, flush=True)
            return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())

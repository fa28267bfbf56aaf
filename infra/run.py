"""Run a deployment, checking first that the server is up: `python -m infra.run webtext/build-corpus -p KEY=VALUE ...`.

It is `prefect deployment run NAME ... --watch` with the local stack's environment (infra/env.py), except that when
no server answers it says so and tells you to `make up`, instead of a connection traceback. Every argument after the
name is passed on to `prefect deployment run` unchanged (`-p/--param KEY=VALUE`, `--params JSON`, ...).
"""
from __future__ import annotations

import os
import sys

from infra.deployments import find
from infra.env import CLIENT_AUTH, client_env
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
    os.execve(sys.executable, [*PREFECT, "deployment", "run", *cli_args, *watch], env)


if __name__ == "__main__":
    sys.exit(main())

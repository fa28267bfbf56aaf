"""Register the deployments to a work pool, for workers on other machines: `python -m infra.deploy --work-pool NAME`.

The production path. Instead of `infra.serve` running the flows in one process on this machine, the deployments are
registered with a work pool and any number of `prefect worker start --pool NAME` processes (each on a machine with this
project installed and PREFECT_API_URL pointing at the shared server) pick their runs up. Names, entrypoints and default
parameters are the same table `infra.serve` uses; re-running updates the deployments in place.

WEBTEXT_DEPLOYMENTS=NAME,... registers only those, so each stage can go to the pool of the machines it needs:
`WEBTEXT_DEPLOYMENTS=gpt2/train python -m infra.deploy --work-pool gpu`.

`--source` says where workers get the code: by default this checkout's absolute path (workers need the project at the
same path, e.g. a shared filesystem), or a git URL that each run clones.
"""

from __future__ import annotations

import argparse
import os
import sys

from infra.deployments import load_flow, present_specs
from infra.env import CLIENT_AUTH, REPO, client_env
from infra.server import ServerAuthError, ServerDownError, require_server


def ensure_process_pool(name: str) -> bool:
    """Create a process-type work pool called `name` unless it exists; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            return False
    return True


def deploy_all(work_pool: str, source: str) -> list[str]:
    """Register every deployment whose flow file exists to `work_pool`; returns their full names."""
    from prefect import Flow

    names = []
    for spec in present_specs():
        load_flow(spec)  # check the flow's name and defaults here, before anything is registered
        flow = Flow.from_source(source=source, entrypoint=spec.entrypoint)
        flow.deploy(
            name=spec.name,
            work_pool_name=work_pool,
            parameters=spec.parameters,
            description=spec.description,
            tags=["webtext-gpt2"],
            print_next_steps=False,
            ignore_warnings=True,
        )
        names.append(spec.full_name)
        print(f"registered {spec.full_name} ({spec.entrypoint}) to work pool {work_pool!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--work-pool", required=True, help="work pool the workers poll (`prefect worker start --pool`)")
    parser.add_argument("--create-pool", action="store_true", help="create it as a process pool if it does not exist")
    parser.add_argument(
        "--source", default=str(REPO), help="where workers get the code: a path or a git URL (default: this checkout)"
    )
    args = parser.parse_args(argv)
    try:
        # An explicit PREFECT_API_URL (a production server) wins over the local stack's default.
        os.environ.update(client_env())
        require_server(os.environ["PREFECT_API_URL"], os.environ.get(CLIENT_AUTH))
    except (ServerDownError, ServerAuthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    os.chdir(REPO)
    if args.create_pool and ensure_process_pool(args.work_pool):
        print(f"created process work pool {args.work_pool!r}")
    try:
        deploy_all(args.work_pool, args.source)
    except ValueError as exc:  # an unknown name in WEBTEXT_DEPLOYMENTS, or a flow that breaks its contract
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"start workers with: prefect worker start --pool {args.work_pool}"
        + (f"  (with PREFECT_API_URL and {CLIENT_AUTH} set)" if os.environ.get(CLIENT_AUTH) else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

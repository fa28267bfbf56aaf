"""Serve the project's deployments from this checkout: `python -m infra.serve`.

Registers `webtext/build-corpus`, `gpt2/train` and `gpt2/evaluate` with the Prefect server at PREFECT_API_URL
(re-running updates them in place) and then runs their flow runs as subprocesses until stopped. No work pool is needed.
Run it with the environment of infra/env.py (`make up` does); flows run with the checkout as working directory.
WEBTEXT_DEPLOYMENTS=gpt2/train,... serves only those (e.g. the GPU machine serves training).
"""

from __future__ import annotations

import logging
import os
import sys

from infra.deployments import load_flow, present_specs
from infra.env import CLIENT_AUTH, REPO
from infra.server import require_server

log = logging.getLogger("infra.serve")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("infra").setLevel(logging.INFO)  # ours at INFO; httpx would log every 2-second poll
    if "PREFECT_API_URL" not in os.environ:
        sys.exit(
            "PREFECT_API_URL is not set: run `source infra/env.sh` first (or use `make up`), otherwise Prefect "
            "would register the deployments with a throw-away temporary server."
        )
    try:
        require_server(os.environ["PREFECT_API_URL"], os.environ.get(CLIENT_AUTH))
    except RuntimeError as exc:
        sys.exit(str(exc))
    os.chdir(REPO)  # entrypoints and relative default paths are relative to the checkout

    from prefect import serve

    try:
        specs = present_specs()
    except ValueError as exc:  # an unknown name in WEBTEXT_DEPLOYMENTS
        sys.exit(str(exc))
    deployments = []
    for spec in specs:
        flow = load_flow(spec)
        deployments.append(
            flow.to_deployment(
                name=spec.name, description=spec.description, parameters=spec.parameters, tags=["webtext-gpt2"]
            )
        )
        log.info("serving %s (%s)", spec.full_name, spec.entrypoint)
    if not deployments:
        sys.exit("no flow modules found under flows/: nothing to serve")
    serve(*deployments, print_starting_message=False)


if __name__ == "__main__":
    main()

"""The project's three deployments: which flow each runs and its default parameters.

`infra.serve` serves them from this checkout; `infra.deploy` registers the same table to a work pool for workers on
other machines. Relative paths in the defaults resolve against the checkout: both the serve process and a worker's
pulled source run flows with the checkout as working directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect import Flow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeploymentSpec:
    flow_name: str  # the @flow(name=...) the deployment's full name starts with
    name: str  # deployment name: run it as `prefect deployment run <flow_name>/<name>`
    module: str  # import path of the flow file, e.g. flows.webtext
    function: str  # the flow function in it
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    @property
    def entrypoint(self) -> str:
        return f"{self.module.replace('.', '/')}.py:{self.function}"


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        flow_name="webtext",
        name="build-corpus",
        module="flows.webtext",
        function="webtext",
        description="Reddit dumps -> karma-filtered links -> fetch -> extract -> dedup -> Wikipedia removal "
        "-> Parquet shards (in data/webtext unless out_dir says otherwise).",
    ),
    DeploymentSpec(
        flow_name="gpt2",
        name="train",
        module="flows.train",
        function="train",
        description="Tokenize the corpus shards, train GPT-2 with Lightning, export a checkpoint, then evaluate it.",
        parameters={"corpus": "data/webtext"},  # what build-corpus writes by default: the DAG's next step
    ),
    DeploymentSpec(
        flow_name="gpt2",
        name="evaluate",
        module="flows.evaluate",
        function="evaluate",
        description="Zero-shot evaluation of a GPT-2 checkpoint on the paper's benchmarks; publishes result tables.",
    ),
)


def find(full_name: str) -> DeploymentSpec:
    for spec in DEPLOYMENTS:
        if spec.full_name == full_name:
            return spec
    known = ", ".join(spec.full_name for spec in DEPLOYMENTS)
    raise ValueError(f"unknown deployment {full_name!r}; this project has: {known}")


def is_present(spec: DeploymentSpec) -> bool:
    """Whether the flow file of `spec` exists in this checkout (it may not yet, while the project grows)."""
    try:
        return importlib.util.find_spec(spec.module) is not None
    except ModuleNotFoundError:
        return False


def load_flow(spec: DeploymentSpec) -> Flow:
    """Import the flow of `spec` and check it matches the deployment's contract (flow name, default parameters)."""
    from prefect import Flow  # imported here: reading the table above must stay cheap (test collection, shell)

    flow = getattr(importlib.import_module(spec.module), spec.function)
    if not isinstance(flow, Flow):
        raise TypeError(f"{spec.module}.{spec.function} is not a Prefect flow (missing @flow?)")
    if flow.name != spec.flow_name:
        raise ValueError(
            f"{spec.entrypoint} is a flow named {flow.name!r}, but deployment {spec.full_name} needs "
            f"the flow name {spec.flow_name!r}"
        )
    accepted = inspect.signature(flow.fn).parameters
    unknown = sorted(set(spec.parameters) - set(accepted))
    if unknown:
        raise ValueError(
            f"deployment {spec.full_name} sets default parameters {unknown} that {spec.entrypoint} "
            f"does not take (it takes {list(accepted)})"
        )
    return flow


def present_specs(environ: Mapping[str, str] = os.environ) -> list[DeploymentSpec]:
    """The deployments to serve or register: those named in WEBTEXT_DEPLOYMENTS (comma-separated; default all, so
    that e.g. a GPU machine can serve only gpt2/train) whose flow file exists. Missing flow files are logged."""
    wanted = [name.strip() for name in environ.get("WEBTEXT_DEPLOYMENTS", "").split(",") if name.strip()]
    specs = [find(name) for name in wanted] if wanted else list(DEPLOYMENTS)
    present = []
    for spec in specs:
        if is_present(spec):
            present.append(spec)
        else:
            log.warning(
                "deployment %s left out: its flow module %s does not exist in this checkout",
                spec.full_name,
                spec.module,
            )
    return present

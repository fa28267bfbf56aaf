"""The one shape of a build stage, and the driver that runs a list of them.

A stage (`Stage`) has a key (a hash of its inputs and settings), a plan, one or more steps of independent parts, and a
finish that returns its counts (`StageStats`). The driver owns everything around that: the stage folder
(`out_dir/<name>`), its `_KEY` file (a folder made with another key is cleared, one with the same key keeps the parts
an interrupted run finished), the `_SUCCESS.json` marker written last, and skipping a stage whose marker holds the
current key. How the parts of a step run is the caller's `MapParts`: in this process (`map_in_process`), on a Dask
cluster (`dask_map_parts`), or as Prefect tasks (flows/webtext.py). So the flow and the library run the same stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from corpus.files import write_json

log = logging.getLogger(__name__)
MARKER = "_SUCCESS.json"

# (label, function, shared arguments, parts) -> [function(*shared, part) for part in parts], in the order of parts
MapParts = Callable[[str, Callable[..., Any], tuple, Sequence[Any]], list]


def jsonable(value: Any) -> Any:
    """`value` as JSON types, dict keys sorted: the form keys are hashed from and markers are written in."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Path):
        return str(value)
    return value


def stage_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(jsonable(parts), sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StageStats:
    """What went into a stage and what came out (links: submissions -> URLs; fetch: URLs -> pages; then documents),
    why the rest was dropped, and stage-specific counts (`extra`)."""

    items_in: int
    items_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.extra, "in": self.items_in, "out": self.items_out, "dropped": dict(sorted(self.dropped.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageStats:
        extra = {k: v for k, v in data.items() if k not in ("in", "out", "dropped")}
        return cls(int(data["in"]), int(data["out"]), dict(data.get("dropped", {})), extra)

    def row(self, stage: str) -> dict:
        """The stage's row in manifest.json and the dataset card."""
        return {"stage": stage, "in": self.items_in, "out": self.items_out, "dropped": dict(self.dropped)}


class Stage(ABC):
    """One stage: `plan` once, then for each of `steps` its `parts` (each `run_part` is independent of the others of
    the step and may run anywhere: it reads and writes files under `out_dir`), then `finish`. A part must be safe to
    run again after a crash (write under the same names, atomically; `corpus.files.run_once`)."""

    name: ClassVar[str]
    steps: ClassVar[tuple[str, ...]] = ("run",)
    out_dir: Path

    @property
    def stage_dir(self) -> Path:
        return self.out_dir / self.name

    @abstractmethod
    def key(self, upstream: str | None) -> str:
        """A hash of everything the stage's output depends on; `upstream` is the key of the stage before it."""

    def plan(self, upstream: str | None) -> Any:
        """What every part needs (sent to each part: keep it small); the stage folder exists."""
        return None

    def for_parts(self) -> Stage:
        """The stage as sent with each part, with the plan: without what only `key` and `plan` read and what grows
        with the inputs (a list of input files: the plan file holds it), so a part's payload does not."""
        return self

    @abstractmethod
    def parts(self, plan: Any, step: str, done: Mapping[str, list]) -> Sequence[Any]:
        """The parts of `step`, once the steps before it are `done` (their parts' results by step)."""

    @abstractmethod
    def run_part(self, plan: Any, step: str, part: Any) -> Any:
        """Run one part; its result goes to `parts` and `finish` as done[step][i]."""

    @abstractmethod
    def finish(self, plan: Any, done: Mapping[str, list]) -> StageStats:
        """Write the stage's final files from its parts' and return its counts."""


def run_part(stage: Stage, plan: Any, step: str, part: Any) -> Any:
    """The function every mapper runs (a module-level function: it pickles by name)."""
    return stage.run_part(plan, step, part)


def completed(stage_dir: Path, key: str) -> StageStats | None:
    """The counts of a stage finished with this key, or None."""
    marker = stage_dir / MARKER
    if marker.exists():
        data = json.loads(marker.read_text())
        if data.get("key") == key:
            return StageStats.from_dict(data["stats"])
    return None


def begin(stage_dir: Path, key: str) -> None:
    """Prepare a stage folder: keep finished parts of an interrupted run with the same key, else start clean."""
    key_file = stage_dir / "_KEY"
    if stage_dir.exists() and (not key_file.exists() or key_file.read_text() != key):
        held = sum(1 for path in stage_dir.rglob("*") if path.is_file() and path != key_file)
        if held:  # say why finished work goes: after an upgrade or a changed setting, a resumed build starts it again
            log.warning(
                "%s: the folder was made with other inputs, settings or code versions than this run's: its %d files "
                "are discarded and the stage runs again",
                stage_dir.name,
                held,
            )
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)


def finish(stage_dir: Path, key: str, stats: StageStats) -> StageStats:
    write_json(stage_dir / MARKER, jsonable({"key": key, "stats": stats.to_dict()}))
    return stats


def run_stage(stage: Stage, upstream: str | None, map_parts: MapParts) -> tuple[str, StageStats]:
    """Run one stage unless it is done with the current key; returns (its key, its counts)."""
    key = stage.key(upstream)
    if (stats := completed(stage.stage_dir, key)) is not None:
        log.info("%s: done by an earlier run with the same inputs and settings", stage.name)
        return key, stats
    begin(stage.stage_dir, key)
    plan = stage.plan(upstream)
    sent = stage.for_parts()
    done: dict[str, list] = {}
    for step in stage.steps:
        parts = list(stage.parts(plan, step, done))
        label = stage.name if len(stage.steps) == 1 else f"{stage.name}-{step}"
        log.info("%s: %d parts", label, len(parts))
        done[step] = map_parts(label, run_part, (sent, plan, step), parts) if parts else []
    stats = finish(stage.stage_dir, key, stage.finish(plan, done))
    log.info("%s: %d in, %d out, dropped %s", stage.name, stats.items_in, stats.items_out, stats.dropped)
    return key, stats


@dataclass
class StagesResult:
    key: str | None  # the last stage's key
    stats: dict[str, StageStats]  # by stage name, in order
    seconds: dict[str, float]


def run_stages(stages: Sequence[Stage], map_parts: MapParts, upstream: str | None = None) -> StagesResult:
    """Run `stages` in order, each keyed on the one before it."""
    result = StagesResult(upstream, {}, {})
    for stage in stages:
        start = time.monotonic()
        result.key, result.stats[stage.name] = run_stage(stage, result.key, map_parts)
        result.seconds[stage.name] = time.monotonic() - start
    return result


# ---- mappers -----------------------------------------------------------------------------------------------------


def map_in_process(label: str, fn: Callable[..., Any], shared: tuple, parts: Sequence[Any]) -> list:
    """Every part in this process, one after the other, with a progress line at most every 10 seconds."""
    results, start, last = [], time.monotonic(), 0.0
    for n, part in enumerate(parts, 1):
        results.append(fn(*shared, part))
        if (now := time.monotonic()) - last >= 10 or n == len(parts):
            last = now
            log.info("%s: %d/%d parts done, %.2f parts/s", label, n, len(parts), n / max(now - start, 1e-9))
    return results


def dask_map_parts(client: Any, retries: int = 2) -> MapParts:
    """A mapper over a `distributed.Client`: the parts of a step run on the cluster's workers, in parallel."""
    from distributed import as_completed

    def map_parts(label: str, fn: Callable[..., Any], shared: tuple, parts: Sequence[Any]) -> list:
        futures = client.map(partial(fn, *shared), parts, pure=False, retries=retries, key=f"{label}-part")
        index = {future.key: i for i, future in enumerate(futures)}
        results: list = [None] * len(parts)
        start = time.monotonic()
        for n, future in enumerate(as_completed(futures), 1):
            results[index[future.key]] = future.result()
            log.debug("%s: %d/%d parts done, %.2f parts/s", label, n, len(parts), n / (time.monotonic() - start))
        return results

    return map_parts

"""The stage protocol (corpus.stages): the driver runs a stage once per key, keeps the parts an interrupted run finished,
starts clean under a new key; the Dask mapper keeps the parts' order; the library build on a Dask cluster writes the
shards a build in one process writes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from corpus.files import run_once
from corpus.stages import MARKER, Stage, StageStats, completed, dask_map_parts, map_in_process, run_stage, stage_key


@dataclass(frozen=True)
class Squares(Stage):
    """A two-step stage over files: step "square" writes n*n for each n, step "sum" adds them up."""

    out_dir: Path
    numbers: tuple[int, ...]
    fail_at: int | None = None  # a part that raises: the crash of an interrupted run
    name: ClassVar[str] = "squares"
    steps: ClassVar[tuple[str, ...]] = ("square", "sum")

    def key(self, upstream: str | None) -> str:
        return stage_key("squares", upstream, self.numbers)

    def parts(self, plan: None, step: str, done: Mapping[str, list]) -> Sequence[int]:
        return list(self.numbers) if step == "square" else [0]

    def run_part(self, plan: None, step: str, part: int) -> dict:
        if step == "sum":
            total = sum(int(p.read_text()) for p in sorted(self.stage_dir.glob("*.square")))
            return {"total": total}
        if part == self.fail_at:
            raise RuntimeError(f"part {part} crashed")

        def square() -> dict:
            (self.stage_dir / f"{part}.square").write_text(str(part * part))
            with (self.out_dir / "runs.log").open("a") as log:  # outside the stage folder: kept under a new key
                log.write(f"{part}\n")
            return {"n": part}

        return run_once(self.stage_dir / f"{part}.done", square)

    def finish(self, plan: None, done: Mapping[str, list]) -> StageStats:
        return StageStats(len(self.numbers), len(done["square"]), {}, {"total": done["sum"][0]["total"]})


def _runs(stage: Squares) -> list[int]:
    log = stage.out_dir / "runs.log"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_a_stage_runs_once_per_key_and_resumes_the_parts_an_interrupted_run_left(tmp_path, caplog):
    caplog.set_level("WARNING", logger="corpus.stages")
    crashed = Squares(tmp_path, (1, 2, 3, 4), fail_at=3)
    with pytest.raises(RuntimeError, match="part 3 crashed"):
        run_stage(crashed, "upstream", map_in_process)
    assert _runs(crashed) == [1, 2] and not (crashed.stage_dir / MARKER).exists()

    stage = Squares(tmp_path, (1, 2, 3, 4))
    key, stats = run_stage(stage, "upstream", map_in_process)
    assert _runs(stage) == [1, 2, 3, 4], "parts 1 and 2 were finished by the crashed run: not run again"
    assert stats == StageStats(4, 4, {}, {"total": 30}) and completed(stage.stage_dir, key) == stats

    assert run_stage(stage, "upstream", map_in_process) == (key, stats)
    assert _runs(stage) == [1, 2, 3, 4], "a finished stage is not run again"

    assert not caplog.records, "nothing is discarded on a first run, a resumed one or a finished one"
    other_key, other = run_stage(stage, "another upstream", map_in_process)
    assert other_key != key and other == stats
    assert _runs(stage) == [1, 2, 3, 4] * 2, "under a new key the folder starts clean: every part runs once more"
    assert completed(stage.stage_dir, key) is None
    # the log says why: 4 squares, 4 done markers and the stage's marker were discarded
    assert [r.getMessage() for r in caplog.records] == [
        "squares: the folder was made with other inputs, settings or code versions than this run's: its 9 files are "
        "discarded and the stage runs again"
    ]


def test_stage_stats_keep_their_counts_and_extras_through_the_marker():
    stats = StageStats(10, 7, {"too_short": 2, "empty": 1}, {"outcomes": {"ok": 7}})
    assert stats.to_dict() == {"in": 10, "out": 7, "dropped": {"empty": 1, "too_short": 2}, "outcomes": {"ok": 7}}
    assert StageStats.from_dict(stats.to_dict()) == stats
    assert stats.row("fetch") == {"stage": "fetch", "in": 10, "out": 7, "dropped": {"too_short": 2, "empty": 1}}


def _slow_square(delay: float, n: int) -> int:
    time.sleep(delay * (5 - n))  # the first parts finish last
    return n * n


@pytest.fixture(scope="module")
def dask_client():
    import dask
    from distributed import Client, LocalCluster

    # extraction runs each page in a child process: workers must be allowed children, as in the flow
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
        with cluster, Client(cluster) as client:
            yield client


def test_the_dask_mapper_returns_results_in_the_order_of_the_parts(dask_client):
    results = dask_map_parts(dask_client)("squares", _slow_square, (0.3,), [1, 2, 3, 4])
    assert results == [1, 4, 9, 16]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*"))}


def test_the_library_build_on_a_dask_cluster_writes_the_shards_of_a_build_in_one_process(tmp_path, dask_client):
    from test_buildlock import write_warc

    from corpus.build import BuildConfig, build_from_warcs
    from corpus.extract import ExtractConfig

    warcs = [write_warc(tmp_path / f"pages-{i}.warc.gz", 12) for i in range(2)]
    config = BuildConfig(extract=ExtractConfig(method="trafilatura", workers=1), pages_per_part=5)
    one = build_from_warcs(warcs, tmp_path / "one", config).manifest
    cluster = build_from_warcs(warcs, tmp_path / "cluster", config, dask_map_parts(dask_client)).manifest
    assert one["stages"] == cluster["stages"] and one["totals"]["documents"] > 0
    assert _digests(tmp_path / "one" / "shards") == _digests(tmp_path / "cluster" / "shards")
    workers = {p.name for p in (tmp_path / "cluster" / "extract").glob("0*.parquet")}
    assert workers == {p.name for p in (tmp_path / "one" / "extract").glob("0*.parquet")} and len(workers) == 6

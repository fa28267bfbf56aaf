"""Flow `webtext` (deployment `webtext/build-corpus`): Reddit dumps -> links -> fetch -> extract -> filter -> dedup ->
Wikipedia removal -> Parquet shards.

The stages are `corpus.build.corpus_stages`, run by `corpus.build.run_build` (the same list and driver a script uses
without Prefect); this file checks the parameters, holds the build folder, and gives the driver a mapper that runs
every part as a Prefect task (retries, progress logs and artifacts) on a Dask cluster (prefect-dask's DaskTaskRunner:
a local cluster of worker processes by default, an existing cluster when `dask_address` is given): links (a task per
dump, then per run of partitions), fetch (per host partition), extract (per WARC file, then per run of pages), filter
(per part), dedup (per step and partition), Wikipedia removal and the shards. A re-run after a crash keeps every
finished stage and part; a re-run of a finished build does nothing and says so.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.utilities.annotations import unmapped

from corpus import build
from corpus.buildlock import build_lock
from corpus.buildwarnings import empty_corpus_reason
from corpus.dedup import DedupConfig
from corpus.extract import METHODS as EXTRACT_METHODS
from corpus.extract import ExtractConfig
from corpus.files import fingerprints
from corpus.filters import FilterConfig
from corpus.shards import ShardConfig
from corpus.stages import Stage
from flows.hooks import crash_subflows


def _run_mapped(label: str, futures: list, sizes: list[int]) -> list:
    """Wait for mapped tasks (future i runs sizes[i] parts), logging progress in parts with their rate and updating a
    progress artifact; the results in the order of the futures."""
    logger = get_run_logger()
    start, results, parts_done = time.monotonic(), {}, 0
    index = {id(future): i for i, future in enumerate(futures)}
    artifact = create_progress_artifact(0.0, key=f"webtext-{label}-progress", description=f"{label} parts done")
    for future in as_completed(futures):
        i = index[id(future)]
        results[i] = future.result()
        parts_done += sizes[i]
        elapsed = time.monotonic() - start
        update_progress_artifact(artifact, 100.0 * parts_done / sum(sizes))
        logger.info(
            "%s: %d/%d parts done, %.2f parts/s", label, parts_done, sum(sizes), parts_done / max(elapsed, 1e-9)
        )
    return [results[i] for i in range(len(futures))]


def _corpus_logs_at_info() -> None:
    """The corpus library's progress lines (INFO) reach the run's logs: Prefect attaches its handlers to the library
    loggers (PREFECT_LOGGING_EXTRA_LOGGERS, infra/env.py) but leaves their level at the root's WARNING."""
    logging.getLogger("corpus").setLevel(logging.INFO)


def _run_parts(fn: Callable[..., Any], shared: tuple, parts: list) -> list:
    _corpus_logs_at_info()  # in the Dask worker's process
    return [fn(*shared, part) for part in parts]


def batches(parts: Sequence[Any], count: int) -> list[list]:
    """`parts` as at most `count` runs of consecutive parts, their sizes differing by one at most."""
    count = max(1, min(count, len(parts)))
    bounds = [len(parts) * i // count for i in range(count + 1)]
    return [list(parts[a:b]) for a, b in zip(bounds, bounds[1:])]


@dataclass(frozen=True)
class TaskMapper:
    """corpus.stages' mapper for a flow: the parts of a step as Prefect tasks on the flow's task runner (the Dask
    cluster), each running a run of consecutive parts, retried twice (a part finished before a retry is not run
    again). At most `tasks_per_step` tasks a step: a task costs about 0.2 CPU-s in the flow process and its worker,
    and the flow process holds each task's future, so a task per part would not scale to 100,000s of parts."""

    tasks_per_step: int

    def __call__(self, label: str, fn: Callable[..., Any], shared: tuple, parts: Sequence[Any]) -> list:
        runs = batches(parts, self.tasks_per_step)
        parts_task = task(_run_parts, name=label, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
        results = _run_mapped(label, parts_task.map(unmapped(fn), unmapped(shared), runs), [len(r) for r in runs])
        return [result for run in results for result in run]


@flow(name="webtext-stages", validate_parameters=False)
def build_stages(
    out_dir: Path, stages: list[Stage], config: build.BuildConfig, run_config: dict, tasks_per_step: int
) -> dict:
    """The stages of corpus.build.corpus_stages, each stage's parts mapped over the Dask cluster; returns the
    manifest."""
    return build.run_build(out_dir, stages, config, run_config, TaskMapper(tasks_per_step)).manifest


@dataclass(frozen=True)
class Cluster:
    """Where the parts run: an existing Dask cluster (`address`), or a local one of `n_workers` processes."""

    address: str | None = None
    n_workers: int | None = None
    tasks_per_step: int | None = None  # default: 4 a thread of the cluster, so that parts balance

    @property
    def local_workers(self) -> int:
        return self.n_workers or os.cpu_count() or 1

    def task_runner(self) -> Any:
        import dask
        from prefect_dask import DaskTaskRunner

        if self.address:
            # extraction starts child processes: start that cluster's workers with distributed.worker.daemon=False
            return DaskTaskRunner(address=self.address)
        # Extraction puts each page in a child process (to kill a stuck one): Dask workers must be allowed children.
        dask.config.set({"distributed.worker.daemon": False})
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": self.local_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",
            }
        )

    def max_tasks_per_step(self) -> int:
        if self.tasks_per_step:
            return self.tasks_per_step
        if not self.address:
            return 4 * self.local_workers
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            return 4 * max(1, sum(client.nthreads().values()))


@flow(name="webtext", on_crashed=[crash_subflows])
def webtext(
    dumps: list[str] | None = None,
    out_dir: str = "data/webtext",
    min_karma: int = 3,
    connect_to: dict[str, str] | None = None,
    allow_private_addresses: bool = False,
    warc_inputs: list[str] | None = None,
    val_fraction: float = 0.005,
    dask_address: str | None = None,
    cutoff: str | None = "2018-01-01",
    languages: list[str] | None = None,
    min_words: int = 128,
    dedup_threshold: float = 0.7,
    fetch_concurrency: int = 64,
    per_host: int = 2,
    min_delay_s: float = 1.0,
    fetch_deadline_s: float = 60.0,
    fetch_part_count: int = 8,
    pages_per_part: int = 128,
    dedup_partition_docs: int = 50_000,
    extract_timeout_s: float = 30.0,
    extractor: str = "combined",
    extract_lede: bool = False,
    n_workers: int | None = None,
    ca_file: str | None = None,
    tasks_per_step: int | None = None,
) -> dict:
    """Build the corpus in `out_dir`: `dumps` (paths or globs of Reddit submission dumps) for links; pages are
    fetched, or read from `warc_inputs` (paths or globs of WARC files) when given. Returns manifest.json's content.

    `connect_to` routes host names to addresses like curl's --connect-to ({"news.example.com:443": "10.0.0.5:8443"});
    `ca_file` adds CA certificates to trust (PEM); `n_workers` sizes the local Dask cluster (default: one per core);
    `fetch_part_count` splits the links by host into parts fetched in parallel, each with up to `fetch_concurrency`
    requests in flight (so up to parts in flight x `fetch_concurrency` in all); `dedup_partition_docs` sets the memory
    of each dedup part, not the result; `tasks_per_step` caps the Prefect tasks of a step (each runs a run of parts;
    default 4 per cluster thread). `extractor` is the measured rule ("combined") or one extractor alone (see
    corpus.extract.METHODS; "trafilatura" is the rule's first, fast mode, at about 0.7x the rule's CPU);
    `extract_lede=True` puts the headline and summary a page declares back above its text (off: article-body scope).
    """
    from corpus.fetch import FetchConfig
    from corpus.links import LinkConfig

    logging.getLogger("distributed").setLevel(logging.WARNING)
    _corpus_logs_at_info()
    if tasks_per_step is not None and tasks_per_step < 1:
        raise ValueError(f"webtext: tasks_per_step must be at least 1, got {tasks_per_step}")
    if extractor not in EXTRACT_METHODS:
        raise ValueError(f"webtext: extractor must be one of {', '.join(EXTRACT_METHODS)}, got {extractor!r}")
    out = Path(out_dir).resolve()
    dump_paths = build.resolve_inputs(dumps, "Reddit dump")
    warc_paths = build.resolve_inputs(warc_inputs, "WARC input")
    if not dump_paths and not warc_paths:
        raise ValueError("webtext needs `dumps` (Reddit submission dumps) or `warc_inputs` (WARC files), got neither")
    config = build.BuildConfig(
        # one page process a worker
        extract=ExtractConfig(method=extractor, lede=extract_lede, workers=1, timeout_s=extract_timeout_s),
        filter=FilterConfig(min_words=min_words, languages=tuple(languages or ())),
        dedup=DedupConfig(threshold=dedup_threshold),
        shards=ShardConfig(val_fraction=val_fraction),
        pages_per_part=pages_per_part,
        dedup_partition_docs=dedup_partition_docs,
    )
    link_config = LinkConfig(min_karma=min_karma, cutoff=cutoff)
    fetch_config = FetchConfig(
        concurrency=fetch_concurrency,
        per_host=per_host,
        min_delay_s=min_delay_s,
        connect_to=dict(connect_to or {}),
        allow_private_addresses=allow_private_addresses,
        ca_file=ca_file,
        deadline_s=fetch_deadline_s,
    )
    run_config = build.config_summary(
        config,
        link_config if dump_paths else None,
        dumps=[str(p) for p in dump_paths],
        warc_inputs=[str(p) for p in warc_paths],
    )
    request_key = build.stage_key("request", fingerprints(dump_paths), fingerprints(warc_paths), run_config)
    with build_lock(out):  # the whole run: a second build in this folder is refused at once
        manifest = _build(
            out,
            request_key,
            dump_paths,
            warc_paths,
            config,
            link_config,
            fetch_config,
            run_config,
            Cluster(dask_address, n_workers, tasks_per_step),
            fetch_part_count,
        )
    _fail_if_empty(manifest)
    return manifest


def _build(
    out: Path,
    request_key: str,
    dump_paths: list[Path],
    warc_paths: list[Path],
    config: build.BuildConfig,
    link_config: Any,
    fetch_config: Any,
    run_config: dict,
    cluster: Cluster,
    fetch_part_count: int,
) -> dict:
    logger = get_run_logger()
    done = build.finished_build(out, request_key)
    if done is not None:
        logger.info(
            "webtext: %s is already built from these inputs and settings (%d documents); nothing to do",
            out,
            done["totals"]["documents"],
        )
        _publish(out, done)  # so this run, too, shows the corpus it stands for
        return done

    stages = build.corpus_stages(
        out, config, dump_paths, link_config, warc_paths or None, fetch_config, fetch_part_count
    )
    run_stages = build_stages.with_options(task_runner=cluster.task_runner())
    manifest = run_stages(out, stages, config, run_config, cluster.max_tasks_per_step())
    build.record_request(out, request_key)
    _publish(out, manifest)
    logger.info(
        "webtext: %d documents in %d shards under %s",
        manifest["totals"]["documents"],
        len(manifest["shards"]),
        out / "shards",
    )
    return manifest


class EmptyCorpusError(RuntimeError):
    """The build finished with no documents."""


def _fail_if_empty(manifest: dict) -> None:
    """Log the build's warnings in the run; fail a run that made no documents, after everything is written.

    Failed, not Completed: an empty corpus is nothing to train on, and a run that says Completed would let that go
    unnoticed (and let a following training run start). Nothing is lost: every stage's output, the manifest, the card
    and the artifacts are kept, and a re-run with other settings reuses each stage whose inputs did not change."""
    logger = get_run_logger()
    for warning in manifest.get("warnings", []):
        logger.warning("webtext: %s", warning)
    if manifest["totals"]["documents"] == 0:
        reason = empty_corpus_reason(manifest["stages"]) or "the corpus is empty"
        raise EmptyCorpusError(
            f"webtext: {reason}. Every stage's output is kept (see manifest.json and the dataset "
            f"card); change the inputs or settings and run again."
        )


def _publish(out: Path, manifest: dict) -> None:
    """The build's artifacts: fetch outcomes (when pages were fetched), per-stage counts and the dataset card."""
    fetch_stage = next((row for row in manifest["stages"] if row["stage"] == "fetch"), None)
    if fetch_stage is not None:
        outcomes = {"ok": fetch_stage["out"], **fetch_stage["dropped"]}
        create_table_artifact(
            key="webtext-fetch-outcomes",
            description="Fetch outcome of every link",
            table=[{"outcome": k, "urls": v} for k, v in sorted(outcomes.items())],
        )
    create_table_artifact(
        key="webtext-stage-counts",
        description="Documents in and out of every stage",
        table=[
            {
                "stage": r["stage"],
                "in": r["in"],
                "out": r["out"],
                "dropped": ", ".join(f"{k}: {v}" for k, v in r["dropped"].items()),
            }
            for r in manifest["stages"]
        ],
    )
    create_markdown_artifact(
        key="webtext-dataset-card",
        description="Dataset card (shards/README.md)",
        markdown=(out / "shards" / "README.md").read_text(),
    )

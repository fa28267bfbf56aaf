"""Flow `webtext` (deployment `webtext/build-corpus`): Reddit dumps -> links -> fetch -> extract -> filter -> dedup ->
Wikipedia removal -> Parquet shards.

The stages are the resumable functions of `corpus.build`; this file adds Prefect tasks, retries, progress logs and
artifacts. Every stage that grows with the corpus is mapped over its parts on a Dask cluster (prefect-dask's
DaskTaskRunner: a local cluster of worker processes by default, an existing cluster when `dask_address` is given):
links (a task per dump, then per run of partitions), fetch (per host partition), extract and filter (per part) and
dedup (per step and partition); the flow itself only plans, maps and finishes. A re-run after a crash
keeps every finished stage and part; a re-run of a finished build does nothing and says so.
"""

from __future__ import annotations

import logging
import os
import time
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

from corpus import build, dedup_parts, fetch_parts, links
from corpus.buildlock import build_lock
from corpus.buildwarnings import empty_corpus_reason
from corpus.dedup import DedupConfig
from corpus.extract import ExtractConfig
from corpus.files import fingerprints
from corpus.filters import FilterConfig
from corpus.reddit import DumpReadError
from corpus.shards import ShardConfig
from flows.hooks import crash_subflows


@task(name="links-read", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def read_dump_task(plan: links.LinksPlan, index: int) -> dict:
    logger = get_run_logger()

    def report(path: Path, submissions: int, candidates: int) -> None:
        logger.info("links: %s: %d submissions read, %d candidate submissions", path.name, submissions, candidates)

    try:
        marker = links.read_dump(plan, index, report)
    except DumpReadError as error:  # not retried, and the other dumps are read first: one run finds every bad dump
        logger.error("links: %s", error)
        return {"error": str(error)}
    return {"submissions": marker["submissions"], "rows": marker["rows"]}


@task(name="links-aggregate", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def aggregate_links_task(plan: links.LinksPlan, units: list[tuple[int, int]], index: int) -> dict:
    return links.aggregate_unit(plan, units, index)


@task(name="fetch", cache_policy=NO_CACHE)
def fetch_part_task(out_dir: Path, part: int, fetch_config: Any) -> dict:
    logger = get_run_logger()

    def progress(p: dict) -> None:
        logger.info("fetch part %d: %d URLs done, %.1f URLs/s, outcomes %s", part, p["done"], p["rate"], p["outcomes"])

    return fetch_parts.fetch_part(out_dir / "fetch", part, fetch_config, progress)


@task(name="plan-extract", cache_policy=NO_CACHE)
def plan_task(out_dir: Path, warcs: list[Path], upstream: str, config: build.BuildConfig) -> tuple[str, list]:
    return build.plan_extract(out_dir, warcs, upstream, config)


@task(name="extract", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def extract_task(out_dir: Path, unit: build.ExtractUnit, config: ExtractConfig) -> dict[str, int]:
    return build.extract_unit(out_dir, unit, config)


@task(name="filter", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def filter_task(out_dir: Path, part: Path, links_path: Path | None, config: build.BuildConfig) -> dict:
    return build.filter_part(out_dir, part, links_path, config)


@task(name="dedup", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def dedup_part_task(plan: dedup_parts.DedupPlan, step: str, index: int) -> dict:
    return dedup_parts.run_part(plan, step, index)


@task(name="wikipedia", cache_policy=NO_CACHE)
def wikipedia_task(out_dir: Path, upstream: str) -> tuple[str, dict]:
    return build.run_wikipedia(out_dir, upstream)


@task(name="shards", cache_policy=NO_CACHE)
def shards_task(
    out_dir: Path, upstream: str, config: build.BuildConfig, rows: list[dict], run_config: dict
) -> tuple[dict, bool]:
    return build.run_shards(out_dir, upstream, config, rows, run_config)


def _run_mapped(label: str, futures: list) -> list:
    """Wait for mapped tasks, logging progress with counts and rate and updating a progress artifact."""
    logger = get_run_logger()
    start, results = time.monotonic(), []
    artifact = create_progress_artifact(0.0, key=f"webtext-{label}-progress", description=f"{label} parts done")
    for n, future in enumerate(as_completed(futures), 1):
        results.append(future.result())
        elapsed = time.monotonic() - start
        update_progress_artifact(artifact, 100.0 * n / len(futures))
        logger.info("%s: %d/%d parts done, %.2f parts/s", label, n, len(futures), n / max(elapsed, 1e-9))
    return results


@flow(name="webtext-stages", validate_parameters=False)
def build_stages(
    out_dir: Path,
    dumps: list[Path],
    link_config: Any,
    warc_inputs: list[Path],
    config: build.BuildConfig,
    run_config: dict,
    fetch_config: Any = None,
    fetch_part_count: int = 1,
) -> dict:
    """[Links -> fetch ->] extract -> filter -> dedup -> wikipedia -> shards, each stage's parts mapped over the Dask
    cluster; with `warc_inputs` the pages come from those files instead of being fetched."""
    logger = get_run_logger()
    stage_rows: list[dict] = []
    links_path, links_key = None, None
    if dumps:
        links_key = build.links_key(dumps, link_config)
        link_stats = build.completed(out_dir / "links", links_key)
        if link_stats is None:
            plan = build.plan_links(out_dir, links_key, dumps, link_config)
            read = _run_mapped("links-read", read_dump_task.map(unmapped(plan), plan.parts))
            if unreadable := [DumpReadError(r["error"]) for r in read if "error" in r]:
                raise links.unreadable_dumps_error(plan, unreadable)
            logger.info("links: %d dumps read, %d submissions", len(read), sum(r["submissions"] for r in read))
            link_units = links.plan_aggregation(plan)
            counts = _run_mapped(
                "links-aggregate",
                aggregate_links_task.map(unmapped(plan), unmapped(link_units), range(len(link_units))),
            )
            link_stats = build.finish_links(out_dir, links_key, plan, counts)
        logger.info(
            "links: %d submissions -> %d links (dropped: %s)",
            link_stats["submissions"],
            link_stats["kept"],
            link_stats["dropped"],
        )
        links_path = out_dir / "links" / "links.parquet"
        stage_rows.append(
            {
                "stage": "links",
                "in": link_stats["submissions"],
                "out": link_stats["kept"],
                "dropped": link_stats["dropped"],
            }
        )
    if warc_inputs:
        warcs, upstream = warc_inputs, build.warc_inputs_key(links_key, warc_inputs)
    else:
        fetch_key = build.fetch_key(links_key)
        fetch_stats = build.completed(out_dir / "fetch", fetch_key)
        if fetch_stats is None:
            parts = build.plan_fetch(out_dir, fetch_key, fetch_part_count)
            logger.info("fetch: %d parts by host, up to %d requests each", parts, fetch_config.concurrency)
            _run_mapped("fetch", fetch_part_task.map(out_dir, range(parts), unmapped(fetch_config)))
            fetch_stats = build.finish_fetch(out_dir, fetch_key)
        logger.info(
            "fetch: %d URLs -> %d pages; outcomes %s", fetch_stats["in"], fetch_stats["out"], fetch_stats["outcomes"]
        )
        stage_rows.append(build.stage_row("fetch", fetch_stats))
        warcs, upstream = build.fetched_warcs(out_dir), fetch_key
    ekey, units = plan_task(out_dir, warcs, upstream, config)
    if units:
        logger.info("extract: %d parts of up to %d pages to do", len(units), config.pages_per_part)
        start = time.monotonic()
        outcomes = _run_mapped("extract", extract_task.map(out_dir, units, config.extract))
        pages = sum(sum(o.values()) for o in outcomes)
        logger.info(
            "extract: %d pages in %.1f s (%.1f pages/s)",
            pages,
            time.monotonic() - start,
            pages / max(time.monotonic() - start, 1e-9),
        )
    extract_stats = build.finish_extract(out_dir, ekey)
    stage_rows.append(build.stage_row("extract", extract_stats))

    fkey = build.filter_key(ekey, links_key, config)
    filter_stats = build.completed(out_dir / "filter", fkey)
    if filter_stats is None:
        build.begin(out_dir / "filter", fkey)
        parts = build.extract_parts(out_dir)
        results = _run_mapped("filter", filter_task.map(out_dir, parts, links_path, config))
        filter_stats = build.finish_filter(out_dir, fkey, results)
    stage_rows.append(build.stage_row("filter", filter_stats))

    dkey = build.dedup_key(fkey, config.dedup)
    dedup_stats = build.completed(out_dir / "dedup", dkey)
    if dedup_stats is None:
        plan = build.plan_dedup(out_dir, dkey, config.dedup, config.dedup_partition_docs)
        logger.info("dedup: %d partitions of up to %d documents", plan.partitions, config.dedup_partition_docs)
        for step in dedup_parts.STEPS:  # each step's parts in parallel; a step starts when the one before is done
            _run_mapped(f"dedup-{step}", dedup_part_task.map(unmapped(plan), step, range(plan.count(step))))
        dedup_stats = build.finish_dedup(out_dir, dkey, plan)
    stage_rows.append(build.stage_row("dedup", dedup_stats))
    wkey, wiki_stats = wikipedia_task(out_dir, dkey)
    stage_rows.append(build.stage_row("wikipedia", wiki_stats))
    manifest, _ = shards_task(out_dir, wkey, config, stage_rows, run_config)
    return manifest


def _task_runner(dask_address: str | None, n_workers: int | None) -> Any:
    import dask
    from prefect_dask import DaskTaskRunner

    if dask_address:
        # extraction starts child processes: start that cluster's workers with distributed.worker.daemon=False
        return DaskTaskRunner(address=dask_address)
    # Extraction puts each page in a child process (to kill a stuck one): Dask workers must be allowed children.
    dask.config.set({"distributed.worker.daemon": False})
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": n_workers or os.cpu_count() or 1,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",
        }
    )


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
    n_workers: int | None = None,
    ca_file: str | None = None,
) -> dict:
    """Build the corpus in `out_dir`: `dumps` (paths or globs of Reddit submission dumps) for links; pages are
    fetched, or read from `warc_inputs` (paths or globs of WARC files) when given. Returns manifest.json's content.

    `connect_to` routes host names to addresses like curl's --connect-to ({"news.example.com:443": "10.0.0.5:8443"});
    `ca_file` adds CA certificates to trust (PEM); `n_workers` sizes the local Dask cluster (default: one per core);
    `fetch_part_count` splits the links by host into parts fetched in parallel, each with up to `fetch_concurrency`
    requests in flight (so up to parts in flight x `fetch_concurrency` in all); `dedup_partition_docs` sets the memory
    of each dedup part, not the result.
    """
    from corpus.fetch import FetchConfig
    from corpus.links import LinkConfig

    logging.getLogger("distributed").setLevel(logging.WARNING)
    out = Path(out_dir).resolve()
    dump_paths = build.resolve_inputs(dumps, "Reddit dump")
    warc_paths = build.resolve_inputs(warc_inputs, "WARC input")
    if not dump_paths and not warc_paths:
        raise ValueError("webtext needs `dumps` (Reddit submission dumps) or `warc_inputs` (WARC files), got neither")
    config = build.BuildConfig(
        extract=ExtractConfig(workers=1, timeout_s=extract_timeout_s),  # one page process per Dask worker
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
            dask_address,
            n_workers,
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
    dask_address: str | None,
    n_workers: int | None,
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

    stages = build_stages.with_options(task_runner=_task_runner(dask_address, n_workers))
    manifest = stages(out, dump_paths, link_config, warc_paths, config, run_config, fetch_config, fetch_part_count)
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

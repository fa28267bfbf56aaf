"""Flow `gpt2` (deployment `gpt2/evaluate`): zero-shot evaluation of a checkpoint on the paper's benchmarks.

check inputs -> load checkpoint -> one task run per benchmark -> overlap with the training corpus (when given)
-> results.md / results.json / results.svg next to the checkpoint -> table and markdown artifacts.

A benchmark's result is persisted (Prefect result storage under PREFECT_HOME) and reused by a later run with the same
model files, data, limit and evaluation code: an evaluation that crashed resumes at the first unfinished task.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from evaluation import run as evaluation
from evaluation.lm import Scorer


def _benchmark_key(context: Any, parameters: dict[str, Any]) -> str:
    return evaluation.task_cache_key(parameters["checkpoint"], parameters["name"], parameters["path"],
                                     parameters["limit"])


# Each task's result is persisted under a key of the model files, data, limit and evaluation code, so a re-run after a
# crash (or with more tasks) reuses the finished ones; any change to those computes it again.
@task(cache_key_fn=_benchmark_key, persist_result=True)
def run_benchmark(checkpoint: str, name: str, path: str, scorer: Scorer, tokenizer: Any,
                  limit: int | None) -> tuple[dict, Any]:
    metrics, detail = evaluation.run_task(name, Path(path), scorer, tokenizer, limit)
    get_run_logger().info("%s: %s", name, {k: round(v, 4) for k, v in metrics.items()})
    return metrics, detail


@task(cache_policy=NO_CACHE)
def train_test_overlap(corpus: str, paths: dict[str, Path], limit: int | None, lambada_result: Any) -> dict:
    return evaluation.overlap_report(corpus, paths, limit, lambada_result)


def _artifact_key(checkpoint: str) -> str:
    return "eval-" + (re.sub(r"[^a-z0-9-]+", "-", Path(checkpoint).name.lower()).strip("-") or "checkpoint")


@flow(name="gpt2", log_prints=True)
def evaluate(checkpoint: str | Path, tasks: list[str] | None = None, data_dir: str | Path | None = None,
             task_paths: dict[str, str] | None = None, batch_size: int = 8, device: str = "auto",
             limit: int | None = None, corpus: str | Path | None = None) -> dict:
    """Evaluate `checkpoint` (a Hugging Face GPT-2 directory with tokenizer files, ours or OpenAI's).

    tasks: names from evaluation.run.TASKS plus "webtext-val"; default: every task whose data is found under
    data_dir (task_paths overrides single paths), plus webtext-val when a corpus is given. corpus: a webtext corpus
    folder, for webtext-val and the 8-gram overlap analysis. limit: examples per task, for quick runs.
    """
    logger = get_run_logger()
    checkpoint, corpus = str(checkpoint), None if corpus is None else str(corpus)
    tasks = list(tasks) if tasks else evaluation.default_tasks(data_dir, task_paths, corpus)
    if not tasks:
        raise ValueError(f"no task to run: no benchmark data under {data_dir} and no corpus given")
    paths = evaluation.check_inputs(tasks, data_dir, task_paths, corpus)
    model, tokenizer, n_params = evaluation.load_checkpoint(checkpoint, device)
    scorer = Scorer(model, batch_size=batch_size, device=next(model.parameters()).device)
    logger.info("evaluating %s (%s parameters) on %s, device %s", checkpoint, f"{n_params:,}", tasks, scorer.device)

    results: dict[str, dict[str, float]] = {}
    lambada_result = None
    for name in tasks:
        results[name], detail = run_benchmark.with_options(name=f"eval-{name}")(
            checkpoint, name, str(paths[name]), scorer, tokenizer, limit)
        lambada_result = detail or lambada_result
    if corpus is not None:
        results["overlap"] = train_test_overlap(corpus, paths, limit, lambada_result)

    published = evaluation.publish(checkpoint, results, n_params, {
        "tasks": tasks, "limit": limit, "batch_size": batch_size, "device": str(scorer.device)})
    key = _artifact_key(checkpoint)
    create_table_artifact(key=key, table=published["rows"],
                          description=f"Zero-shot results of {checkpoint} against GPT-2 in the paper")
    create_markdown_artifact(key=key + "-report", markdown=published["markdown"],
                             description=f"Zero-shot results of {checkpoint}")
    return {k: v for k, v in published.items() if k != "markdown"}

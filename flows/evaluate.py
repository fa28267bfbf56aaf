"""Flow `gpt2` (deployment `gpt2/evaluate`): zero-shot evaluation of a checkpoint on the paper's benchmarks.

check inputs -> load checkpoint -> one task run per benchmark -> overlap with the training corpus (when given)
-> results.md / results.json / results.svg next to the checkpoint -> table and markdown artifacts.

Each benchmark runs under each named protocol that covers it (`paper`, `lm-eval`; evaluation.protocol). A result is
persisted (Prefect result storage under PREFECT_HOME) and reused by a later run with the same model files, data,
limit, protocol, options and evaluation code: an evaluation that crashed resumes at the first unfinished task.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from evaluation import run as eval_run
from evaluation.lm import Scorer
from evaluation.protocol import PAPER, Protocol, resolve_protocols


def _benchmark_key(context: Any, parameters: dict[str, Any]) -> str:
    protocol: Protocol = parameters["protocol"]
    return eval_run.task_cache_key(
        parameters["checkpoint"],
        parameters["name"],
        parameters["path"],
        parameters["limit"],
        protocol.name,
        protocol.options_for(parameters["name"]),
    )


# Each task's result is persisted under a key of the model files, data, limit, protocol, options and evaluation code,
# so a re-run after a crash (or with more tasks) reuses the finished ones; any change to those computes it again.
@task(cache_key_fn=_benchmark_key, persist_result=True)
def run_benchmark(
    checkpoint: str, name: str, path: str, scorer: Scorer, tokenizer: Any, limit: int | None, protocol: Protocol
) -> tuple[dict, Any]:
    result, detail = eval_run.run_task(name, Path(path), scorer, tokenizer, limit, protocol)
    get_run_logger().info(
        "%s [%s]: %s", name, result["protocol"], {k: round(v, 4) for k, v in result["metrics"].items()}
    )
    return result, detail


@task(cache_policy=NO_CACHE)
def train_test_overlap(corpus: str, paths: dict[str, Path], limit: int | None, lambada_result: Any) -> dict:
    return eval_run.overlap_report(corpus, paths, limit, lambada_result)


def _artifact_key(checkpoint: str) -> str:
    return "eval-" + (re.sub(r"[^a-z0-9-]+", "-", Path(checkpoint).name.lower()).strip("-") or "checkpoint")


@flow(name="gpt2", log_prints=True)
def evaluate(
    checkpoint: str | Path,
    tasks: list[str] | None = None,
    data_dir: str | Path | None = None,
    task_paths: dict[str, str] | None = None,
    batch_size: int = 8,
    device: str = "auto",
    limit: int | None = None,
    corpus: str | Path | None = None,
    protocol: str | list[str] = PAPER,
    normalize_quotes: bool | None = None,
    eot_prefix: bool | None = None,
    stride: int | None = None,
) -> dict:
    """Evaluate `checkpoint` (a Hugging Face GPT-2 directory with tokenizer files, ours or OpenAI's).

    tasks: names from evaluation.run.TASKS; default: every task whose data is found under data_dir (task_paths
    overrides single paths), plus webtext-val when a corpus is given. corpus: a webtext corpus
    folder, for webtext-val and the 8-gram overlap analysis. limit: examples per task, for quick runs.
    protocol: "paper", "lm-eval" or both as a list. normalize_quotes, eot_prefix, stride: override the protocols'
    defaults (None keeps them); a result records the options its task used.
    """
    logger = get_run_logger()
    checkpoint, corpus = str(checkpoint), None if corpus is None else str(corpus)
    protocols = resolve_protocols(protocol, normalize_quotes, eot_prefix, stride)
    tasks = list(tasks) if tasks else eval_run.default_tasks(data_dir, task_paths, corpus, protocols)
    if not tasks:
        raise ValueError(f"no task to run: no benchmark data under {data_dir} and no corpus given")
    runs = eval_run.plan_runs(tasks, protocols)
    paths = eval_run.check_inputs(tasks, data_dir, task_paths, corpus)
    model, tokenizer, n_params = eval_run.load_checkpoint(checkpoint, device)
    scorer = Scorer(model, batch_size=batch_size, device=next(model.parameters()).device)
    eval_run.check_stride(protocols, scorer.block_size)
    logger.info(
        "evaluating %s (%s parameters) on %s under %s, device %s",
        checkpoint,
        f"{n_params:,}",
        tasks,
        [p.name for p in protocols],
        scorer.device,
    )

    results: dict[str, dict[str, Any]] = {}
    lambada_result = None
    for name, proto in runs:
        result, detail = run_benchmark.with_options(name=f"eval-{name}-{proto.name}")(
            checkpoint, name, str(paths[name]), scorer, tokenizer, limit, proto
        )
        results.setdefault(name, {})[proto.name] = result
        if detail is not None and proto.name == PAPER:  # the overlap analysis reads the paper's LAMBADA metrics
            lambada_result = detail
    if corpus is not None:
        results["overlap"] = {PAPER: eval_run.overlap_result(train_test_overlap(corpus, paths, limit, lambada_result))}

    published = eval_run.publish(
        checkpoint, results, n_params, eval_run.run_meta(tasks, protocols, limit, batch_size, scorer)
    )
    key = _artifact_key(checkpoint)
    create_table_artifact(
        key=key, table=published["rows"], description=f"Zero-shot results of {checkpoint} against GPT-2 in the paper"
    )
    create_markdown_artifact(
        key=key + "-report", markdown=published["markdown"], description=f"Zero-shot results of {checkpoint}"
    )
    return {k: v for k, v in published.items() if k != "markdown"}

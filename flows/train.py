"""Flow `gpt2` (deployment `gpt2/train`): corpus shards -> tokenizer -> token shards -> Lightning training -> HF
export -> artifacts -> `gpt2/evaluate` on the result.

    tokenizer      train one on the corpus (tokenizer="train"), or load GPT-2's (tokenizer="gpt2") or a directory
    token shards   tokenization.encode.encode_corpus; cached by a manifest, so a re-run skips finished work
    train          modeling.train in a child process (modeling.launch); resume=True continues from the newest
                   checkpoint
    artifacts      loss-curve PNG in a markdown artifact, a summary table, a progress bar while training
    evaluate       flows.evaluate.evaluate as a subflow
"""

from __future__ import annotations

import base64
import dataclasses
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

from evaluation.protocol import resolve_protocols
from flows.hooks import crash_subflows
from modeling.launch import train_in_subprocess
from modeling.train import TrainConfig, TrainResult, resume_checkpoint
from tokenization.bpe import BPETokenizer, load_gpt2, load_tokenizer, train_or_reuse_bpe
from tokenization.encode import encode_corpus


@task(cache_policy=NO_CACHE)
def make_tokenizer(
    corpus: str, tokenizer: str, directory: Path, gpt2_bpe_dir: str | None, vocab_size: int
) -> tuple[BPETokenizer, Path]:
    """The tokenizer and the directory of its files (saved with the exported model)."""
    logger = get_run_logger()
    if tokenizer == "gpt2":
        if gpt2_bpe_dir is None:
            raise ValueError(
                "tokenizer='gpt2' needs gpt2_bpe_dir: a directory holding GPT-2's encoder.json and "
                "vocab.bpe (nothing is downloaded)"
            )
        return load_gpt2(Path(gpt2_bpe_dir) / "encoder.json", Path(gpt2_bpe_dir) / "vocab.bpe"), Path(gpt2_bpe_dir)
    if tokenizer != "train":
        return load_tokenizer(tokenizer), Path(tokenizer)
    trained, reused = train_or_reuse_bpe(corpus, directory, vocab_size)
    logger.info(
        "%s the %d-token BPE tokenizer trained on %s (%s)",
        "reusing" if reused else "trained",
        trained.n_vocab,
        corpus,
        directory,
    )
    return trained, directory


@task(cache_policy=NO_CACHE)
def make_token_shards(corpus: str, tokenizer: BPETokenizer, tokens_dir: Path) -> dict[str, Any]:
    summary = encode_corpus(corpus, tokenizer, tokens_dir)
    get_run_logger().info("token shards in %s: %s", tokens_dir, summary)
    return summary


@task(cache_policy=NO_CACHE)
def fit(config: TrainConfig, total_steps: int) -> TrainResult:
    """Train in a child process (`python -m modeling.launch`): Lightning's DDP re-runs that command for its other
    ranks, and a crash there is reported here with the training's last output."""
    logger = get_run_logger()
    progress = create_progress_artifact(
        progress=0.0, key="gpt2-train-progress", description=f"training {config.model} in {config.out_dir}"
    )

    def on_step(metrics: dict[str, float]) -> None:
        logger.info(
            "step %d/%d %s",
            metrics["step"],
            total_steps,
            " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step"),
        )
        if "train/loss" in metrics:
            update_progress_artifact(progress, progress=100.0 * metrics["step"] / total_steps)

    result = train_in_subprocess(config, on_step=on_step, on_output=logger.info)
    update_progress_artifact(progress, progress=100.0)
    return result


def publish(result: TrainResult, config: TrainConfig) -> None:
    png = Path(result.loss_curve).read_bytes()
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode()
    create_markdown_artifact(
        key="gpt2-train-loss-curve",
        markdown=f"# Loss curve: {config.model}\n\n![train and val loss by step]({data_uri})\n\n"
        f"Run directory: `{result.out_dir}`; checkpoint export: `{result.export_dir}`\n",
        description="train and val loss by optimizer step",
    )
    rows = [
        {"item": "model", "value": config.model},
        {"item": "parameters", "value": f"{result.params:,}"},
        {"item": "steps", "value": result.steps},
        {"item": "tokens", "value": f"{result.tokens:,}"},
        {"item": "batch tokens", "value": config.batch_tokens},
        {"item": "final train loss", "value": result.final_train_loss},
        {"item": "final val loss", "value": result.final_val_loss},
        {"item": "tokens/s", "value": round(result.tokens_per_s or 0.0)},
        {"item": "MFU", "value": result.mfu},
        {"item": "export", "value": result.export_dir},
    ]
    create_table_artifact(key="gpt2-train-summary", table=rows, description="what the training run did")


@flow(name="gpt2", log_prints=True, on_crashed=[crash_subflows])
def train(
    corpus: str,
    tokenizer: str = "train",
    model: str = "mini",
    max_steps: int | None = None,
    max_tokens: int | None = None,
    batch_tokens: int = 512 * 1024,
    micro_batch: int = 8,
    lr: float = 6e-4,
    out_dir: str | None = None,
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    resume: bool | str = False,
    block_size: int | None = None,
    val_interval: int = 250,
    checkpoint_interval: int = 500,
    log_interval: int = 10,
    tokenizer_vocab_size: int = 50257,
    gpt2_bpe_dir: str | None = None,
    run_eval: bool = True,
    eval_tasks: list[str] | None = None,
    eval_data_dir: str | None = None,
    eval_limit: int | None = None,
    eval_protocol: str | list[str] = "paper",
) -> dict[str, Any]:
    """Train GPT-2 on a build-corpus output directory and evaluate the result.

    tokenizer: "train" (BPE trained on the corpus' train split), "gpt2" (GPT-2's files from gpt2_bpe_dir) or a
    tokenizer directory. out_dir: default <corpus>-<model> beside the corpus. Give max_steps or max_tokens.
    resume: True continues from the newest readable checkpoint in out_dir/checkpoints (exactly) and fails when there
    is none; "auto" does the same or starts from step 0; or give a checkpoint path.
    eval_protocol: the evaluation's protocol(s), "paper" and/or "lm-eval" (flows.evaluate).
    """
    resolve_protocols(eval_protocol)  # a misspelt protocol fails here, not after training
    corpus_dir = Path(corpus)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus directory {corpus_dir} does not exist (expected a build-corpus output)")
    if not list((corpus_dir / "shards").glob("train-*.parquet")):
        raise FileNotFoundError(f"corpus {corpus_dir} has no training shards (shards/train-*.parquet)")
    run_dir = Path(out_dir) if out_dir else corpus_dir.with_name(f"{corpus_dir.name}-{model}")
    tokens_dir = run_dir / "tokens"
    config = TrainConfig(  # checks the model name, step budget and batch divisibility before any work
        tokens_dir=str(tokens_dir),
        out_dir=str(run_dir),
        model=model,
        block_size=block_size,
        max_steps=max_steps,
        max_tokens=max_tokens,
        batch_tokens=batch_tokens,
        micro_batch=micro_batch,
        lr=lr,
        val_interval=val_interval,
        checkpoint_interval=checkpoint_interval,
        log_interval=log_interval,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        compile=compile,
        resume=resume,
    )
    resume_checkpoint(config, verify=False)  # resume=True with no checkpoint fails now, not after tokenizing

    bpe, bpe_dir = make_tokenizer(corpus, tokenizer, run_dir / "tokenizer", gpt2_bpe_dir, tokenizer_vocab_size)
    make_token_shards(corpus, bpe, tokens_dir)
    config = dataclasses.replace(config, vocab_size=bpe.n_vocab, tokenizer_dir=str(bpe_dir))
    result = fit(config, config.total_steps)
    publish(result, config)

    summary: dict[str, Any] = {"train": result.to_dict()}
    if run_eval:
        from flows.evaluate import evaluate  # the evaluation flow, run as a subflow

        summary["evaluate"] = evaluate(
            checkpoint=result.export_dir,
            tasks=eval_tasks,
            data_dir=eval_data_dir,
            limit=eval_limit,
            corpus=corpus,
            protocol=eval_protocol,
        )
    return summary

"""Library entry: evaluate a checkpoint directory zero-shot on the paper's benchmarks and write the report.

A checkpoint directory holds Hugging Face GPT-2 files (config.json + model.safetensors, ours or OpenAI's) and the
tokenizer files; the model is loaded with `modeling.hf.from_pretrained`, the tokenizer with
`tokenization.bpe.load_tokenizer`. Task data is looked up under `data_dir` at the paths in `TASKS` (the layout of
the published archives) unless `task_paths` names a path for the task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corpus.files import fingerprints
from evaluation import lambada as lambada_task
from evaluation import overlap as overlap_lib
from evaluation.cbt import evaluate_cbt, read_cbt
from evaluation.coqa import evaluate_coqa, read_coqa
from evaluation.language_modeling import LM_TASKS, evaluate_lm_task, evaluate_webtext_val, read_webtext_val
from evaluation.lm import Scorer, Tokenizer
from evaluation.nq import evaluate_nq, read_nq
from evaluation.protocol import LM_EVAL_TASKS, PAPER, Protocol, resolve_protocols, supports
from evaluation.report import write_report
from evaluation.summarization import evaluate_summarization, read_cnndm
from evaluation.translation import evaluate_translation, read_pairs
from evaluation.wsc import evaluate_wsc, read_wsc

log = logging.getLogger(__name__)

WEBTEXT_VAL = "webtext-val"


def _must_exist(name: str, path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"{name}: expected {path}; nothing is downloaded at run time. "
            f"Pass task_paths={{{name!r}: ...}} or put the published file there"
        )


def _webtext_val_readable(corpus: Path) -> None:
    read_webtext_val(corpus, limit=1)  # raises naming the corpus when it has no validation shards


@dataclass(frozen=True)
class TaskSpec:
    default_path: str | None  # relative to data_dir; None: the task reads the `corpus` folder (webtext-val)
    run: Callable[[Path, Scorer, Tokenizer, int | None, Protocol], dict[str, float]]  # paper-only tasks ignore it
    texts: Callable[[Path, int | None], list[str]]  # the test texts, for the overlap analysis
    check: Callable[[str, Path], None] = _must_exist  # before any work: the data is there and readable
    key_data: Callable[[Path], Path] = lambda path: path  # the files whose identity is part of the result key


def _lm_spec(name: str) -> TaskSpec:
    task = LM_TASKS[name]
    return TaskSpec(
        task.default_path,
        lambda p, s, t, n, proto: evaluate_lm_task(
            task,
            p,
            s,
            t,
            n,
            proto.name,
            proto.stride,
            overlap_stride=s.block_size // 2 if proto.name == PAPER else None,
        ),
        lambda p, n: task.read(Path(p), n, False).documents,
    )


def _translation_spec(source: str, target: str) -> TaskSpec:
    return TaskSpec(
        "wmt14-newstest2014-fren",
        lambda p, s, t, n, proto: evaluate_translation(p, source, target, s, t, n),
        lambda p, n: [a + "\n" + b for a, b in read_pairs(Path(p), source, target)[:n]],
    )


def _paper_only(
    run: Callable[[Path, Scorer, Tokenizer, int | None], dict[str, float]],
) -> Callable[[Path, Scorer, Tokenizer, int | None, Protocol], dict[str, float]]:
    return lambda p, s, t, n, proto: run(p, s, t, n)


TASKS: dict[str, TaskSpec] = {
    **{name: _lm_spec(name) for name in LM_TASKS},
    "lambada": TaskSpec(
        "lambada/lambada_test.jsonl",
        lambda p, s, t, n, proto: (
            lambada_task.evaluate_lambada(p, s, t, n, proto.name, proto.normalize_quotes, proto.eot_prefix).metrics
        ),
        lambda p, n: [x.context + " " + x.target for x in lambada_task.read_lambada(Path(p), n)],
    ),
    "cbt-cn": TaskSpec(
        "cbt/cbtest_CN_valid_2000ex.txt",
        _paper_only(evaluate_cbt),
        lambda p, n: [q.context + " " + q.question for q in read_cbt(Path(p), n)],
    ),
    "cbt-ne": TaskSpec(
        "cbt/cbtest_NE_valid_2000ex.txt",
        _paper_only(evaluate_cbt),
        lambda p, n: [q.context + " " + q.question for q in read_cbt(Path(p), n)],
    ),
    "wsc273": TaskSpec(
        "wsc/WSCollection.xml",
        _paper_only(evaluate_wsc),
        lambda p, n: [f"{s.before} {s.pronoun} {s.after}" for s in read_wsc(Path(p), n)],
    ),
    "coqa": TaskSpec(
        "coqa/coqa-dev-v1.0.json",
        _paper_only(evaluate_coqa),
        lambda p, n: sorted({t.prompt.split("\n\n")[0] for t in read_coqa(Path(p), n)}),
    ),
    "cnn_dailymail": TaskSpec(
        "cnn_dailymail/test.jsonl",
        _paper_only(evaluate_summarization),
        lambda p, n: [a for a, _ in read_cnndm(Path(p), n)],
    ),
    "wmt14-en-fr": _translation_spec("en", "fr"),
    "wmt14-fr-en": _translation_spec("fr", "en"),
    "nq": TaskSpec(
        "nq_open/NQ-open.dev.jsonl", _paper_only(evaluate_nq), lambda p, n: [q for q, _ in read_nq(Path(p))[:n]]
    ),
    WEBTEXT_VAL: TaskSpec(
        None,
        lambda p, s, t, n, proto: evaluate_webtext_val(p, s, t, n, proto.stride),
        lambda p, n: read_webtext_val(Path(p), n).documents,
        check=lambda name, p: _webtext_val_readable(p),
        key_data=lambda p: Path(p) / "shards",
    ),  # not the corpus' overlap/ cache beside it
}


def task_path(
    name: str, data_dir: str | Path | None, task_paths: dict[str, str] | None = None, corpus: str | Path | None = None
) -> Path:
    """Where a task's data is: task_paths[name] if given, else data_dir/<published layout> (the corpus folder for
    webtext-val)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
    if task_paths and name in task_paths:
        return Path(task_paths[name])
    if TASKS[name].default_path is None:
        if corpus is None:
            raise ValueError(f"task {name} needs the corpus parameter (a webtext corpus folder)")
        return Path(corpus)
    if data_dir is None:
        raise ValueError(f"task {name!r} needs data_dir or task_paths[{name!r}]")
    return Path(data_dir) / TASKS[name].default_path


def available_tasks(
    data_dir: str | Path | None, task_paths: dict[str, str] | None = None, corpus: str | Path | None = None
) -> list[str]:
    """The tasks whose data is present."""
    found = []
    for name in TASKS:
        try:
            if task_path(name, data_dir, task_paths, corpus).exists():
                found.append(name)
        except ValueError:
            continue
    return found


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_checkpoint(checkpoint: str | Path, device: str = "auto") -> tuple[torch.nn.Module, Tokenizer, int]:
    """(model on the device in eval mode, tokenizer, parameter count) from a checkpoint directory."""
    from modeling.hf import from_pretrained
    from tokenization.bpe import load_tokenizer

    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise FileNotFoundError(
            f"checkpoint {checkpoint} is not a directory (expected config.json, model.safetensors and tokenizer files)"
        )
    model = from_pretrained(checkpoint).to(resolve_device(device)).eval()
    return model, load_tokenizer(checkpoint), model.num_params()


def default_tasks(
    data_dir: str | Path | None,
    task_paths: dict[str, str] | None,
    corpus: str | Path | None,
    protocols: list[Protocol] | None = None,
) -> list[str]:
    """Every task whose data is found (webtext-val when a corpus is given) that one of the protocols covers."""
    found = available_tasks(data_dir, task_paths, corpus)
    protocols = protocols or resolve_protocols()
    return [t for t in found if any(supports(p, t) for p in protocols)]


def plan_runs(tasks: list[str], protocols: list[Protocol]) -> list[tuple[str, Protocol]]:
    """(task, protocol) for every task under every protocol that covers it; a task none covers is an error."""
    uncovered = [t for t in tasks if not any(supports(p, t) for p in protocols)]
    if uncovered:
        names = ", ".join(p.name for p in protocols)
        raise ValueError(
            f"tasks {', '.join(uncovered)}: protocol {names} has no recipe for them (the lm-eval "
            f"protocol covers {', '.join(LM_EVAL_TASKS)}); run them under protocol {PAPER!r}"
        )
    return [(t, p) for t in tasks for p in protocols if supports(p, t)]


def check_stride(protocols: list[Protocol], block_size: int) -> None:
    for protocol in protocols:
        if protocol.stride is not None and protocol.stride > block_size:
            raise ValueError(f"stride: {protocol.stride} is longer than the model's context ({block_size} tokens)")


def check_inputs(
    tasks: list[str], data_dir: str | Path | None, task_paths: dict[str, str] | None, corpus: str | Path | None
) -> dict[str, Path]:
    """Every task's data path, checked before any work starts; a missing one is an error naming the file."""
    paths = {}
    for name in tasks:
        path = task_path(name, data_dir, task_paths, corpus)
        TASKS[name].check(name, path)
        paths[name] = path
    return paths


# Files of a checkpoint directory that define the model and its tokenizer (not the results written beside them).
_MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "encoder.json",
    "vocab.bpe",
)


def task_cache_key(
    checkpoint: str | Path,
    name: str,
    path: str | Path,
    limit: int | None,
    protocol: str = PAPER,
    options: dict[str, Any] | None = None,
) -> str:
    """A key that changes with the checkpoint's model files, the task, its data, the limit, the protocol and the
    options the task reads, and the evaluation code: a task result stored under it can be reused by a re-run (an
    evaluation resumes after a crash)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{name}|{limit}|{protocol}|{json.dumps(options or {}, sort_keys=True)}|".encode())
    model_files = [Path(checkpoint) / f for f in _MODEL_FILES if (Path(checkpoint) / f).is_file()]
    data = TASKS[name].key_data(Path(path)) if name in TASKS else Path(path)
    digest.update(repr(fingerprints(model_files + ([data] if data.exists() else []))).encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):  # a fix in the protocol recomputes every result
        digest.update(source.read_bytes())
    return f"eval-{name}-{digest.hexdigest()}"


def task_options(name: str, protocol: Protocol, block_size: int) -> dict[str, Any]:
    """The options the task reads under the protocol, as recorded with its result (stride None: the context)."""
    options = protocol.options_for(name)
    if "stride" in options and options["stride"] is None:
        options["stride"] = block_size
    return options


def run_task(
    name: str, path: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None, protocol: Protocol | None = None
) -> tuple[dict[str, Any], lambada_task.LambadaResult | None]:
    """The task's result under the protocol (default: paper), and for LAMBADA its per-passage results (the overlap
    analysis needs them). The result: {"protocol": label, "claims_paper", "options", "metrics"}."""
    protocol = protocol or resolve_protocols()[0]
    if not supports(protocol, name):
        raise ValueError(f"{name}: the {protocol.name} protocol has no recipe for it")
    started = time.perf_counter()
    detail = None
    if name == "lambada":  # its per-passage results feed the overlap analysis
        detail = lambada_task.evaluate_lambada(
            path, scorer, tokenizer, limit, protocol.name, protocol.normalize_quotes, protocol.eot_prefix
        )
        metrics = detail.metrics
    else:
        metrics = TASKS[name].run(path, scorer, tokenizer, limit, protocol)
    log.info(
        "%s [%s]: %s (%.1f s)",
        name,
        protocol.name,
        {k: round(v, 4) for k, v in metrics.items()},
        time.perf_counter() - started,
    )
    result = {
        "protocol": protocol.label_for(name),
        "claims_paper": protocol.claims_paper(name),
        "options": task_options(name, protocol, scorer.block_size),
        "metrics": metrics,
    }
    return result, detail


def overlap_report(
    corpus: str | Path,
    paths: dict[str, Path],
    limit: int | None,
    lambada_result: lambada_task.LambadaResult | None = None,
    fpr_samples: int = 100_000,
) -> dict[str, float]:
    """Percent of each task's test 8-grams found in the corpus' training shards, plus LAMBADA per-example numbers."""
    bloom = overlap_lib.corpus_bloom(Path(corpus), Path(corpus) / "overlap")
    report: dict[str, float] = {"bloom_fpr_measured": overlap_lib.measured_false_positive_rate(bloom, fpr_samples)}
    for name, path in paths.items():
        report[f"{name}_8grams_in_train_pct"] = overlap_lib.overlap_percent(bloom, TASKS[name].texts(path, limit))
    if "lambada" in paths and lambada_result is not None:
        passages = lambada_task.read_lambada(paths["lambada"], limit)
        per_example = overlap_lib.per_example_overlap(bloom, [p.context + " " + p.target for p in passages])
        result = lambada_result
        clean = [i for i, o in enumerate(per_example) if o == 0]
        report["lambada_mean_example_overlap"] = sum(per_example) / len(per_example)
        report["lambada_examples_with_overlap"] = len(per_example) - len(clean)
        if clean:
            report["lambada_ppl_without_overlap"] = math.exp(-sum(result.logprobs[i] for i in clean) / len(clean))
            report["lambada_acc_without_overlap"] = 100 * sum(result.correct[i] for i in clean) / len(clean)
    return report


def evaluate_checkpoint(
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
) -> dict[str, Any]:
    """Run the tasks under each protocol that covers them, write results.md/json/svg into the checkpoint directory,
    return everything as a dict. The options (None: each protocol's default) are described in evaluation.protocol."""
    protocols = resolve_protocols(protocol, normalize_quotes, eot_prefix, stride)
    tasks = list(tasks) if tasks else default_tasks(data_dir, task_paths, corpus, protocols)
    if not tasks:
        raise ValueError(f"no task to run: no benchmark data under {data_dir} and no corpus given")
    runs = plan_runs(tasks, protocols)
    paths = check_inputs(tasks, data_dir, task_paths, corpus)
    model, tokenizer, n_params = load_checkpoint(checkpoint, device)
    scorer = Scorer(model, batch_size=batch_size, device=next(model.parameters()).device)
    check_stride(protocols, scorer.block_size)
    results: dict[str, dict[str, Any]] = {}
    lambada_result = None
    for name, proto in runs:
        result, detail = run_task(name, paths[name], scorer, tokenizer, limit, proto)
        results.setdefault(name, {})[proto.name] = result
        if detail is not None and proto.name == PAPER:  # the overlap analysis reads the paper's LAMBADA metrics
            lambada_result = detail
    if corpus is not None:
        results["overlap"] = {PAPER: overlap_result(overlap_report(corpus, paths, limit, lambada_result))}
    return publish(checkpoint, results, n_params, run_meta(tasks, protocols, limit, batch_size, scorer))


def overlap_result(metrics: dict[str, float]) -> dict[str, Any]:
    """The overlap analysis as a result: the paper's method (section 4), on the paper protocol's LAMBADA numbers."""
    return {"protocol": PAPER, "claims_paper": True, "options": {}, "metrics": metrics}


def run_meta(
    tasks: list[str], protocols: list[Protocol], limit: int | None, batch_size: int, scorer: Scorer
) -> dict[str, Any]:
    """The run's settings for results.json: the tasks, each protocol with its options, the limit, the device."""
    return {
        "tasks": tasks,
        "protocols": {p.name: p.settings() for p in protocols},
        "limit": limit,
        "batch_size": batch_size,
        "device": str(scorer.device),
        "context": scorer.block_size,
    }


def publish(
    checkpoint: str | Path, results: dict[str, dict[str, Any]], n_params: int, meta: dict[str, Any]
) -> dict[str, Any]:
    report = write_report(Path(checkpoint), results, n_params, {"checkpoint": str(checkpoint), **meta})
    return {
        "checkpoint": str(checkpoint),
        "n_params": n_params,
        "results": results,
        "rows": report["rows"],
        "markdown": report["markdown"],
        "paths": report["paths"],
    }

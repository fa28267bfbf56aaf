"""LAMBADA under the `lm-eval` protocol: our evaluation against lm-evaluation-harness itself, same model and passages.

Both load the same checkpoint (a random GPT-2-shaped model with GPT-2's tokenizer, saved the way training exports)
and score the first N passages of the shared lambada_test.jsonl with lambada_openai's recipe: ours through
evaluation.run (load_checkpoint + evaluate_lambada), the harness through simple_evaluate with its `hf` backend,
offline, on the task file evaluation.harness writes. Each timing includes loading the model (and for the harness,
building its task index and reading the data set; its modules are imported before the clock starts). The script
checks that the numbers agree (1e-6 relative) and prints passages/s of each and the ratio.

    .venv/bin/python benchmarks/bench_harness.py                  # CPU, a small model, 500 passages
    .venv/bin/python benchmarks/bench_harness.py --size gpt2 --passages 5153 --device cuda
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from evaluation.harness import write_local_task
from evaluation.lambada import evaluate_lambada
from evaluation.lm import Scorer
from evaluation.run import load_checkpoint
from modeling.hf import save_pretrained
from modeling.model import GPT, GPTConfig
from tokenization.bpe import load_gpt2

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WEBTEXT_SHARED_DIR", REPO.parent / "shared")) / "data"
SIZES = {
    "small": dict(n_layer=4, n_head=4, n_embd=256, block_size=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),
}


def ours(checkpoint: Path, passages: Path, batch_size: int, device: str) -> dict[str, float]:
    model, tokenizer, _ = load_checkpoint(checkpoint, device)
    scorer = Scorer(model, batch_size=batch_size, device=next(model.parameters()).device)
    return evaluate_lambada(passages, scorer, tokenizer, protocol="lm-eval").metrics


def harness(checkpoint: Path, tasks: Path, batch_size: int, device: str) -> dict[str, float]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out = simple_evaluate(
        model="hf",
        model_args=f"pretrained={checkpoint},dtype=float32",
        tasks=["bench_lambada"],
        task_manager=TaskManager(include_path=str(tasks)),
        device=device,
        batch_size=batch_size,
        bootstrap_iters=0,
    )
    return {k.split(",")[0]: v for k, v in out["results"]["bench_lambada"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--passages", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    import lm_eval.models.huggingface  # noqa: F401  (imports are not evaluation time)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        os.environ["HF_HOME"] = str(root / "hf-home")  # the harness's dataset cache stays in the scratch folder
        torch.manual_seed(0)
        checkpoint = root / "model"
        save_pretrained(GPT(GPTConfig(**SIZES[args.size])), checkpoint)
        load_gpt2(SHARED / "gpt2-bpe" / "encoder.json", SHARED / "gpt2-bpe" / "vocab.bpe").save(checkpoint)
        lines = (SHARED / "eval" / "lambada" / "lambada_test.jsonl").read_text(encoding="utf-8").splitlines()
        passages = root / "lambada.jsonl"
        passages.write_text("\n".join(lines[: args.passages]) + "\n", encoding="utf-8")
        write_local_task("lambada_openai", "bench_lambada", passages, root / "tasks")

        print(
            f"model {args.size}, {args.passages} passages, device {args.device}, batch {args.batch_size}, "
            f"torch threads {torch.get_num_threads()}"
        )
        results = {}
        for name, run in (
            (
                "lm-evaluation-harness (hf backend)",
                lambda: harness(checkpoint, root / "tasks", args.batch_size, args.device),
            ),
            ("ours (lm-eval protocol)", lambda: ours(checkpoint, passages, args.batch_size, args.device)),
        ):
            started = time.perf_counter()
            metrics = run()
            seconds = time.perf_counter() - started
            results[name] = (metrics, seconds)
            print(
                f"{name:38s} {args.passages / seconds:8.1f} passages/s  ({seconds:.1f} s)  "
                f"acc {metrics['acc']:.6f}  perplexity {metrics['perplexity']:.6f}"
            )
        (theirs, their_time), (mine, my_time) = results.values()
        agree = all(abs(mine[k] - theirs[k]) <= 1e-6 * abs(theirs[k]) for k in ("acc", "perplexity"))
        print(f"ratio: ours {their_time / my_time:.2f}x the harness's speed; numbers agree within 1e-6: {agree}")


if __name__ == "__main__":
    main()

"""GPU training throughput through the real Lightning loop: GPT-2 124M, bf16-mixed, context 1024, torch.compile.

Writes random-token llm.c shards to a scratch folder, runs modeling.train.train for a few optimizer steps of
--batch-tokens (default the paper's 512 x 1024) and prints tokens/s and MFU against --peak-tflops (989: dense bf16
H100/H200). Steady-state figures are the median over steps after --warmup-steps (compilation, allocator warm-up).
Target on an H200: >= 550k tokens/s (a plain compiled PyTorch loop does ~480k, transformers' model compiled ~400k).

    python benchmarks/bench_train_gpu.py                # the H200 run (a few minutes)
    python benchmarks/bench_train_gpu.py --smoke        # tiny model on the CPU: proves the script runs
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from modeling.data import write_token_shard
from modeling.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2")
    parser.add_argument("--batch-tokens", type=int, default=512 * 1024)
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=5, help="steps left out of the steady-state figures")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--smoke", action="store_true", help="tiny model, CPU, fp32, a few steps")
    parser.add_argument("--scratch", default=None, help="folder for shards and the run (default: a temp dir)")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.batch_tokens, args.micro_batch, args.steps, args.warmup_steps = "tiny", 2048, 8, 6, 2
        args.precision, args.no_compile = "32-true", True
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke to check the script on the CPU")
    torch.set_float32_matmul_precision("high")

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="bench-train-gpu-"))
    tokens_dir = scratch / "tokens"
    tokens_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_token_shard(tokens_dir / "train_000000.bin", rng.integers(0, 50257, 20_000_000 if not args.smoke else 50_000))

    steps: list[dict[str, float]] = []
    config = TrainConfig(
        tokens_dir=str(tokens_dir),
        out_dir=str(scratch / "run"),
        model=args.model,
        max_steps=args.steps,
        batch_tokens=args.batch_tokens,
        micro_batch=args.micro_batch,
        lr=6e-4,
        warmup_steps=2,
        log_interval=1,
        checkpoint_interval=10**9,
        precision=args.precision,
        compile=not args.no_compile,
        peak_flops=args.peak_tflops * 1e12,
        devices=1,
    )
    start = time.perf_counter()
    result = train(config, on_step=lambda m: steps.append(m) if "train/loss" in m else None)
    wall = time.perf_counter() - start
    steady = [m for m in steps if m["step"] > args.warmup_steps] or steps
    tokens_per_s = statistics.median(m["perf/tokens_per_s"] for m in steady)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"device: {device}; model {args.model} ({result.params / 1e6:.1f}M params), precision {args.precision}, "
        f"compile {not args.no_compile}, batch {args.batch_tokens} tokens = micro-batch {args.micro_batch} x "
        f"context x accumulation"
    )
    print(f"steps: {result.steps} in {wall:.1f} s wall (setup, compile and export included)")
    print(f"loss: first {steps[0]['train/loss']:.3f}, last {steps[-1]['train/loss']:.3f}")
    print(f"steady-state tokens/s (median of steps > {args.warmup_steps}): {tokens_per_s:,.0f}")
    if "perf/mfu" in steady[0]:
        print(f"MFU vs {args.peak_tflops:.0f} TFLOP/s: {statistics.median(m['perf/mfu'] for m in steady):.1%}")
    if torch.cuda.is_available():
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if args.scratch is None:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()

"""Training throughput on the CPU: our GPT against transformers' GPT2LMHeadModel, same shape, batch, threads, optimizer.

Each model runs forward + backward + AdamW step on the same random batches, alternating rounds so machine noise hits
both alike; the figure is tokens/s over the timed steps (median of rounds). Run:

    .venv/bin/python benchmarks/bench_train_cpu.py               # 4 layers x 256, vocab 50257, 8 x 256 tokens
    .venv/bin/python benchmarks/bench_train_cpu.py --n-layer 12 --n-embd 768 --n-head 12 --block-size 1024 --batch 4

Measured on the 2-core development machine (2026-11-28), default shape: 1.84x at vocab 50257 (878 vs 476 tokens/s;
1.67x with --threads 1), 1.28x at --vocab-size 8192, 1.40x at GPT-2 124M's width (12 x 768, context 256, batch 4:
134 vs 95 tokens/s). Most of the gain is the head fused with the loss (modeling/loss.py); before it, 1.08x and 1.18x.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from modeling.model import GPT, GPTConfig, configure_optimizer


def step_fn(kind: str, args: argparse.Namespace) -> tuple[Callable[[torch.Tensor, torch.Tensor], float], int]:
    torch.manual_seed(0)
    if kind == "ours":
        model = GPT(
            GPTConfig(
                block_size=args.block_size,
                vocab_size=args.vocab_size,
                n_layer=args.n_layer,
                n_head=args.n_head,
                n_embd=args.n_embd,
            )
        )

        def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return model(x, y)
    else:
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=args.vocab_size,
                n_positions=args.block_size,
                n_layer=args.n_layer,
                n_head=args.n_head,
                n_embd=args.n_embd,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                use_cache=False,
                bos_token_id=args.vocab_size - 1,
                eos_token_id=args.vocab_size - 1,
                attn_implementation="sdpa",
            )
        )

        def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return model(input_ids=x, labels=x).loss  # HF's usual call: it shifts the labels itself

    model.train()
    if args.compile:
        model.compile()
    optimizer = configure_optimizer(list(model.named_parameters()), lr=1e-4)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, args.vocab_size, (args.batch, args.block_size + 1), generator=g) for _ in range(4)]
    steps = {kind: step_fn(kind, args) for kind in ("ours", "transformers")}
    tokens_per_step = args.batch * args.block_size
    print(
        f"config: {args.n_layer} layers x {args.n_embd} ({args.n_head} heads), context {args.block_size}, vocab "
        f"{args.vocab_size}, batch {args.batch}, threads {args.threads}, compile {args.compile}"
    )
    for kind, (step, n_params) in steps.items():
        for w in batches[:2]:  # warm-up (allocator, compile)
            step(w[:, :-1], w[:, 1:])
        print(f"  {kind:13s} {n_params / 1e6:.2f}M parameters")
    rates: dict[str, list[float]] = {kind: [] for kind in steps}
    for _ in range(args.rounds):
        for kind, (step, _) in steps.items():
            start = time.perf_counter()
            for i in range(args.steps):
                w = batches[i % len(batches)]
                step(w[:, :-1], w[:, 1:])
            rates[kind].append(args.steps * tokens_per_step / (time.perf_counter() - start))
    ours, theirs = statistics.median(rates["ours"]), statistics.median(rates["transformers"])
    print(f"ours:         {ours:10.0f} tokens/s  (rounds: {', '.join(f'{r:.0f}' for r in rates['ours'])})")
    print(f"transformers: {theirs:10.0f} tokens/s  (rounds: {', '.join(f'{r:.0f}' for r in rates['transformers'])})")
    print(f"speed-up: {ours / theirs:.2f}x  (target >= 1.2x)")


if __name__ == "__main__":
    main()

"""Perplexity evaluation throughput: evaluation.lm.Scorer against a plain transformers forward loop.

Same model (a randomly initialised GPT2LMHeadModel), same token stream, disjoint windows of the full context
(stride = context). The peer is the loop of the transformers perplexity guide: one window at a time,
`model(input_ids).logits`, cross-entropy against the next tokens. Ours batches windows and computes the output head in the same pass. Both must give
the same total log-likelihood; the script checks that and prints tokens/s and the ratio.

    .venv/bin/python benchmarks/bench_eval.py                    # CPU, a small GPT-2-shaped model (~1 minute)
    .venv/bin/python benchmarks/bench_eval.py --size gpt2 --device cuda --tokens 1000000
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from evaluation.lm import Scorer
from modeling.model import GPT, GPTConfig

SIZES = {
    "small": dict(n_layer=4, n_head=4, n_embd=256, n_positions=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024),
}


def plain_loop(model: GPT2LMHeadModel, tokens: torch.Tensor, block: int, device: torch.device, bf16: bool) -> float:
    """The transformers guide's loop, stride = context: total log-likelihood of tokens[1:]."""
    total = 0.0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(tokens) - 1, block):
            window = tokens[start : start + block + 1].to(device)
            logits = model(window[None, :-1]).logits[0].float()
            total -= F.cross_entropy(logits, window[1:], reduction="sum").item()
    return total


def ours(scorer: Scorer, tokens: torch.Tensor) -> float:
    # Same windows as the plain loop: the first token is the prefix, then disjoint chunks of `block` targets.
    (total,) = scorer.rolling_logprob([tokens[1:].tolist()], prefix_token=int(tokens[0]))
    return total


def timed(fn, *args) -> tuple[float, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    value = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="best of N timed runs after one warm-up")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = SIZES[args.size]
    hf = (
        GPT2LMHeadModel(GPT2Config(vocab_size=50257, bos_token_id=50256, eos_token_id=50256, **shape)).to(device).eval()
    )
    block = shape["n_positions"]
    tokens = torch.randint(0, 50257, (args.tokens + 1,))
    bf16 = device.type == "cuda"

    # Our own model class with the same weights (what evaluation.run loads).
    ours_model = (
        GPT(
            GPTConfig(
                block_size=block,
                n_layer=shape["n_layer"],
                n_head=shape["n_head"],
                n_embd=shape["n_embd"],
                pad_vocab_multiple=1,
            )
        )
        .to(device)
        .eval()
    )
    conv = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    with torch.no_grad():
        own = ours_model.state_dict()
        for key, value in hf.state_dict().items():
            if key in own:
                own[key].copy_(value.t() if key.endswith(conv) else value)

    runs = {
        "plain transformers loop (batch 1)": lambda: plain_loop(hf, tokens, block, device, bf16),
        f"Scorer on GPT2LMHeadModel (batch {args.batch_size})": lambda: ours(
            Scorer(hf, batch_size=args.batch_size, device=device), tokens
        ),
        f"Scorer on modeling.GPT (batch {args.batch_size})": lambda: ours(
            Scorer(ours_model, batch_size=args.batch_size, device=device), tokens
        ),
    }
    print(
        f"model {args.size} ({sum(p.numel() for p in hf.parameters()) / 1e6:.1f}M params), context {block}, "
        f"{args.tokens} tokens, device {device}, bf16 autocast {bf16}, torch threads {torch.get_num_threads()}"
    )
    results = {}
    for name, run in runs.items():
        run()  # warm-up
        best, value = math.inf, 0.0
        for _ in range(args.repeats):
            value, seconds = timed(run)
            best = min(best, seconds)
        results[name] = (value, best)
        print(
            f"{name:45s} {args.tokens / best:10.0f} tokens/s   ({best:.2f} s, ppl {math.exp(-value / args.tokens):.2f})"
        )
    base_value, base_time = results["plain transformers loop (batch 1)"]
    for name, (value, seconds) in results.items():
        agree = abs(value - base_value) / abs(base_value) < (2e-2 if bf16 else 1e-5)
        print(f"ratio vs plain loop: {base_time / seconds:5.2f}x  {name}  (log-likelihood agrees: {agree})")


if __name__ == "__main__":
    main()

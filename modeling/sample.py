"""Sample text from a checkpoint: `webtext-sample --checkpoint DIR --prompt "..." --top-k 40`.

DIR is a Hugging Face GPT-2 directory with tokenizer files: our export (out_dir/model) or OpenAI's released weights.
The paper's samples use top-k 40 at temperature 1.
"""

from __future__ import annotations

import argparse

import torch

from modeling.hf import from_pretrained
from tokenization.bpe import load_tokenizer


def sample(
    checkpoint: str,
    prompt: str,
    max_new_tokens: int = 100,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = 40,
    seed: int = 1337,
    device: str = "cpu",
) -> list[str]:
    """num_samples continuations of prompt (the prompt itself not included); an empty prompt starts at <|endoftext|>."""
    tokenizer = load_tokenizer(checkpoint)
    model = from_pretrained(checkpoint).to(device)
    ids = tokenizer.encode(prompt) if prompt else [tokenizer.eot_token]
    idx = torch.tensor([ids] * num_samples, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, generator=generator)
    return [tokenizer.decode(row[len(ids) :].tolist()) for row in out]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="Hugging Face GPT-2 directory with tokenizer files")
    parser.add_argument("--prompt", default="", help="text to continue (default: start of a document)")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=40, help="0 = no top-k truncation")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    texts = sample(
        args.checkpoint,
        args.prompt,
        args.max_new_tokens,
        args.num_samples,
        args.temperature,
        args.top_k or None,
        args.seed,
        args.device,
    )
    for i, text in enumerate(texts):
        if args.num_samples > 1:
            print(f"======== sample {i + 1} ========")
        print(args.prompt + text)


if __name__ == "__main__":
    main()

"""A tiny corpus (train and val shards) and a tiny GPT-2 export with a tokenizer trained on it, for flow tests."""

from __future__ import annotations

from pathlib import Path

import torch
from test_training import make_corpus

from modeling.hf import save_pretrained
from modeling.model import GPT, get_config
from tokenization.bpe import train_bpe_from_shards


def tiny_corpus_and_checkpoint(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """A corpus with val shards and a tiny GPT-2 export with a tokenizer trained on it: what gpt2/evaluate reads."""
    corpus = make_corpus(root / "corpus")
    tokenizer = train_bpe_from_shards(corpus, vocab_size=300)
    torch.manual_seed(seed)
    checkpoint = root / "checkpoint"
    save_pretrained(GPT(get_config("tiny", vocab_size=tokenizer.n_vocab)), checkpoint, eos_token_id=tokenizer.eot_token)
    tokenizer.save(checkpoint)
    return corpus, checkpoint

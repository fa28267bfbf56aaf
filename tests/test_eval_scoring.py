"""Scoring core: rolling windows against brute force and against transformers' own loss; batching; decoding.

Also home of the hand-built test model and tokenizer the other evaluation tests import: `PieceTokenizer` (GPT-2-like
pieces: a word with its leading space, punctuation, white space) and `PreferModel`, a back-off n-gram table over
given texts, so its preferred continuations are known in advance.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from evaluation.lm import Scorer, split_sentences, stop_at
from modeling.model import GPT, GPTConfig

_PIECE = re.compile(r" ?\w+| ?[^\w\s]|\s")


class PieceTokenizer:
    """Word-level pieces with the leading space attached, as GPT-2's BPE does for common words; ids assigned on use."""

    def __init__(self, vocab_size: int = 4000) -> None:
        self.eot_token = 0
        self.vocab_size = vocab_size
        self.ids: dict[str, int] = {}
        self.pieces: list[str] = ["<|endoftext|>"]

    def encode(self, text: str) -> list[int]:
        out = []
        for piece in _PIECE.findall(text):
            if piece not in self.ids:
                assert len(self.pieces) < self.vocab_size, "test vocabulary full"
                self.ids[piece] = len(self.pieces)
                self.pieces.append(piece)
            out.append(self.ids[piece])
        assert "".join(self.pieces[i] for i in out) == text
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids if i != self.eot_token)


class PreferModel(torch.nn.Module):
    """Logits = boost * count of each token seen after the longest matching context (up to `order` tokens)."""

    def __init__(
        self, tokenizer: PieceTokenizer, texts: list[str], order: int = 8, boost: float = 6.0, block_size: int = 256
    ) -> None:
        super().__init__()
        self.vocab_size, self.order, self.boost, self.block_size = tokenizer.vocab_size, order, boost, block_size
        self.table: dict[tuple[int, ...], Counter] = defaultdict(Counter)
        for text in texts:
            seq = [tokenizer.eot_token] + tokenizer.encode(text) + [tokenizer.eot_token]
            for t in range(1, len(seq)):
                for k in range(1, order + 1):
                    if t - k >= 0:
                        self.table[tuple(seq[t - k : t])][seq[t]] += 1

    def next_logits(self, context: list[int]) -> torch.Tensor:
        logits = torch.zeros(self.vocab_size)
        for k in range(min(self.order, len(context)), 0, -1):
            counts = self.table.get(tuple(context[-k:]))
            if counts:
                for token, count in counts.items():
                    logits[token] = self.boost * count
                break
        return logits

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        rows = idx.tolist()
        return torch.stack([torch.stack([self.next_logits(r[: t + 1]) for t in range(len(r))]) for r in rows])


def tiny_hf_model(vocab: int = 97, block: int = 32, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=block,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config).eval()


def tiny_gpt(vocab: int = 97, block: int = 32, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=block, vocab_size=vocab, n_layer=2, n_head=2, n_embd=32)).eval()


def brute_force_logprob(model: GPT, doc: list[int], prefix: int, block: int, stride: int) -> float:
    """Token by token: each token's context is what its chunk's window holds (chunks: block, then stride tokens)."""
    seq = [prefix] + doc
    total, chunk_end = 0.0, 1 + block
    for t in range(1, len(seq)):
        if t >= chunk_end:
            chunk_end += stride
        left = max(0, min(chunk_end, len(seq)) - 1 - block)
        context = torch.tensor([seq[left:t]])
        with torch.no_grad():
            logits = model(context)[0, -1]
        total += float(F.log_softmax(logits.double(), -1)[seq[t]])
    return total


@pytest.mark.parametrize("stride", [32, 5])
def test_rolling_logprob_matches_brute_force(stride: int) -> None:
    model = tiny_gpt()
    generator = torch.Generator().manual_seed(1)
    docs = [torch.randint(1, 97, (n,), generator=generator).tolist() for n in (37, 3)]
    scorer = Scorer(model, batch_size=3)
    got = scorer.rolling_logprob(docs, prefix_token=0, stride=stride)
    want = [brute_force_logprob(model, d, 0, 32, stride) for d in docs]
    assert got == pytest.approx(want, rel=1e-5, abs=1e-4)


def test_rolling_logprob_equals_transformers_loss_within_one_window() -> None:
    model = tiny_hf_model()
    doc = torch.randint(1, 97, (31,), generator=torch.Generator().manual_seed(2)).tolist()
    ids = torch.tensor([[0] + doc])
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()  # mean NLL of the 31 tokens after the prefix
    (total,) = Scorer(model).rolling_logprob([doc], prefix_token=0)
    assert -total / len(doc) == pytest.approx(loss, rel=1e-5)


def test_smaller_stride_gives_more_context_and_a_lower_loss_on_repetitive_text() -> None:
    tokenizer = PieceTokenizer()
    text = " ".join(["x a b a c"] * 30)  # after "a" comes b or c: one token of context cannot tell which
    model = PreferModel(tokenizer, [text], order=4, block_size=16)
    tokens = tokenizer.encode(text)
    scorer = Scorer(model, block_size=16)
    (disjoint,) = scorer.rolling_logprob([tokens], tokenizer.eot_token)
    (overlapping,) = scorer.rolling_logprob([tokens], tokenizer.eot_token, stride=4)
    assert overlapping > disjoint  # every chunk after the first gets 12 tokens of context instead of 1


def test_continuations_batched_equal_unbatched_and_truncate_on_the_left() -> None:
    model = tiny_hf_model()
    generator = torch.Generator().manual_seed(3)
    requests = [
        (
            torch.randint(1, 97, (n,), generator=generator).tolist(),
            torch.randint(1, 97, (m,), generator=generator).tolist(),
        )
        for n, m in ((5, 2), (40, 3), (1, 1), (20, 9))
    ]
    batched = Scorer(model, batch_size=4).score_continuations(requests)
    single = Scorer(model, batch_size=1).score_continuations(requests)
    assert [s.logprob for s in batched] == pytest.approx([s.logprob for s in single], abs=1e-4)
    context, continuation = requests[1]  # 43 tokens > block 32 + 1: the context keeps its last 30 tokens
    ids = torch.tensor([(context + continuation)[-33:-1]])
    with torch.no_grad():
        logprobs = F.log_softmax(model(ids).logits[0].double(), -1)
    want = sum(float(logprobs[29 + i, tok]) for i, tok in enumerate(continuation))
    assert batched[1].logprob == pytest.approx(want, abs=1e-4)


def test_greedy_flags_and_generation_follow_the_preferred_text() -> None:
    tokenizer = PieceTokenizer()
    model = PreferModel(tokenizer, ["The cat sat on the mat.\nThen it slept."])
    scorer = Scorer(model, batch_size=2)
    context = [0] + tokenizer.encode("The cat sat")
    good, bad = scorer.score_continuations(
        [(context, tokenizer.encode(" on the mat")), (context, tokenizer.encode(" on the rug"))]
    )
    assert good.is_greedy and good.last_token_greedy and not bad.is_greedy and good.logprob > bad.logprob
    outputs = scorer.generate([context, [0] + tokenizer.encode("Then")], 20, tokenizer, stop=stop_at("\n"))
    assert tokenizer.decode(outputs[0]) == " on the mat.\n"
    assert tokenizer.decode(outputs[1]) == " it slept."  # stops at the end-of-text token


def test_model_returning_too_few_positions_is_rejected() -> None:
    class LastOnly(torch.nn.Module):
        block_size = 8

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return torch.zeros(idx.shape[0], 1, 5)

    with pytest.raises(ValueError, match="logits for every position"):
        Scorer(LastOnly()).score_continuations([([1, 2], [3])])


def test_split_sentences() -> None:
    assert split_sentences('He came. "Why?" she asked! Then  left') == [
        "He came.",
        '"Why?"',
        "she asked!",
        "Then  left",
    ]


def test_perplexity_of_a_known_distribution() -> None:
    """A model with a fixed next-token distribution: the score is exactly the sum of those log-probs."""

    class Fixed(torch.nn.Module):
        block_size = 4

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            logits = torch.log(torch.tensor([0.5, 0.25, 0.25]))
            return logits.expand(*idx.shape, 3)

    (total,) = Scorer(Fixed()).rolling_logprob([[1, 2, 0, 0, 1, 0, 2]], prefix_token=0)
    assert total == pytest.approx(3 * math.log(0.5) + 4 * math.log(0.25))


def test_bf16_autocast_stays_close_to_fp32() -> None:
    """The GPU setting (bf16 body, fp32 output head), run here with CPU autocast."""
    model = tiny_gpt()
    docs = [torch.randint(1, 97, (40,), generator=torch.Generator().manual_seed(4)).tolist()]
    (exact,) = Scorer(model, bf16=False).rolling_logprob(docs, prefix_token=0)
    (fast,) = Scorer(model, bf16=True).rolling_logprob(docs, prefix_token=0)
    assert fast == pytest.approx(exact, rel=1e-2)

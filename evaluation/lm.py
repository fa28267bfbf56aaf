"""Scoring core: batched log-likelihoods of continuations, rolling windows over long texts, batched decoding.

The model is anything that maps token ids (B, T) to logits (B, T, V): our `modeling.model.GPT`, a transformers
`GPT2LMHeadModel` (whose output object carries `.logits`), or any callable module. Its context length comes from
`block_size` (ours), `config.n_positions` (transformers) or an explicit argument.

Padding is always on the right. A causal model's logits at position t only depend on tokens 0..t, so right padding
never changes a real position's score; no attention mask is needed, and batched results equal unbatched ones.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


class Tokenizer(Protocol):
    eot_token: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # sum of the continuation tokens' log-probabilities (natural log)
    is_greedy: bool  # every continuation token is the argmax given the tokens before it
    n_tokens: int
    last_token_greedy: bool  # the continuation's last token is the argmax (the "last BPE token" LAMBADA reading)


def model_block_size(model: object) -> int:
    """The context length of a model: ours (`config.block_size`), transformers' (`config.n_positions`), or `block_size`."""
    config = getattr(model, "config", None)
    for owner, name in ((config, "block_size"), (config, "n_positions"), (model, "block_size")):
        value = getattr(owner, name, None) if owner is not None else None
        if isinstance(value, int):
            return value
    raise ValueError(f"cannot tell the context length of {type(model).__name__}: give block_size explicitly")


class Scorer:
    """Runs a causal LM over batches of token sequences; every public method is batched and order-preserving."""

    def __init__(
        self,
        model: Callable[[torch.Tensor], object],
        block_size: int | None = None,
        batch_size: int = 8,
        device: str | torch.device = "cpu",
        bf16: bool | None = None,
    ) -> None:
        self.model = model
        self.block_size = block_size or model_block_size(model)
        self.batch_size = batch_size
        self.device = torch.device(device)
        # bf16 autocast only where it is fast and accurate enough: on GPU. CPU runs stay fp32 (exact for small models).
        self.bf16 = (self.device.type == "cuda") if bf16 is None else bf16
        if isinstance(model, torch.nn.Module):
            model.eval()
        self._split = self._split_model()

    # -- forward ---------------------------------------------------------------------------------------------
    def _split_model(
        self,
    ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]] | None:
        """(hidden states, output head) when the model exposes them, so only the needed positions get logits."""
        m = self.model
        if hasattr(m, "hidden_states") and hasattr(m, "lm_head"):  # ours: the head may have padded columns
            vocab = m.config.vocab_size
            return m.hidden_states, lambda h: m.lm_head(h)[..., :vocab]
        if hasattr(m, "transformer") and hasattr(m, "lm_head"):  # transformers' GPT2LMHeadModel
            return (lambda idx: m.transformer(idx).last_hidden_state), m.lm_head
        return None

    @torch.no_grad()
    def logits_at(self, idx: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """fp32 logits (N, V) at positions (rows[n], cols[n]) of the batch idx (B, T)."""
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        rows, cols = rows.to(self.device), cols.to(self.device)
        if self._split is not None:
            hidden, head = self._split
            with autocast:
                states = hidden(idx)[rows, cols]
            return head(states.float())  # the output head in fp32: bf16 logits would blur the log-probs
        with autocast:
            out = self.model(idx)
        logits = out.logits if hasattr(out, "logits") else out[0] if isinstance(out, tuple) else out
        if logits.shape[:2] != idx.shape:
            raise ValueError(
                f"model returned logits of shape {tuple(logits.shape)} for input {tuple(idx.shape)}; "
                "it must return logits for every position (B, T, V)"
            )
        return logits[rows, cols].float()

    def _last_logits(self, rows: list[list[int]]) -> torch.Tensor:
        """fp32 logits (B, V) after each row's last token."""
        return self.logits_at(self._pad(rows), torch.arange(len(rows)), torch.tensor([len(r) - 1 for r in rows]))

    def _batches(self, order: list[int]) -> Iterable[list[int]]:
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size]

    def _pad(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        width = max(len(r) for r in rows)
        batch = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            batch[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return batch.to(self.device)

    # -- scoring ---------------------------------------------------------------------------------------------
    def score_windows(self, windows: Sequence[tuple[list[int], int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each (tokens, first_target) window, the log-prob and the greedy-hit flag of tokens[first_target:].

        tokens[i] is predicted from tokens[:i]; first_target >= 1; len(tokens) <= block_size + 1.
        """
        results: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(windows)  # type: ignore[list-item]
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))  # similar lengths share a batch
        for chunk in self._batches(order):
            rows = [windows[i][0] for i in chunk]
            if max(len(r) for r in rows) > self.block_size + 1:
                raise ValueError(f"window longer than the context ({self.block_size}) + 1")
            # Logits only where a target is predicted: position t predicts token t + 1.
            row_idx = torch.cat([torch.full((len(r) - windows[i][1],), j) for j, (i, r) in enumerate(zip(chunk, rows))])
            col_idx = torch.cat([torch.arange(windows[i][1] - 1, len(r) - 1) for i, r in zip(chunk, rows)])
            targets = torch.tensor([t for i, r in zip(chunk, rows) for t in r[windows[i][1] :]], device=self.device)
            logits = self.logits_at(self._pad([r[:-1] for r in rows]), row_idx, col_idx)
            token_lp = torch.cat(
                [
                    -F.cross_entropy(part, tgt, reduction="none")  # in slices: bounded memory
                    for part, tgt in zip(logits.split(4096), targets.split(4096))
                ]
            )
            greedy = logits.argmax(-1) == targets
            counts = [len(r) - windows[i][1] for i, r in zip(chunk, rows)]
            for i, lp, hit in zip(chunk, token_lp.double().cpu().split(counts), greedy.cpu().split(counts)):
                results[i] = (lp, hit)
        return results

    def score_continuations(self, requests: Sequence[tuple[list[int], list[int]]]) -> list[ContinuationScore]:
        """log P(continuation | context) for (context, continuation) token lists; the context is cut on the left to fit."""
        windows = []
        for context, continuation in requests:
            if not context or not continuation:
                raise ValueError("both context and continuation need at least one token (prefix the EOT token)")
            tokens = (context + continuation)[-(self.block_size + 1) :]
            windows.append((tokens, len(tokens) - len(continuation)))
        scores = []
        for (_, continuation), (token_lp, greedy) in zip(requests, self.score_windows(windows)):
            scores.append(
                ContinuationScore(float(token_lp.sum()), bool(greedy.all()), len(continuation), bool(greedy[-1]))
            )
        return scores

    def top_next_tokens(self, contexts: Sequence[list[int]], k: int) -> list[tuple[list[int], list[float]]]:
        """The k most likely next tokens after each context (cut on the left to fit), with their log-probs."""
        results: list[tuple[list[int], list[float]]] = [None] * len(contexts)  # type: ignore[list-item]
        order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
        for chunk in self._batches(order):
            rows = [contexts[i][-self.block_size :] for i in chunk]
            values, indices = F.log_softmax(self._last_logits(rows), dim=-1).topk(k, dim=-1)
            for j, i in enumerate(chunk):
                results[i] = (indices[j].tolist(), values[j].tolist())
        return results

    def rolling_logprob(
        self,
        documents: Sequence[list[int]],
        prefix_token: int,
        stride: int | None = None,
    ) -> list[float]:
        """Total log-prob of each document's tokens, the first predicted from `prefix_token` (EOT).

        The document is cut into target chunks: the first holds `block_size` tokens, the next ones `stride`
        tokens each; a chunk is predicted with as much of the preceding text as fits in the context. With
        stride == block_size (the default) the chunks are disjoint windows conditioned on one preceding token,
        exactly lm-eval's `loglikelihood_rolling` and the usual way the paper's numbers are reproduced; a smaller
        stride gives every chunk up to block_size - stride tokens of extra context.
        """
        stride = stride or self.block_size
        if not 0 < stride <= self.block_size:
            raise ValueError(f"stride must be in 1..{self.block_size}, got {stride}")
        windows, owners = [], []
        for doc_index, doc in enumerate(documents):
            seq = [prefix_token] + list(doc)
            start, end = 1, min(1 + self.block_size, len(seq))
            while start < len(seq):
                left = max(0, end - 1 - self.block_size)
                windows.append((seq[left:end], start - left))
                owners.append(doc_index)
                start, end = end, min(end + stride, len(seq))
        totals = [0.0] * len(documents)
        for owner, (token_lp, _) in zip(owners, self.score_windows(windows)):
            totals[owner] += float(token_lp.sum())
        return totals

    # -- decoding --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[list[int]],
        max_new_tokens: int,
        tokenizer: Tokenizer,
        stop: Callable[[str], bool] | None = None,
        top_k: int | None = None,
        seed: int = 0,
    ) -> list[list[int]]:
        """Greedy (top_k None) or top-k sampled continuations, batched with right padding.

        Each row stops after max_new_tokens, at the EOT token, or as soon as `stop(decoded_so_far)` is true.
        Prompts longer than the context keep their last tokens.
        """
        generator = torch.Generator(device="cpu").manual_seed(seed)
        outputs: list[list[int]] = [[] for _ in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        for chunk in self._batches(order):
            live = list(chunk)
            for _ in range(max_new_tokens):
                if not live:
                    break
                rows = [(prompts[i] + outputs[i])[-self.block_size :] for i in live]
                last = self._last_logits(rows).cpu()
                if top_k is None:
                    next_tokens = last.argmax(-1)
                else:
                    values, indices = last.topk(top_k, dim=-1)
                    picks = torch.multinomial(F.softmax(values, dim=-1), 1, generator=generator)[:, 0]
                    next_tokens = indices[torch.arange(len(rows)), picks]
                still = []
                for i, token in zip(live, next_tokens.tolist()):
                    if token == tokenizer.eot_token:
                        continue
                    outputs[i].append(token)
                    if stop is None or not stop(tokenizer.decode(outputs[i])):
                        still.append(i)
                live = still
        return outputs


def stop_at(*markers: str) -> Callable[[str], bool]:
    """A stop condition for `Scorer.generate`: the decoded text holds one of the markers."""
    return lambda text: any(m in text for m in markers)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences split after . ! ? (or one closing quote/bracket after them) and white space; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def encode_with_prefix(tokenizer: Tokenizer, text: str) -> list[int]:
    """The text's tokens after the EOT token, the way documents were separated in training."""
    return [tokenizer.eot_token] + tokenizer.encode(text)

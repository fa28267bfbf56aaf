"""Evaluation protocols by name: the inputs, target split, normalization and metrics a task's numbers come from.

- `paper`: what the GPT-2 paper states, and for each choice it leaves open, the one public evidence favours. Each
  task module lists its choices in `PAPER_CHOICES`, one line each with the evidence. Only numbers of this protocol,
  with its default options, stand beside the paper's in the results table.
- `lm-eval`: EleutherAI's lm-evaluation-harness (0.4): `lambada_openai` for LAMBADA (acc, perplexity) and the
  `wikitext` recipe (word_perplexity, byte_perplexity, bits_per_byte) applied to WikiText-2/103 and PTB, with the
  harness's metric names and units (acc is a fraction). Benchmarks the harness has no recipe for are paper-only.

The options the library has (`normalize_quotes`, `eot_prefix`, `stride`) default per protocol; a run may override
them. A result records the options its task used, and a protocol whose options differ from its defaults is labelled
as modified (and no longer claims the paper's or the harness's numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAPER = "paper"
LM_EVAL = "lm-eval"
PROTOCOLS = (PAPER, LM_EVAL)
LM_EVAL_TASKS = ("lambada", "wikitext2", "wikitext103", "ptb")  # the benchmarks the harness has a recipe for

# What each option means, and which tasks read it.
OPTION_TASKS: dict[str, tuple[str, ...]] = {
    "normalize_quotes": ("lambada",),  # typographic quotes to ASCII before scoring
    "eot_prefix": ("lambada",),  # <|endoftext|> before the context
    "stride": ("wikitext2", "wikitext103", "ptb", "enwik8", "text8", "1bw", "webtext-val"),  # rolling windows
}
DEFAULTS: dict[str, dict[str, Any]] = {
    PAPER: {"normalize_quotes": True, "eot_prefix": True, "stride": None},
    LM_EVAL: {"normalize_quotes": False, "eot_prefix": False, "stride": None},
}  # stride None: the model's context length (disjoint windows)


@dataclass(frozen=True)
class Protocol:
    name: str
    normalize_quotes: bool
    eot_prefix: bool
    stride: int | None

    def settings(self) -> dict[str, Any]:
        return {option: getattr(self, option) for option in OPTION_TASKS}

    def options_for(self, task: str) -> dict[str, Any]:
        """The options this task reads, as they will be recorded with its result and keyed in its cache entry."""
        return {option: getattr(self, option) for option, tasks in OPTION_TASKS.items() if task in tasks}

    def modified_for(self, task: str) -> dict[str, Any]:
        """The options this task reads whose values differ from the protocol's defaults."""
        return {k: v for k, v in self.options_for(task).items() if DEFAULTS[self.name][k] != v}

    def label_for(self, task: str) -> str:
        """The protocol's name, plus the options that differ from its defaults for this task."""
        modified = self.modified_for(task)
        return self.name + "".join(f" {k}={v}" for k, v in modified.items())

    def claims_paper(self, task: str) -> bool:
        """Whether this task's numbers claim to be measured as the paper measured them."""
        return self.name == PAPER and not self.modified_for(task)


def resolve_protocols(
    protocol: str | list[str] | tuple[str, ...] | None = None,
    normalize_quotes: bool | None = None,
    eot_prefix: bool | None = None,
    stride: int | None = None,
) -> list[Protocol]:
    """The named protocols with the given option overrides (None keeps each protocol's default)."""
    names = [PAPER] if protocol is None else [protocol] if isinstance(protocol, str) else list(protocol)
    if not names:
        raise ValueError(f"protocol: give at least one of {', '.join(PROTOCOLS)}")
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown:
        raise ValueError(f"protocol: unknown {', '.join(map(repr, unknown))}; known: {', '.join(PROTOCOLS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"protocol: {names} names a protocol twice")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int) or stride < 1):
        raise ValueError(f"stride: must be a positive number of tokens (at most the model's context), got {stride!r}")
    overrides = {"normalize_quotes": normalize_quotes, "eot_prefix": eot_prefix, "stride": stride}
    return [
        Protocol(name, **{k: DEFAULTS[name][k] if v is None else v for k, v in overrides.items()}) for name in names
    ]


def supports(protocol: Protocol, task: str) -> bool:
    return protocol.name == PAPER or task in LM_EVAL_TASKS

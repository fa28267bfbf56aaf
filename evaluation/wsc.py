"""Winograd Schema Challenge, WSC273 (WSCollection.xml, the first 273 schemas), as Trinh & Le (2018) scored it.

The pronoun is replaced by each candidate antecedent and the resulting sentence is scored:
- full scoring: log P(whole sentence);
- partial scoring: log P(words after the candidate | words up to and including the candidate).
The higher-scoring candidate is the prediction. Substitution rules (ours; the paper gives none): a possessive pronoun
(his, her, its, their) gets the candidate plus 's; a candidate starting with "The/A/An" is lower-cased when it does
not start the sentence.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from evaluation.data import require_file
from evaluation.lm import Scorer, Tokenizer

PUBLISHED = "https://cs.nyu.edu/~davise/papers/WinogradSchemas/WSCollection.xml"
N_SCHEMAS = 273
_POSSESSIVE = {"his", "her", "its", "their"}

PAPER_CHOICES = (
    "Trinh & Le (2018) full and partial scoring on WSC273 (paper 3.4 and Figure 3)",
    "the paper's number (70.70%, largest model) beside partial scoring, the better one in Figure 3",
    "substitution rules (possessive + 's, lower-cased leading article): ours, the paper gives none",
)


@dataclass(frozen=True)
class Schema:
    before: str  # text before the pronoun
    pronoun: str
    after: str  # text after the pronoun
    candidates: tuple[str, str]
    correct: int  # index into candidates


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def read_wsc(path: Path, limit: int | None = None) -> list[Schema]:
    require_file(path, "wsc273", PUBLISHED)
    root = ET.fromstring(path.read_bytes())  # the XML declaration says ISO-8859-1
    schemas = []
    for number, node in enumerate(root.iter("schema"), 1):
        if number > min(N_SCHEMAS, limit or N_SCHEMAS):
            break
        answers = [_norm(a.text) for a in node.findall("answers/answer")]
        letter = _norm(node.findtext("correctAnswer")).rstrip(".")
        if len(answers) != 2 or letter not in ("A", "B"):
            raise ValueError(f"{path}: schema {number} needs two answers and a correctAnswer A or B")
        schemas.append(
            Schema(
                _norm(node.findtext("text/txt1")),
                _norm(node.findtext("text/pron")),
                _norm(node.findtext("text/txt2")),
                (answers[0], answers[1]),
                "AB".index(letter),
            )
        )
    if len(schemas) < min(N_SCHEMAS, limit or N_SCHEMAS):
        raise ValueError(f"{path}: only {len(schemas)} schemas, WSC273 needs {N_SCHEMAS}")
    return schemas


def substitute(schema: Schema, candidate: str) -> tuple[str, str]:
    """(sentence up to and including the candidate, rest of the sentence)."""
    starts_sentence = not schema.before or schema.before.endswith((".", "!", "?"))
    first, _, rest = candidate.partition(" ")
    if not starts_sentence and first in ("The", "A", "An"):
        candidate = first.lower() + (" " + rest if rest else "")
    if starts_sentence:
        candidate = candidate[:1].upper() + candidate[1:]
    if schema.pronoun.lower() in _POSSESSIVE:
        candidate += "'s"
    head = (schema.before + " " + candidate).strip()
    tail = schema.after if schema.after[:1] in (".", ",", "!", "?", ";", ":", "'") else " " + schema.after
    return head, tail


def evaluate_wsc(path: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None) -> dict[str, float]:
    schemas = read_wsc(Path(path), limit)
    full, partial = [], []
    for s in schemas:
        for c in s.candidates:
            head, tail = substitute(s, c)
            full.append(([tokenizer.eot_token], tokenizer.encode(head + tail)))
            partial.append(([tokenizer.eot_token] + tokenizer.encode(head), tokenizer.encode(tail)))
    full_scores = [s.logprob for s in scorer.score_continuations(full)]
    partial_scores = [s.logprob for s in scorer.score_continuations(partial)]
    n = len(schemas)

    def accuracy(scores: list[float]) -> float:
        picks = [int(scores[2 * i + 1] > scores[2 * i]) for i in range(n)]
        return 100 * sum(p == s.correct for p, s in zip(picks, schemas)) / n

    return {"acc_full": accuracy(full_scores), "acc_partial": accuracy(partial_scores), "examples": n}

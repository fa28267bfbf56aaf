"""CoQA (coqa-dev-v1.0.json): conversational question answering, scored with the official F1 (paper section 3.5).

Prompt: the story, the conversation so far as `Q: ...` / `A: ...` lines (gold answers), then `Q: <question>` and a
final `A:`. Greedy decoding until the end of the line. The F1 is the official script's: answers are lower-cased,
stripped of punctuation and of the articles a/an/the, split on white space; with several gold answers (the
`answers` plus `additional_answers` of the turn) the score is the mean, over each gold answer left out, of the best
F1 against the others.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from evaluation.data import read_json, require_file
from evaluation.lm import Scorer, Tokenizer, stop_at

PUBLISHED = "https://nlp.stanford.edu/data/coqa/coqa-dev-v1.0.json"

PAPER_CHOICES = (
    "prompt: the document, the conversation history and a final 'A:' (paper 3.5)",
    "greedy decoding (paper 3.5), to the end of the line, at most 32 new tokens (ours)",
    "the official leave-one-out F1 on the development set (paper 3.5: 55 F1 on the development set)",
)


def normalize_answer(text: str) -> str:
    """The official CoQA/SQuAD normalization."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def turn_f1(prediction: str, golds: list[str]) -> float:
    """The official leave-one-out F1 over a turn's gold answers."""
    if len(golds) == 1:
        return f1_score(prediction, golds[0])
    return sum(max(f1_score(prediction, g) for g in golds[:i] + golds[i + 1 :]) for i in range(len(golds))) / len(golds)


@dataclass(frozen=True)
class Turn:
    prompt: str
    golds: list[str]


def read_coqa(path: Path, limit: int | None = None) -> list[Turn]:
    require_file(path, "coqa", PUBLISHED)
    turns: list[Turn] = []
    for story in read_json(path, required=("data",))["data"]:
        history = ""
        extra = story.get("additional_answers", {})
        for i, (q, a) in enumerate(zip(story["questions"], story["answers"])):
            golds = [a["input_text"]] + [alt[i]["input_text"] for alt in extra.values() if i < len(alt)]
            turns.append(Turn(f"{story['story']}\n\n{history}Q: {q['input_text']}\nA:", golds))
            history += f"Q: {q['input_text']}\nA: {a['input_text']}\n\n"
            if limit and len(turns) >= limit:
                return turns
    return turns


def evaluate_coqa(
    path: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None, max_new_tokens: int = 32
) -> dict[str, float]:
    turns = read_coqa(Path(path), limit)
    prompts = [[tokenizer.eot_token] + tokenizer.encode(t.prompt) for t in turns]
    outputs = scorer.generate(prompts, max_new_tokens, tokenizer, stop=stop_at("\n"))
    answers = [tokenizer.decode(o).split("\n")[0].strip() for o in outputs]
    return {"f1": 100 * sum(turn_f1(a, t.golds) for a, t in zip(answers, turns)) / len(turns), "examples": len(turns)}

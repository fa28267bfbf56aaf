"""LAMBADA (OpenAI's de-tokenized test file, lambada_test.jsonl): predict the final word of each passage.

Reported (paper section 3.3 and lm-eval's lambada_openai):
- `ppl`: exp of minus the mean log-probability of the final word (" " + word, all its BPE tokens).
- `acc_all_tokens_greedy`: every BPE token of the final word is the argmax under teacher forcing (lm-eval's `acc`).
- `acc_last_token`: the final word's last BPE token is the argmax (the community's reading of the paper's 45.99%).
- `acc_word`: the greedily decoded next word equals the final word (no filter; the paper's 52.66% for 1542M).
- `acc_word_stopword_filter`: the most likely decoded word that is not a stop word (the paper's 63.24% for 1542M).
  Candidates: the `candidates` most likely first tokens after the context, each greedily completed to a word and
  ranked by the word's log-probability. OpenAI never published their stop-word list; ours is `STOP_WORDS` below
  (the usual English function words: articles, pronouns, auxiliaries, prepositions, conjunctions).

Quotes: OpenAI's file keeps typographic quotes (“ ” ‘ ’). By default they are normalized to ASCII " and ', the
form WebText mostly has and the one the original LAMBADA release used; `normalize_quotes=False` keeps them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.data import read_jsonl, require_file
from evaluation.lm import Scorer, Tokenizer

PUBLISHED = "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl"

STOP_WORDS = frozenset("""
a an the and or but nor so yet for of to in on at by with from into onto upon about above below over under
through during before after between among against without within along across around off out up down than then
as if because while when where whence why how what which who whom whose that this these those there here
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself
we us our ours ourselves they them their theirs themselves one ones
is am are was were be been being have has had having do does did doing will would shall should can could
may might must ought not no yes all any both each few more most other some such only own same too very
just also again once further s t d ll m re ve o y
""".split())

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class Passage:
    context: str
    target: str  # the final word as written (no leading space)


def read_lambada(path: Path, limit: int | None = None, normalize_quotes: bool = True) -> list[Passage]:
    require_file(path, "lambada", PUBLISHED)
    passages = []
    for line_no, record in read_jsonl(path, required=("text",)):
        text = record["text"].translate(_QUOTES) if normalize_quotes else record["text"]
        match = re.match(r"^(.*\S)\s+(\S+)\s*$", text, re.S)
        if match is None:
            raise ValueError(f"{path}:{line_no}: a LAMBADA passage needs a context and a final word")
        passages.append(Passage(match.group(1), match.group(2)))
        if limit and len(passages) >= limit:
            break
    return passages


def first_word(text: str) -> str:
    """The word a generated continuation starts with ("" when it starts with punctuation)."""
    match = _WORD.match(text.lstrip())
    return match.group(0) if match and text[:1].isspace() else ""


def _word_finished(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped:
        return False
    match = _WORD.match(stripped)
    return match is None or match.end() < len(stripped)


@dataclass
class LambadaResult:
    metrics: dict[str, float]
    logprobs: list[float] = field(default_factory=list)  # per passage, for the overlap analysis
    correct: list[bool] = field(default_factory=list)  # per passage, stop-word filtered prediction


def evaluate_lambada(path: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None,
                     candidates: int = 10, normalize_quotes: bool = True, max_word_tokens: int = 6) -> LambadaResult:
    passages = read_lambada(Path(path), limit, normalize_quotes)
    contexts = [[tokenizer.eot_token] + tokenizer.encode(p.context) for p in passages]
    scores = scorer.score_continuations([(c, tokenizer.encode(" " + p.target)) for c, p in zip(contexts, passages)])

    # Candidate words: top first tokens, each completed greedily until the word ends.
    firsts = scorer.top_next_tokens(contexts, candidates)
    prompts, owners, heads = [], [], []
    for i, (tokens, _) in enumerate(firsts):
        for token in tokens:
            prompts.append(contexts[i] + [token])
            owners.append(i)
            heads.append(token)
    tails = scorer.generate(prompts, max_word_tokens - 1, tokenizer, stop=_word_finished)
    words = [first_word(tokenizer.decode([h] + t)) for h, t in zip(heads, tails)]
    unique = sorted({(i, w) for i, w in zip(owners, words) if w})
    word_scores = scorer.score_continuations([(contexts[i], tokenizer.encode(" " + w)) for i, w in unique])
    ranked: dict[int, list[tuple[float, str]]] = {}
    for (i, w), s in zip(unique, word_scores):
        ranked.setdefault(i, []).append((s.logprob, w))

    greedy_hits, filtered_hits = [], []
    for i, passage in enumerate(passages):
        target = passage.target.strip(".,;:!?\"'")
        greedy = words[i * candidates]  # the word started by the most likely first token
        options = sorted(ranked.get(i, []), reverse=True)
        filtered = next((w for _, w in options if w.lower() not in STOP_WORDS), "")
        greedy_hits.append(greedy == target)
        filtered_hits.append(filtered == target)

    n = len(passages)
    logprobs = [s.logprob for s in scores]
    metrics = {
        "ppl": math.exp(-sum(logprobs) / n),
        "acc_all_tokens_greedy": 100 * sum(s.is_greedy for s in scores) / n,
        "acc_last_token": 100 * sum(s.last_token_greedy for s in scores) / n,
        "acc_word": 100 * sum(greedy_hits) / n,
        "acc_word_stopword_filter": 100 * sum(filtered_hits) / n,
        "examples": n,
    }
    return LambadaResult(metrics, logprobs, filtered_hits)

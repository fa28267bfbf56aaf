"""LAMBADA (OpenAI's de-tokenized test file, lambada_test.jsonl): predict the final word of each passage.

Protocol `paper` reports:
- `ppl`: exp of minus the mean log-probability of the final word (" " + word, all its BPE tokens).
- `acc_last_token`: the final word's last BPE token is the argmax (the community's reading of the paper's 45.99%).
- `acc_word`: the greedily decoded next word equals the final word (no filter; the paper's 52.66% for 1542M).
- `acc_word_stopword_filter`: the most likely decoded word that is not a stop word (the paper's 63.24% for 1542M).
  Candidates: the `candidates` most likely first tokens after the context, each greedily completed to a word and
  ranked by the word's log-probability.
Protocol `lm-eval` reports lm-evaluation-harness's `lambada_openai`: `perplexity` (as `ppl` above, on its inputs)
and `acc` (the fraction of passages whose every target token is the argmax under teacher forcing).

PAPER_CHOICES below gives the `paper` protocol's choices, one line each with its evidence; LM_EVAL_CHOICES the
harness's (lm_eval/tasks/lambada/lambada_openai.yaml and TemplateLM._encode_pair, lm_eval 0.4.13).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.data import read_jsonl, require_file
from evaluation.lm import Scorer, Tokenizer
from evaluation.protocol import DEFAULTS, LM_EVAL, PAPER

PUBLISHED = "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl"

PAPER_CHOICES = (
    "data: OpenAI's lambada_test.jsonl (paper 3.3: 'a version of the dataset without preprocessing'; on the "
    "pre-processed release GPT-2 small gets 26%, transformers #491)",
    "accuracy in Table 3: stop-word filtered word prediction (paper 3.3: the filter takes 1542M from 52.66% to "
    "63.24%, the Table 3 number); the stop-word list was never published, ours is STOP_WORDS",
    "last-token accuracy reported beside it: 46.67% / 46.89% for GPT-2 small counting the last BPE token "
    "(transformers #13761, openai/gpt-2 #131), close to Table 3's 45.99; lm-eval #356 and gpt-neo PR #29 read the "
    "paper the same way",
    "perplexity: of the whole final word, all its BPE tokens (paper 3.1: per canonical unit, a LAMBADA word)",
    "quotes normalized to ASCII (normalize_quotes=True): no public evidence either way; WebText's extracted pages "
    "mostly use ASCII quotes, and the original LAMBADA release has no typographic quotes",
    "<|endoftext|> before the context (eot_prefix=True): WebText documents are separated by <|endoftext|> in "
    "training (openai/gpt-2-output-dataset), so a passage starts the way a document does; the paper does not say",
    "final word: the last run of non-white-space characters (re `\\s+(\\S+)$`); the paper says 'the final word', "
    "and a newline inside the last space-separated piece ('of\\n\\nPower') separates two words",
    "no truncation but the context's left end, when passage + word exceed the model's context",
)
LM_EVAL_CHOICES = (
    "context: the text's space-separated pieces but the last, joined by ' '; target: ' ' + the last piece "
    "(split(' '), so a target may hold a newline)",
    "typographic quotes kept; no <|endoftext|> before the context (the harness prefixes it only to an empty one)",
    "target tokens: the tail of encode(context + target) after encode(context) (TemplateLM._encode_pair)",
    "perplexity: exp(-mean target log-likelihood); acc: mean of is_greedy (every target token the argmax)",
)

STOP_WORDS = frozenset(
    """
a an the and or but nor so yet for of to in on at by with from into onto upon about above below over under
through during before after between among against without within along across around off out up down than then
as if because while when where whence why how what which who whom whose that this these those there here
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its itself
we us our ours ourselves they them their theirs themselves one ones
is am are was were be been being have has had having do does did doing will would shall should can could
may might must ought not no yes all any both each few more most other some such only own same too very
just also again once further s t d ll m re ve o y
""".split()
)

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_WORD = re.compile(r"[\w'’-]+")
_LAST_WORD = re.compile(r"^(.*\S)\s+(\S+)\s*$", re.S)


@dataclass(frozen=True)
class Passage:
    context: str
    target: str  # the final word as written (no leading space)


def split_passage(text: str, protocol: str) -> tuple[str, str] | None:
    """(context, final word) the way the protocol splits a passage; None when there is no context."""
    if protocol == LM_EVAL:
        pieces = text.split(" ")
        return (" ".join(pieces[:-1]), pieces[-1]) if len(pieces) > 1 else None
    match = _LAST_WORD.match(text)
    return (match.group(1), match.group(2)) if match else None


def read_lambada(
    path: Path, limit: int | None = None, normalize_quotes: bool = True, protocol: str = PAPER
) -> list[Passage]:
    require_file(path, "lambada", PUBLISHED)
    passages = []
    for line_no, record in read_jsonl(path, required=("text",)):
        text = record["text"].translate(_QUOTES) if normalize_quotes else record["text"]
        split = split_passage(text, protocol)
        if split is None:
            raise ValueError(f"{path}:{line_no}: a LAMBADA passage needs a context and a final word")
        passages.append(Passage(*split))
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
    correct: list[bool] = field(default_factory=list)  # per passage: paper, stop-word filtered word; lm-eval, acc


def lm_eval_request(
    tokenizer: Tokenizer,
    context: str,
    continuation: str,
    eot_prefix: bool = False,
) -> tuple[list[int], list[int]]:
    """(context tokens, target tokens) as the harness builds them: trailing spaces of the context move to the
    target, and the target is what encoding the whole text adds after the context's tokens."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    context_tokens = tokenizer.encode(context)
    target_tokens = tokenizer.encode(context + continuation)[len(context_tokens) :]
    if eot_prefix or not context_tokens:  # the harness conditions an empty context on <|endoftext|>
        context_tokens = [tokenizer.eot_token] + context_tokens
    return context_tokens, target_tokens


def evaluate_lambada(
    path: Path,
    scorer: Scorer,
    tokenizer: Tokenizer,
    limit: int | None = None,
    protocol: str = PAPER,
    normalize_quotes: bool | None = None,
    eot_prefix: bool | None = None,
    candidates: int = 10,
    max_word_tokens: int = 6,
) -> LambadaResult:
    """The protocol's metrics; normalize_quotes and eot_prefix default to the protocol's choice."""
    normalize_quotes = DEFAULTS[protocol]["normalize_quotes"] if normalize_quotes is None else normalize_quotes
    eot_prefix = DEFAULTS[protocol]["eot_prefix"] if eot_prefix is None else eot_prefix
    passages = read_lambada(Path(path), limit, normalize_quotes, protocol)
    if protocol == LM_EVAL:
        requests = [lm_eval_request(tokenizer, p.context, " " + p.target, eot_prefix) for p in passages]
        scores = scorer.score_continuations(requests)
        logprobs = [s.logprob for s in scores]
        return LambadaResult(
            {
                "perplexity": math.exp(-sum(logprobs) / len(passages)),
                "acc": sum(s.is_greedy for s in scores) / len(passages),
                "examples": len(passages),
            },
            logprobs,
            [s.is_greedy for s in scores],
        )
    return _evaluate_paper(passages, scorer, tokenizer, eot_prefix, candidates, max_word_tokens)


def _evaluate_paper(
    passages: list[Passage],
    scorer: Scorer,
    tokenizer: Tokenizer,
    eot_prefix: bool,
    candidates: int,
    max_word_tokens: int,
) -> LambadaResult:
    prefix = [tokenizer.eot_token] if eot_prefix else []
    contexts = [prefix + tokenizer.encode(p.context) for p in passages]
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
        "acc_last_token": 100 * sum(s.last_token_greedy for s in scores) / n,
        "acc_word": 100 * sum(greedy_hits) / n,
        "acc_word_stopword_filter": 100 * sum(filtered_hits) / n,
        "examples": n,
    }
    return LambadaResult(metrics, logprobs, filtered_hits)

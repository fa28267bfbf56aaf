"""Children's Book Test, common nouns (CN) and named entities (NE), as the paper ran it (section 3.2).

File format (cbtest_{CN,NE}_{train,valid_2000ex,test_2500ex}.txt): examples separated by blank lines; lines 1-20
are numbered context sentences, line 21 is `21 <question with XXXXX>\\t<answer>\\t\\t<c1>|<c2>|...|<c10>`.

Each candidate is filled in for XXXXX and scored together with the rest of the sentence, conditioned on the context
and the question up to the blank: log P(candidate + rest of sentence | context + sentence start). The highest wins.
The text is PTB-style tokenized (`` '' for quotes, detached punctuation), so it is de-tokenized first. The paper
reports the validation files (the test set's book, The Jungle Book, is in WebText); both formats are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluation.data import require_file
from evaluation.detokenize import ONE_BILLION_WORD, detokenize_line
from evaluation.lm import Scorer, Tokenizer

PUBLISHED = "https://research.facebook.com/downloads/babi/ (CBTest.tgz, data/cbtest_*_valid_2000ex.txt)"
BLANK = "XXXXX"

PAPER_CHOICES = (
    "validation files (paper 3.2: the test set's book, The Jungle Book, is in WebText, so results are on validation)",
    "each candidate scored with the rest of the sentence after it (paper 3.2, following the original LM approach)",
    "de-tokenized (paper 3.2: a de-tokenizer removes PTB-style artifacts); ours: `` '' to \", then the 1BW one",
    "context: the 20 sentences joined by spaces after <|endoftext|> (the paper is silent; a document start, as in "
    "training)",
)


@dataclass(frozen=True)
class Question:
    context: str
    question: str  # with XXXXX for the blank
    answer: str
    candidates: list[str]


def _clean(text: str) -> str:
    return detokenize_line(text.replace("``", '"').replace("''", '"'), ONE_BILLION_WORD)


def read_cbt(path: Path, limit: int | None = None) -> list[Question]:
    require_file(path, "cbt", PUBLISHED)
    questions: list[Question] = []
    block: list[str] = []
    lines = path.read_text(encoding="utf-8").split("\n") + [""]
    for line_no, line in enumerate(lines, 1):
        if line.strip():
            block.append(line)
            continue
        if not block:
            continue
        number, _, last = block[-1].partition(" ")
        fields = last.split("\t")
        if number != "21" or len(fields) != 4 or BLANK not in fields[0]:
            raise ValueError(f"{path}:{line_no - 1}: expected `21 question-with-XXXXX<TAB>answer<TAB><TAB>c1|..|c10`")
        context = " ".join(_clean(l.partition(" ")[2]) for l in block[:-1])
        candidates = [c for c in fields[3].split("|") if c]
        questions.append(Question(context, fields[0], fields[1], candidates))
        block = []
        if limit and len(questions) >= limit:
            break
    return questions


def candidate_request(q: Question, candidate: str) -> tuple[str, str]:
    """(conditioning text, scored text) for one candidate."""
    before, after = _clean(q.question).split(BLANK, 1)
    prefix = (q.context + " " + before).rstrip()
    return prefix, " " + candidate + after


def evaluate_cbt(path: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None) -> dict[str, float]:
    questions = read_cbt(Path(path), limit)
    requests, owners = [], []
    for i, q in enumerate(questions):
        for c in q.candidates:
            prefix, scored = candidate_request(q, c)
            requests.append(([tokenizer.eot_token] + tokenizer.encode(prefix), tokenizer.encode(scored)))
            owners.append((i, c))
    best: dict[int, tuple[float, str]] = {}
    for (i, c), s in zip(owners, scorer.score_continuations(requests)):
        if i not in best or s.logprob > best[i][0]:
            best[i] = (s.logprob, c)
    correct = sum(best[i][1] == q.answer for i, q in enumerate(questions))
    return {"acc": 100 * correct / len(questions), "examples": len(questions)}

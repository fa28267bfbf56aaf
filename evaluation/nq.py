"""Natural Questions, open-domain (NQ-open jsonl: {"question": ..., "answer": [...]}), exact match (section 3.8).

The context is seeded with example question-answer pairs, `Q: <question>?` / `A: <answer>` blocks taken from the
first `n_shots` records of the file (those are not scored); then `Q: <question>?` and `A:`. Greedy decoding until the
end of the line; a prediction is right when its normalized form (lower case, no punctuation or articles) equals a
normalized gold answer.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.coqa import normalize_answer
from evaluation.data import read_jsonl, require_file
from evaluation.lm import Scorer, Tokenizer, stop_at

PUBLISHED = "https://github.com/google-research-datasets/natural-questions/tree/master/nq_open (NQ-open.dev.jsonl)"

PAPER_CHOICES = (
    "the context seeded with example question-answer pairs, exact match (paper 3.8)",
    "8 example pairs from the file's first records, not scored; `Q:`/`A:` lines: ours, the paper gives neither",
    "greedy decoding to the end of the line; answers normalized as SQuAD's script does: ours",
)


def _question(q: str) -> str:
    q = q.strip()
    return q if q.endswith("?") else q + "?"


def read_nq(path: Path) -> list[tuple[str, list[str]]]:
    require_file(path, "nq", PUBLISHED)
    records = []
    for line_no, record in read_jsonl(path, required=("question", "answer")):
        if not isinstance(record["answer"], list):
            raise ValueError(f"{path}:{line_no}: needs `question` and an `answer` list")
        records.append((record["question"], record["answer"]))
    return records


def evaluate_nq(
    path: Path,
    scorer: Scorer,
    tokenizer: Tokenizer,
    limit: int | None = None,
    n_shots: int = 8,
    max_new_tokens: int = 16,
) -> dict[str, float]:
    records = read_nq(Path(path))
    if len(records) <= n_shots:
        raise ValueError(f"{path}: {len(records)} records, need more than the {n_shots} used as examples")
    shots = "".join(f"Q: {_question(q)}\nA: {a[0]}\n\n" for q, a in records[:n_shots])
    tests = records[n_shots:][:limit]
    prompts = [[tokenizer.eot_token] + tokenizer.encode(f"{shots}Q: {_question(q)}\nA:") for q, _ in tests]
    outputs = scorer.generate(prompts, max_new_tokens, tokenizer, stop=stop_at("\n"))
    hits = 0
    for out, (_, golds) in zip(outputs, tests):
        prediction = normalize_answer(tokenizer.decode(out).split("\n")[0])
        hits += prediction in {normalize_answer(g) for g in golds}
    return {"exact_match": 100 * hits / len(tests), "examples": len(tests)}

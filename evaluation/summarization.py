"""CNN/Daily Mail summarization with `TL;DR:` (paper section 3.6), ROUGE-1/2/L F1 via rouge-score.

Input, either of the two published forms:
- a `.jsonl` file with `article` and `highlights` fields (the Hugging Face `cnn_dailymail` 3.0.0 test split, one
  record per line);
- a folder of abisee `.story` files (the article, then each reference sentence after an `@highlight` line).
Prompt: the article (its beginning, cut so that prompt + 100 new tokens fit the context), a newline and `TL;DR:`.
100 tokens are sampled with top-k 2 (seeded), and the first 3 generated sentences are the summary.
"""

from __future__ import annotations

from pathlib import Path

from rouge_score import rouge_scorer

from evaluation.data import read_jsonl
from evaluation.lm import Scorer, Tokenizer, split_sentences

PUBLISHED = (
    "https://huggingface.co/datasets/abisee/cnn_dailymail (3.0.0 test, as jsonl) or the .story files of "
    "https://cs.nyu.edu/~kcho/DMQA/"
)
PROMPT_SUFFIX = "\nTL;DR:"

PAPER_CHOICES = (
    "the article, then TL;DR:, 100 tokens with top-k sampling k=2, the first 3 generated sentences (paper 3.6)",
    "ROUGE-1/2/L F1 (Table 4) with rouge-score and stemming: ours, the paper does not name its ROUGE implementation",
    "the article cut so that it and 100 new tokens fit the context: ours",
)


def parse_story(text: str) -> tuple[str, str]:
    """(article, reference) from an abisee .story file: highlights follow `@highlight` lines."""
    parts = text.split("@highlight")
    article = " ".join(parts[0].split())
    highlights = [" ".join(p.split()) for p in parts[1:] if p.strip()]
    return article, "\n".join(highlights)


def read_cnndm(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    path = Path(path)
    if path.is_dir():
        stories = sorted(path.glob("*.story"))[:limit]
        if not stories:
            raise FileNotFoundError(f"cnn_dailymail: no .story files in {path} (published at {PUBLISHED})")
        return [parse_story(s.read_text(encoding="utf-8")) for s in stories]
    if not path.is_file():
        raise FileNotFoundError(
            f"cnn_dailymail: expected a .jsonl file or a folder of .story files at {path} "
            f"(published at {PUBLISHED}); nothing is downloaded at run time"
        )
    records = []
    for _, record in read_jsonl(path, required=("article", "highlights")):
        records.append((record["article"], record["highlights"]))
        if limit and len(records) >= limit:
            break
    return records


def evaluate_summarization(
    path: Path,
    scorer: Scorer,
    tokenizer: Tokenizer,
    limit: int | None = None,
    max_new_tokens: int = 100,
    top_k: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    records = read_cnndm(Path(path), limit)
    suffix = tokenizer.encode(PROMPT_SUFFIX)
    room = max(0, scorer.block_size - max_new_tokens - len(suffix) - 1)  # article tokens that fit
    prompts = [[tokenizer.eot_token] + tokenizer.encode(article)[:room] + suffix for article, _ in records]
    outputs = scorer.generate(prompts, max_new_tokens, tokenizer, top_k=top_k, seed=seed)
    summaries = ["\n".join(split_sentences(tokenizer.decode(o))[:3]) for o in outputs]
    rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for summary, (_, reference) in zip(summaries, records):
        for key, score in rouge.score(reference, summary).items():
            totals[key] += score.fmeasure
    results = {k: 100 * v / len(records) for k, v in totals.items()}
    results["rouge_avg"] = sum(results.values()) / 3
    results["examples"] = len(records)
    return results

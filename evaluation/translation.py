"""WMT14 newstest2014 English<->French (the sgm files), greedy translation, BLEU with sacrebleu (section 3.7).

Prompt: `n_shots` example pairs `source sentence = target sentence`, one per line, then `source sentence =`.
The example pairs are the first segments of the test set, which are then not scored. The hypothesis is the first
generated line (greedy, stopped at the newline), the first "sentence" in the paper's sense of one segment.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import sacrebleu

from evaluation.data import require_dir, require_file
from evaluation.lm import Scorer, Tokenizer, stop_at

PUBLISHED = "https://www.statmt.org/wmt14/test-full.tgz (newstest2014-fren-{src,ref}.{en,fr}.sgm)"
_SEG = re.compile(r"<seg[^>]*>(.*?)</seg>", re.S)

PAPER_CHOICES = (
    "example pairs `english sentence = french sentence`, then `english sentence =` (paper 3.7)",
    "greedy decoding, the first generated sentence (paper 3.7); ours: the first generated line",
    "5 example pairs from the test set's first segments, not scored: ours, the paper gives no count or source",
    "corpus BLEU with sacrebleu's defaults: ours, the paper does not name its BLEU implementation",
)


def read_sgm(path: Path) -> list[str]:
    require_file(path, "wmt14", PUBLISHED)
    return [html.unescape(s).strip() for s in _SEG.findall(path.read_text(encoding="utf-8"))]


def read_pairs(folder: Path, source: str, target: str) -> list[tuple[str, str]]:
    require_dir(folder, "wmt14", PUBLISHED)
    sources = read_sgm(folder / f"newstest2014-fren-src.{source}.sgm")
    targets = read_sgm(folder / f"newstest2014-fren-ref.{target}.sgm")
    if len(sources) != len(targets):
        raise ValueError(f"{folder}: {len(sources)} source segments but {len(targets)} reference segments")
    return list(zip(sources, targets))


def evaluate_translation(
    folder: Path,
    source: str,
    target: str,
    scorer: Scorer,
    tokenizer: Tokenizer,
    limit: int | None = None,
    n_shots: int = 5,
) -> dict[str, float]:
    pairs = read_pairs(Path(folder), source, target)
    context = "".join(f"{s} = {t}\n" for s, t in pairs[:n_shots])
    tests = pairs[n_shots:][:limit]
    prompts = [[tokenizer.eot_token] + tokenizer.encode(f"{context}{s} =") for s, _ in tests]
    max_new = min(256, scorer.block_size // 2)
    outputs = scorer.generate(prompts, max_new, tokenizer, stop=stop_at("\n"))
    hypotheses = [tokenizer.decode(o).split("\n")[0].strip() for o in outputs]
    bleu = sacrebleu.corpus_bleu(hypotheses, [[t for _, t in tests]])
    return {"bleu": bleu.score, "examples": len(tests)}

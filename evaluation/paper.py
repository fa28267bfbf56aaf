"""The GPT-2 paper's zero-shot numbers (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners").

Sources: Table 3 (the four model sizes on the language-modelling benchmarks, LAMBADA and CBT), sections 3.3-3.8
(largest model only: LAMBADA without the stop-word filter, Winograd, CoQA, CNN/DM (Table 4), WMT14, Natural
Questions) and Table 6 (8-gram overlap of the test sets with WebText train). Keys are (task, metric) as our
evaluation reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The paper's size labels and the true parameter counts of the released checkpoints (openai/gpt-2 README).
SIZES: dict[str, int] = {"117M": 124_439_808, "345M": 354_823_168, "762M": 774_030_080, "1542M": 1_557_611_200}


@dataclass(frozen=True)
class PaperNumber:
    values: dict[str, float]  # size label -> value
    source: str
    higher_is_better: bool


def _table3(*values: float, higher: bool) -> PaperNumber:
    return PaperNumber(dict(zip(SIZES, values)), "Table 3", higher)


def _largest(value: float, source: str, higher: bool = True) -> PaperNumber:
    return PaperNumber({"1542M": value}, source, higher)


PAPER: dict[tuple[str, str], PaperNumber] = {
    ("lambada", "ppl"): _table3(35.13, 15.60, 10.87, 8.63, higher=False),
    ("lambada", "acc_word_stopword_filter"): _table3(45.99, 55.48, 60.12, 63.24, higher=True),
    ("lambada", "acc_word"): _largest(52.66, "section 3.3 (no stop-word filter)"),
    ("cbt-cn", "acc"): _table3(87.65, 92.35, 93.45, 93.30, higher=True),
    ("cbt-ne", "acc"): _table3(83.4, 87.1, 88.0, 89.05, higher=True),
    ("wikitext2", "ppl"): _table3(29.41, 22.76, 19.93, 18.34, higher=False),
    ("ptb", "ppl"): _table3(65.85, 47.33, 40.31, 35.76, higher=False),
    ("enwik8", "bpb"): _table3(1.16, 1.01, 0.97, 0.93, higher=False),
    ("text8", "bpc"): _table3(1.17, 1.06, 1.02, 0.98, higher=False),
    ("wikitext103", "ppl"): _table3(37.50, 26.37, 22.05, 17.48, higher=False),
    ("1bw", "ppl"): _table3(75.20, 55.72, 44.575, 42.16, higher=False),
    # Figure 3 plots both scorings per size; the text gives only the largest model's best, 70.70%.
    ("wsc273", "acc_partial"): _largest(70.70, "section 3.4 / Figure 3"),
    ("coqa", "f1"): _largest(55.0, "section 3.5"),
    ("cnn_dailymail", "rouge1"): _largest(29.34, "Table 4"),
    ("cnn_dailymail", "rouge2"): _largest(8.27, "Table 4"),
    ("cnn_dailymail", "rougeL"): _largest(26.58, "Table 4"),
    ("cnn_dailymail", "rouge_avg"): _largest(21.40, "Table 4"),
    ("wmt14-en-fr", "bleu"): _largest(5.0, "section 3.7"),
    ("wmt14-fr-en", "bleu"): _largest(11.5, "section 3.7"),
    ("nq", "exact_match"): _largest(4.1, "section 3.8"),
}

# Table 6: percentage of each test set's 8-grams found in WebText train (a property of the data, not of a model
# size); LAMBADA's average per-example overlap from section 4.
OVERLAP_WEBTEXT: dict[str, float] = {
    "ptb": 0.88,
    "wikitext2": 1.63,
    "enwik8": 6.31,
    "text8": 3.94,
    "wikitext103": 2.42,
    "1bw": 3.75,
}
PAPER.update(
    {
        ("overlap", f"{task}_8grams_in_train_pct"): PaperNumber({"WebText": value}, "Table 6", False)
        for task, value in OVERLAP_WEBTEXT.items()
    }
)
PAPER[("overlap", "lambada_mean_example_overlap")] = PaperNumber({"WebText": 1.2}, "section 4", False)


def nearest_size(n_params: int) -> str:
    """The paper's size label closest to a parameter count (on a log scale)."""
    return min(SIZES, key=lambda label: abs(math.log(SIZES[label]) - math.log(max(n_params, 1))))


def paper_value(task: str, metric: str, n_params: int) -> tuple[float, str, str] | None:
    """(value, size label, source) of the paper's number at the size nearest to n_params that the paper reports."""
    number = PAPER.get((task, metric))
    if number is None:
        return None
    wanted = math.log(max(n_params, 1))
    label = min(number.values, key=lambda l: abs(math.log(SIZES[l]) - wanted) if l in SIZES else 0.0)
    return number.values[label], label, number.source

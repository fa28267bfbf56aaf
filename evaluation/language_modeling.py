"""Language-modelling benchmarks scored per canonical unit, as in the paper (section 3.1), and as lm-eval scores them.

Protocol `paper`: a data set's score is the log-probability of its whole (de-tokenized) text under the model divided
by the number of canonical units of the ORIGINAL file: words for WikiText-2/103, PTB and One Billion Word
(perplexity `ppl`), bytes for enwik8 (`bpb`), characters for text8 (`bpc`). Every task also reports bits per byte of
the original text (`bpb`), which compares across tokenizers where word and token perplexity do not. Documents are
scored with rolling windows (`Scorer.rolling_logprob`); the headline number uses the protocol's stride, and an
overlapping stride of half the context is reported next to it. PAPER_CHOICES lists the choices with their evidence.

Protocol `lm-eval`: lm-evaluation-harness's `wikitext` recipe (lm_eval/tasks/wikitext, 0.4.13) applied to
WikiText-2/103 and PTB: LM_EVAL_CHOICES lists what it does; it reports `word_perplexity`, `byte_perplexity` and
`bits_per_byte`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from evaluation.data import require_file
from evaluation.detokenize import ONE_BILLION_WORD, PTB, WIKITEXT, Style, detokenize_lines
from evaluation.lm import Scorer, Tokenizer
from evaluation.protocol import LM_EVAL, LM_EVAL_TASKS, PAPER

TEST_SIZE = 5_000_000  # enwik8 and text8: the last 5M bytes/characters are the test set

PAPER_CHOICES = (
    "per canonical unit of the original file (paper 3.1: 'dividing by the number of canonical units')",
    "invertible de-tokenizers (paper 3.1, worth 2.5 to 5 perplexity; OpenAI never released theirs, ours are in "
    "evaluation.detokenize and keep a line only where re-tokenizing gives it back)",
    "windows: disjoint, stride = the context (the paper is silent; transformers' perplexity guide gets 19.44 for "
    "gpt2-large on WikiText-2 with stride 1024, near the paper's 19.93, and 16.44 with stride 512); stride 512 "
    "is reported beside it as ppl@stride<n>",
    "WikiText words: the white-space separated tokens of wiki.test.raw, headings included, no end-of-line tokens "
    "(lm-eval's count on the original text, the only published recipe; the paper gives no count)",
    "WikiText documents: articles, split at top-level ` = Title = ` lines, each scored from <|endoftext|>",
    "PTB words: its tokens plus one <eos> per sentence, 82,430 on the test file (the count the PTB results the paper "
    "compares with use, Mikolov's setup; the newline between sentences is scored)",
    "1BW: each held-out sentence is its own document (the sentences are shuffled), counting its tokens only",
    "enwik8 / text8: the last 5M bytes / characters (the standard test split of Dai et al. 2019, Table 3's SOTA)",
)
LM_EVAL_CHOICES = (
    "WikiText documents: EleutherAI/wikitext_document_level's pages: a new page at every line that, with `= = =` "
    "and `= =` squeezed, starts with '= ' and ends with ' ='; an all-blank page is dropped except the last",
    "PTB: the whole file is one page (the harness has no PTB task; the wikitext recipe over the file as one document)",
    "scored text: the recipe's wikitext_detokenizer applied to the page (LM_EVAL_DETOKENIZER)",
    "words: len(re.split(r'\\s+', page)) and bytes: len(page.encode()) of the original page, summed over pages",
    "windows: disjoint, the first from <|endoftext|>, each later one conditioned on the one token before it "
    "(get_rolling_token_windows with context_len=1)",
)


@dataclass(frozen=True)
class Corpus:
    """A test text cut into documents: what is scored and how many canonical units the original has."""

    documents: list[str]  # text the model scores (de-tokenized where the data set has a de-tokenizer)
    units: int  # canonical units (words, bytes or characters) of the original text
    unit: str  # "word", "byte" or "char"
    n_bytes: int  # UTF-8 bytes of the original text, for bits per byte
    detokenized_fraction: float | None = None


def _detok(text: str, style: Style | None) -> tuple[str, float | None]:
    if style is None:
        return text, None
    result = detokenize_lines(text, style)
    return result.text, result.fraction


_WIKI_TITLE = re.compile(r"^ = [^=].* = $")


def read_wikitext(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """wiki.test.raw split into articles at its top-level ` = Title = ` lines."""
    articles: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if _WIKI_TITLE.match(line) or not articles:
            articles.append([])
        articles[-1].append(line)
    originals = ["\n".join(a) for a in articles if any(l.strip() for l in a)][:limit]
    docs, fractions = zip(*(_detok(a, WIKITEXT if detokenize else None) for a in originals))
    fraction = None if not detokenize else sum(f or 0 for f in fractions) / len(fractions)
    return Corpus(
        [d.strip() for d in docs],
        sum(len(a.split()) for a in originals),
        "word",
        sum(len(a.encode("utf-8")) for a in originals),
        fraction,
    )


def _line_bytes(lines: list[str]) -> int:
    """UTF-8 bytes of the lines with their newlines."""
    return sum(len(l.encode("utf-8")) + 1 for l in lines)


def read_ptb(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """ptb.test.txt (Mikolov's version): one sentence per line, scored as one document with a newline per sentence."""
    lines = [l for l in path.read_text(encoding="utf-8").split("\n") if l.strip()][:limit]
    original = "\n".join(lines)
    text, fraction = _detok(original, PTB if detokenize else None)
    return Corpus([text + "\n"], sum(len(l.split()) + 1 for l in lines), "word", _line_bytes(lines), fraction)


def read_one_billion_word(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """news.en.heldout-00000-of-00050: shuffled sentences, each its own document."""
    lines = [l for l in path.read_text(encoding="utf-8").split("\n") if l.strip()][:limit]
    text, fraction = _detok("\n".join(lines), ONE_BILLION_WORD if detokenize else None)
    return Corpus(text.split("\n"), sum(len(l.split()) for l in lines), "word", _line_bytes(lines), fraction)


def read_enwik8(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """The last 5M bytes of enwik8 (limit: score only its first limit*1000 bytes), decoded as UTF-8.

    A multi-byte character cut at the edge becomes U+FFFD; the unit count stays the number of bytes.
    """
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - TEST_SIZE))
        data = f.read()
    data = data[: limit * 1000] if limit else data
    return Corpus([data.decode("utf-8", errors="replace")], len(data), "byte", len(data))


def read_text8(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """The last 5M characters of text8 (limit: score only its first limit*1000 characters)."""
    text = path.read_text(encoding="ascii")[-TEST_SIZE:]
    text = text[: limit * 1000] if limit else text
    return Corpus([text], len(text), "char", len(text))


def read_webtext_val(corpus_dir: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """Our own corpus' validation shards (<corpus>/shards/val-*.parquet, column `text`), each document on its own."""
    shards = sorted((Path(corpus_dir) / "shards").glob("val-*.parquet"))
    if not shards:
        raise FileNotFoundError(
            f"webtext-val: no validation shards {corpus_dir}/shards/val-*.parquet (written by the webtext flow)"
        )
    docs: list[str] = []
    for shard in shards:
        docs += [t for t in pq.read_table(shard, columns=["text"]).column("text").to_pylist() if t]
        if limit and len(docs) >= limit:
            break
    docs = docs[:limit]
    return Corpus(docs, sum(len(d.split()) for d in docs), "word", sum(len(d.encode("utf-8")) for d in docs))


@dataclass(frozen=True)
class LMTask:
    name: str
    default_path: str  # relative to data_dir
    published: str
    read: Callable[[Path, int | None, bool], Corpus]
    metric: str  # "ppl" (per word), "bpb" or "bpc"


LM_TASKS = {
    t.name: t
    for t in (
        LMTask(
            "wikitext2",
            "wikitext-2-raw/wiki.test.raw",
            "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip",
            read_wikitext,
            "ppl",
        ),
        LMTask(
            "wikitext103",
            "wikitext-103-raw/wiki.test.raw",
            "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
            read_wikitext,
            "ppl",
        ),
        LMTask(
            "ptb",
            "ptb/ptb.test.txt",
            "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz (data/ptb.test.txt)",
            read_ptb,
            "ppl",
        ),
        LMTask("enwik8", "enwik8/enwik8", "http://mattmahoney.net/dc/enwik8.zip", read_enwik8, "bpb"),
        LMTask("text8", "text8/text8", "http://mattmahoney.net/dc/text8.zip", read_text8, "bpc"),
        LMTask(
            "1bw",
            "1bw/news.en.heldout-00000-of-00050",
            "https://www.statmt.org/lm-benchmark/1-billion-word-language-modeling-benchmark-r13output.tar.gz "
            "(heldout-monolingual.tokenized.shuffled/)",
            read_one_billion_word,
            "ppl",
        ),
    )
}


def score_corpus(
    corpus: Corpus, scorer: Scorer, tokenizer: Tokenizer, metric: str, strides: Iterable[int | None] = (None,)
) -> dict[str, float]:
    """The metric per stride ("ppl", "bpb" or "bpc"; the first stride's number is unsuffixed), bits per byte of the
    original text, and token statistics."""
    tokens = [tokenizer.encode(d) for d in corpus.documents]
    results: dict[str, float] = {"units": corpus.units, "bytes": corpus.n_bytes, "tokens": sum(len(t) for t in tokens)}
    if corpus.detokenized_fraction is not None:
        results["detokenized_lines"] = corpus.detokenized_fraction
    for i, stride in enumerate(strides):
        logprob = sum(scorer.rolling_logprob(tokens, tokenizer.eot_token, stride))
        suffix = "" if i == 0 else f"@stride{stride}"
        nats_per_unit = -logprob / corpus.units
        results[metric + suffix] = math.exp(nats_per_unit) if metric == "ppl" else nats_per_unit / math.log(2)
        if i == 0:
            results["bpb"] = -logprob / corpus.n_bytes / math.log(2)
            results["token_ppl"] = math.exp(-logprob / results["tokens"])
    return results


# lm-eval's wikitext_detokenizer (lm_eval/tasks/wikitext/preprocess_wikitext.py), step by step in its order:
# ("replace", old, new) or ("sub", pattern, replacement). Its second step is reproduced as it is: the pattern is
# the literal text "/' <digit>/" and the replacement the literal "/'[0-9]/".
LM_EVAL_DETOKENIZER: tuple[tuple[str, str, str], ...] = (
    ("replace", "s '", "s'"),
    ("sub", r"/' [0-9]/", r"/'[0-9]/"),
    ("replace", " @-@ ", "-"),
    ("replace", " @,@ ", ","),
    ("replace", " @.@ ", "."),
    ("replace", " : ", ": "),
    ("replace", " ; ", "; "),
    ("replace", " . ", ". "),
    ("replace", " ! ", "! "),
    ("replace", " ? ", "? "),
    ("replace", " , ", ", "),
    ("sub", r"\(\s*([^\)]*?)\s*\)", r"(\1)"),
    ("sub", r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
    ("sub", r"{\s*([^}]*?)\s*}", r"{\1}"),
    ("sub", r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
    ("sub", r"'\s*([^']*?)\s*'", r"'\1'"),
    ("replace", "= = = =", "===="),
    ("replace", "= = =", "==="),
    ("replace", "= =", "=="),
    ("replace", " \u00b0 ", "\u00b0"),
    ("replace", " \n", "\n"),
    ("replace", "\n ", "\n"),
    ("replace", " N ", " 1 "),
    ("replace", " 's", "'s"),
)


def lm_eval_detokenize(page: str) -> str:
    for kind, old, new in LM_EVAL_DETOKENIZER:
        page = page.replace(old, new) if kind == "replace" else re.sub(old, new, page)
    return page


def _is_page_start(line: str) -> bool:
    squeezed = line.replace("= = =", "===").replace("= =", "==").strip()
    return squeezed.startswith("= ") and squeezed.endswith(" =")


def wikitext_pages(text: str) -> list[str]:
    """wiki.*.raw cut into pages as EleutherAI/wikitext_document_level cuts it."""
    pages, lines = [], []
    for line in text.split("\n"):
        if _is_page_start(line):
            if "\n".join(lines).strip():
                pages.append("\n".join(lines))
            lines = []
        lines.append(line)
    return pages + ["\n".join(lines)]


def read_lm_eval_pages(task: str, path: Path, limit: int | None = None) -> list[str]:
    """The original pages lm-eval's wikitext recipe scores: WikiText's articles, or the PTB file as one page."""
    text = path.read_text(encoding="utf-8")
    if task == "ptb":
        return ["".join(text.splitlines(keepends=True)[:limit])]  # limit: sentences
    return wikitext_pages(text)[:limit]


def score_lm_eval(
    pages: list[str],
    scorer: Scorer,
    tokenizer: Tokenizer,
    stride: int | None = None,
) -> dict[str, float]:
    """The wikitext recipe's metrics: log-likelihood of the de-tokenized pages per word and byte of the originals."""
    tokens = [tokenizer.encode(lm_eval_detokenize(p)) for p in pages]
    logprob = sum(scorer.rolling_logprob(tokens, tokenizer.eot_token, stride))
    words = sum(len(re.split(r"\s+", p)) for p in pages)
    n_bytes = sum(len(p.encode("utf-8")) for p in pages)
    return {
        "word_perplexity": math.exp(-logprob / words),
        "byte_perplexity": math.exp(-logprob / n_bytes),
        "bits_per_byte": -logprob / n_bytes / math.log(2),
        "words": words,
        "bytes": n_bytes,
        "tokens": sum(len(t) for t in tokens),
        "documents": len(pages),
    }


def evaluate_lm_task(
    task: LMTask,
    path: Path,
    scorer: Scorer,
    tokenizer: Tokenizer,
    limit: int | None = None,
    protocol: str = PAPER,
    stride: int | None = None,
    detokenize: bool = True,
    overlap_stride: int | None = None,
) -> dict[str, float]:
    """The protocol's metrics; stride None: disjoint windows of the model's context."""
    path = Path(path)
    require_file(path, task.name, task.published)
    if protocol == LM_EVAL:
        if task.name not in LM_EVAL_TASKS:
            raise ValueError(f"{task.name}: the lm-eval protocol covers {', '.join(LM_EVAL_TASKS)} only")
        return score_lm_eval(read_lm_eval_pages(task.name, path, limit), scorer, tokenizer, stride)
    corpus = task.read(path, limit, detokenize)
    strides = (stride,) if overlap_stride is None else (stride, overlap_stride)
    return score_corpus(corpus, scorer, tokenizer, task.metric, strides)


def evaluate_webtext_val(
    corpus_dir: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None, stride: int | None = None
) -> dict[str, float]:
    """Word perplexity and bits per byte on our own held-out shards."""
    return score_corpus(read_webtext_val(corpus_dir, limit), scorer, tokenizer, "ppl", (stride,))

"""Language-modelling benchmarks scored per canonical unit, as in the paper (section 3.1).

A data set's score is the log-probability of its whole (de-tokenized) text under the model divided by the number of
canonical units of the ORIGINAL file: words for WikiText-2/103, PTB and One Billion Word (perplexity), bytes for
enwik8 (bits per byte), characters for text8 (bits per character). Documents are scored with rolling windows
(`Scorer.rolling_logprob`); the headline number uses stride = context (disjoint windows), and an overlapping stride
is reported next to it.

Word counts: WikiText counts the whitespace-separated tokens of the raw file (lm-eval's convention); PTB counts its
tokens plus one end-of-sentence per line (the standard count, <eos> included; the newline between sentences is
scored); 1BW's held-out sentences are shuffled, so each is scored as its own document after the EOT token and counts
its tokens only.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pyarrow.parquet as pq

from evaluation.data import require_file
from evaluation.detokenize import ONE_BILLION_WORD, PTB, WIKITEXT, Style, detokenize_lines
from evaluation.lm import Scorer, Tokenizer

TEST_SIZE = 5_000_000  # enwik8 and text8: the last 5M bytes/characters are the test set


@dataclass(frozen=True)
class Corpus:
    """A test text cut into documents: what is scored and how many canonical units the original has."""
    documents: list[str]  # text the model scores (de-tokenized where the data set has a de-tokenizer)
    units: int  # canonical units (words, bytes or characters) of the original text
    unit: str  # "word", "byte" or "char"
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
    return Corpus([d.strip() for d in docs], sum(len(a.split()) for a in originals), "word", fraction)


def read_ptb(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """ptb.test.txt (Mikolov's version): one sentence per line, scored as one document with a newline per sentence."""
    lines = [l for l in path.read_text(encoding="utf-8").split("\n") if l.strip()][:limit]
    original = "\n".join(lines)
    text, fraction = _detok(original, PTB if detokenize else None)
    return Corpus([text + "\n"], sum(len(l.split()) + 1 for l in lines), "word", fraction)


def read_one_billion_word(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """news.en.heldout-00000-of-00050: shuffled sentences, each its own document."""
    lines = [l for l in path.read_text(encoding="utf-8").split("\n") if l.strip()][:limit]
    text, fraction = _detok("\n".join(lines), ONE_BILLION_WORD if detokenize else None)
    return Corpus(text.split("\n"), sum(len(l.split()) for l in lines), "word", fraction)


def read_enwik8(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """The last 5M bytes of enwik8 (limit: score only its first limit*1000 bytes), decoded as UTF-8.

    A multi-byte character cut at the edge becomes U+FFFD; the unit count stays the number of bytes.
    """
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - TEST_SIZE))
        data = f.read()
    data = data[:limit * 1000] if limit else data
    return Corpus([data.decode("utf-8", errors="replace")], len(data), "byte")


def read_text8(path: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """The last 5M characters of text8 (limit: score only its first limit*1000 characters)."""
    text = path.read_text(encoding="ascii")[-TEST_SIZE:]
    text = text[:limit * 1000] if limit else text
    return Corpus([text], len(text), "char")


def read_webtext_val(corpus_dir: Path, limit: int | None = None, detokenize: bool = True) -> Corpus:
    """Our own corpus' validation shards (<corpus>/shards/val-*.parquet, column `text`), each document on its own."""
    shards = sorted((Path(corpus_dir) / "shards").glob("val-*.parquet"))
    if not shards:
        raise FileNotFoundError(f"webtext-val: no validation shards {corpus_dir}/shards/val-*.parquet "
                                "(written by the webtext flow)")
    docs: list[str] = []
    for shard in shards:
        docs += [t for t in pq.read_table(shard, columns=["text"]).column("text").to_pylist() if t]
        if limit and len(docs) >= limit:
            break
    docs = docs[:limit]
    return Corpus(docs, sum(len(d.split()) for d in docs), "word")


@dataclass(frozen=True)
class LMTask:
    name: str
    default_path: str  # relative to data_dir
    published: str
    read: Callable[[Path, int | None, bool], Corpus]
    metric: str  # "ppl" (per word), "bpb" or "bpc"


LM_TASKS = {t.name: t for t in (
    LMTask("wikitext2", "wikitext-2-raw/wiki.test.raw",
           "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip", read_wikitext, "ppl"),
    LMTask("wikitext103", "wikitext-103-raw/wiki.test.raw",
           "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip", read_wikitext, "ppl"),
    LMTask("ptb", "ptb/ptb.test.txt",
           "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz (data/ptb.test.txt)", read_ptb, "ppl"),
    LMTask("enwik8", "enwik8/enwik8", "http://mattmahoney.net/dc/enwik8.zip", read_enwik8, "bpb"),
    LMTask("text8", "text8/text8", "http://mattmahoney.net/dc/text8.zip", read_text8, "bpc"),
    LMTask("1bw", "1bw/news.en.heldout-00000-of-00050",
           "https://www.statmt.org/lm-benchmark/1-billion-word-language-modeling-benchmark-r13output.tar.gz "
           "(heldout-monolingual.tokenized.shuffled/)", read_one_billion_word, "ppl"),
)}


def score_corpus(corpus: Corpus, scorer: Scorer, tokenizer: Tokenizer, metric: str,
                 strides: Iterable[int | None] = (None,)) -> dict[str, float]:
    """The metric per stride ("ppl", "bpb" or "bpc"; the first stride's number is unsuffixed) plus token statistics."""
    tokens = [tokenizer.encode(d) for d in corpus.documents]
    results: dict[str, float] = {"units": corpus.units, "tokens": sum(len(t) for t in tokens)}
    if corpus.detokenized_fraction is not None:
        results["detokenized_lines"] = corpus.detokenized_fraction
    for i, stride in enumerate(strides):
        logprob = sum(scorer.rolling_logprob(tokens, tokenizer.eot_token, stride))
        suffix = "" if i == 0 else f"@stride{stride}"
        nats_per_unit = -logprob / corpus.units
        results[metric + suffix] = math.exp(nats_per_unit) if metric == "ppl" else nats_per_unit / math.log(2)
        if i == 0:
            results["token_ppl"] = math.exp(-logprob / results["tokens"])
    return results


def evaluate_lm_task(task: LMTask, path: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None,
                     detokenize: bool = True, overlap_stride: int | None = None) -> dict[str, float]:
    path = Path(path)
    require_file(path, task.name, task.published)
    corpus = task.read(path, limit, detokenize)
    strides = (None,) if overlap_stride is None else (None, overlap_stride)
    return score_corpus(corpus, scorer, tokenizer, task.metric, strides)


def evaluate_webtext_val(corpus_dir: Path, scorer: Scorer, tokenizer: Tokenizer, limit: int | None = None,
                         ) -> dict[str, float]:
    """Word perplexity and bits per byte on our own held-out shards."""
    corpus = read_webtext_val(corpus_dir, limit)
    results = score_corpus(corpus, scorer, tokenizer, "ppl")
    n_bytes = sum(len(d.encode("utf-8")) for d in corpus.documents)
    nats = math.log(results["ppl"]) * corpus.units  # total negative log-likelihood
    results["bpb"] = nats / n_bytes / math.log(2)
    return results

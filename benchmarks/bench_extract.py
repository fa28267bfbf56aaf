"""Extraction benchmarks on the 300 gold pages of ../shared/data/web/trafilatura/ (trafilatura's evaluation set).

Default: precision, recall and F1 (scored like trafilatura's own evaluation: a "with" snippet found in the text is a
true positive, one missing a false negative, a "without" snippet found a false positive) and CPU cost of bare
`trafilatura.extract()` with its defaults, of trafilatura's modes, of the other extractors and of the project's rule
(`corpus.extract.extract_with`), all in one run. Every page goes through every candidate in turn, in a rotating
order, and each call is timed by this process's CPU time, so other load on the machine does not bias the ratios.
The rule's three parameters (`teaser_ratio`, `lede`, the read-more label's words) are cross-validated: chosen on one
half of the pages, scored on the other, both ways. Its variants (other parameters, parts left out, an earlier rule)
are put together from the measured outputs and CPU times of their parts.

A second table scores article-body scope on the same run: the pages whose JSON-LD declares an article body (of at
least 100 words, 80% of whose shingles the page shows) are scored against that body, by the shingle F1 below, with
the rule not allowed to read it.

`--article-bodies GROUND_TRUTH.json`: the same table on an article-body benchmark instead (gold text per page, as in
Zyte's article-extraction-benchmark: `{id: {"articleBody": ..., "url": ...}}`, the pages in `html/<id>.html` or
`html/<id>.html.gz` beside it), scored by word 4-gram shingles: per page, the shingles the text and the gold share
(counted with repeats), the extra and the missing ones, as shares of their sum; precision and recall are the means
over pages, F1 their harmonic mean.

`--declared-in WARC...`: the article-body table on the pages of WARC files (a crawl of yours, Common Crawl's; paths or
globs) that declare their article body in JSON-LD and show it, as many as `--pages`: the 15 such pages of the 300 are
too few to tell extractors apart, a crawl has thousands. The declared body is a publisher's, not a hand-made gold
text, and may leave out subheadings or keep inserts.

`--pool`: docs/s per core of the pipeline's worker pool (`corpus.extract.ExtractorPool`: worker process, per-page
deadline, cache resets) against a loop over the same extractor in this process; the target is at most 10% overhead.

    .venv/bin/python benchmarks/bench_extract.py [--pages 300] [--pool | --article-bodies GROUND_TRUTH.json |
        --declared-in WARC...]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES_DIR = Path(os.environ.get("WEBTEXT_SHARED_DIR", REPO.parent / "shared")) / "data" / "web" / "trafilatura"
# the values cross-validation chooses from
TEASER_RATIOS = (2.0, 3.0, 5.0, 10.0)
LEDES = (False, True)
LABEL_WORDS = (1, 2, 3, 5)  # the longest read-more label dropped (corpus.extract.drop_inserts)
FIRST = "trafilatura fast, recall, links (rule's 1st)"
CHECK = "resiliparse main_content (rule's check)"
FALLBACK = "readability-lxml (rule's 1st fallback)"
FULL = "trafilatura full cascade, links (2nd fallback)"
DECLARED = "JSON-LD articleBody (3rd fallback)"
HEADS = "declared headline and summary (the lede's)"
PREVIOUS_FIRST = "trafilatura fast, no comments"
LINKED = "rule's 1st before drop_inserts, links as Markdown"


def load_pages(limit: int) -> list[dict]:
    if not (PAGES_DIR / "manifest.json").exists():
        raise SystemExit(f"needs the shared pages in {PAGES_DIR} (set WEBTEXT_SHARED_DIR)")
    manifest = json.loads((PAGES_DIR / "manifest.json").read_text())[:limit]
    for entry in manifest:
        entry["html"] = (PAGES_DIR / entry["file"]).read_bytes()
        entry["url"] = entry["url"] if entry["url"].startswith("http") else None
    return manifest


def load_article_bodies(ground_truth: Path, limit: int) -> list[dict]:
    """Pages of an article-body benchmark: {"file": id, "url", "html", "gold"}."""
    entries = list(json.loads(ground_truth.read_text(encoding="utf-8")).items())[:limit]
    pages = []
    for key, entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("articleBody"), str):
            raise SystemExit(f"{ground_truth}: entry {key!r} has no articleBody string")
        html_dir = ground_truth.parent / "html"
        path = next((p for p in (html_dir / f"{key}.html", html_dir / f"{key}.html.gz") if p.exists()), None)
        if path is None:
            raise SystemExit(f"{ground_truth}: no page for entry {key!r} ({html_dir}/{key}.html or .html.gz)")
        html = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        url = entry.get("url")
        pages.append({"file": key, "url": url if url and url.startswith("http") else None, "html": html})
        pages[-1]["gold"] = entry["articleBody"]
    return pages


def candidates() -> dict[str, Callable[[bytes, str | None], str | None]]:
    """Every candidate takes the page's bytes (decoding is part of its cost) and returns its text."""
    import trafilatura

    from corpus.extract import EXTRACTORS, ExtractConfig, _decode, _link_text, declared_heads, extract_with

    def traf(**options):
        return lambda html, url: trafilatura.extract(_decode(html), url=url, **options)

    def alone(name):
        def run(html, url):
            try:
                return EXTRACTORS[name](_decode(html), url)
            except Exception:
                return None

        return run

    def links(**options):  # links kept for trafilatura's link-density tests, then reduced to their text
        return lambda html, url: _link_text(
            trafilatura.extract(_decode(html), url=url, include_links=True, **options) or ""
        )

    def justext_english(html, url):
        import justext  # trafilatura's dependency; a stop-word list per language, English here

        paragraphs = justext.justext(_decode(html), justext.get_stoplist("English"))
        return "\n".join(p.text for p in paragraphs if not p.is_boilerplate) or None

    return {
        "bare trafilatura.extract() defaults": lambda html, url: trafilatura.extract(html, url=url),
        "trafilatura, no comments": traf(include_comments=False),
        PREVIOUS_FIRST: traf(fast=True, include_comments=False),
        "trafilatura fast, no comments, links": links(fast=True, include_comments=False),
        "trafilatura fast, recall, no comments": traf(fast=True, favor_recall=True, include_comments=False),
        FIRST: alone("trafilatura"),
        LINKED: traf(fast=True, favor_recall=True, include_comments=False, include_links=True),
        "trafilatura favor_precision, no comments": traf(favor_precision=True, include_comments=False),
        "trafilatura favor_recall, no comments": traf(favor_recall=True, include_comments=False),
        "trafilatura fast, no comments, no tables": traf(fast=True, include_comments=False, include_tables=False),
        CHECK: alone("resiliparse"),
        FALLBACK: alone("readability"),
        FULL: alone("trafilatura-full"),
        DECLARED: alone("json-ld"),
        HEADS: lambda html, url: "\n".join(declared_heads(_decode(html))),
        "newspaper4k": alone("newspaper4k"),
        "jusText, English stop words": justext_english,
        "rule: extract_with() default": lambda html, url: extract_with(html, url, ExtractConfig()).text,
    }


def counts(page: dict, text: str | None) -> tuple[int, int, int]:
    text = text or ""
    tp = sum(s in text for s in page["with"])
    return tp, len(page["with"]) - tp, sum(s in text for s in page["without"])


def snippet_prf(pages: list[dict], texts: list[str | None]) -> tuple[float, float, float]:
    """Precision, recall and F1 over the "with" and "without" snippets of all pages together."""
    tp = fn = fp = 0
    for page, text in zip(pages, texts):
        a, b, c = counts(page, text)
        tp, fn, fp = tp + a, fn + b, fp + c
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


_TOKEN = re.compile(r"\w+")


def shingles(text: str | None, n: int = 4) -> Counter:
    """Word n-grams of a text, with repeats (a text of fewer than n words is one shorter gram)."""
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))) if tokens else Counter()


def shingle_match(gold: str, text: str | None) -> tuple[float, float, float]:
    """(shared, extra, missing) shingles of one page, as shares of their sum: every page weighs the same."""
    want, got = shingles(gold), shingles(text)
    counts = (sum((want & got).values()), sum((got - want).values()), sum((want - got).values()))
    total = sum(counts)
    return tuple(c / total for c in counts) if total else counts  # type: ignore[return-value]


def shingle_prf(pages: list[dict], texts: list[str | None]) -> tuple[float, float, float]:
    """Mean precision over the pages with any text, mean recall over those with gold text, F1 of the two means."""
    matches = [shingle_match(p["gold"], t) for p, t in zip(pages, texts)]
    precision = statistics.mean([tp / (tp + fp) for tp, fp, _ in matches if tp + fp > 0] or [0.0])
    recall = statistics.mean([tp / (tp + fn) for tp, _, fn in matches if tp + fn > 0] or [0.0])
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def measure(pages: list[dict]) -> tuple[dict[str, list], dict[str, list[float]]]:
    """Every candidate on every page, in a rotating order; CPU seconds per call."""
    runs = candidates()
    names = list(runs)
    for p in pages[:3]:  # imports and lazy initialisation are not per-page cost
        for run in runs.values():
            run(p["html"], p["url"])
    texts = {n: [None] * len(pages) for n in names}
    cpu = {n: [0.0] * len(pages) for n in names}
    for i, p in enumerate(pages):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            start = time.process_time()
            texts[name][i] = runs[name](p["html"], p["url"])
            cpu[name][i] = time.process_time() - start
    return texts, cpu


def rule_texts(
    texts: dict,
    cpu: dict,
    config,
    first: str = FIRST,
    edges: bool = True,
    fallbacks: tuple = (FALLBACK, FULL, DECLARED),
) -> tuple[list[str | None], float]:
    """The rule's texts and CPU seconds for `config` (an ExtractConfig), from its parts' measured outputs and costs.
    `first`, `edges` and `fallbacks` put together its variants (parts left out; an earlier rule: trafilatura without
    links, no edges, readability the only fallback)."""
    from corpus.extract import _n_words, combine, is_teaser

    out, seconds = [], 0.0
    for i in range(len(texts[first])):
        text, check = texts[first][i], texts[CHECK][i]
        declared = texts[DECLARED][i] if DECLARED in fallbacks else None
        seconds += cpu[first][i] + cpu[CHECK][i] + (cpu[DECLARED][i] if DECLARED in fallbacks else 0.0)
        seconds += cpu[HEADS][i] if config.lede else 0.0
        teaser = is_teaser(text, max(check, declared, key=_n_words), config)
        # the fallbacks are run only then
        seconds += sum(cpu[name][i] for name in fallbacks if name != DECLARED) if teaser else 0.0
        if edges or teaser:
            start = time.process_time()
            page_heads = (texts[HEADS][i] or "").split("\n")
            text, _ = combine(
                text, check, declared, lambda i=i: [(texts[name][i], name) for name in fallbacks], config, page_heads
            )
            seconds += time.process_time() - start
        out.append(text)
    return out, seconds


def first_dropping(texts: dict, cpu: dict, label_words: int | None, keep_nbsp: bool = False) -> str:
    """Adds the rule's first extractor with read-more labels of at most `label_words` words dropped (None: nothing
    dropped) to `texts` and `cpu`, from the measured Markdown text; returns its name. `keep_nbsp`: the links reduced
    as the previous rule did, leaving the no-break spaces around them (which hide text from the snippets)."""
    from corpus.extract import _ESCAPED_BRACKET, _MARKDOWN_LINK, _link_text, drop_inserts

    def previous_reduction(text: str) -> str:
        return _MARKDOWN_LINK.sub(lambda m: _ESCAPED_BRACKET.sub(r"\1", m[1]), text)

    reduce = previous_reduction if keep_nbsp else _link_text
    name = f"{LINKED}, labels <= {label_words}" if label_words else f"{LINKED}, nothing dropped"
    name += ", no-break spaces kept" if keep_nbsp else ""
    if name in texts:  # added already (quality and declared_bodies both ask for the one without drops)
        return name
    texts[name], cpu[name] = [], []
    for text, seconds in zip(texts[LINKED], cpu[LINKED]):
        start = time.process_time()
        if text and label_words:
            text = drop_inserts(text, label_words)
        texts[name].append(reduce(text) or None if text else None)
        cpu[name].append(seconds + time.process_time() - start)
    return name


def half(page: dict) -> int:
    return hashlib.sha256(page["file"].encode()).digest()[0] % 2


def quality(pages: list[dict], prf: Callable = snippet_prf) -> None:
    from corpus.extract import READ_MORE_LABEL_WORDS, ExtractConfig

    texts, cpu = measure(pages)
    bare_name = "bare trafilatura.extract() defaults"
    bare_s = sum(cpu[bare_name])
    default = ExtractConfig()
    rows = [(name, texts[name], sum(cpu[name])) for name in texts if name != LINKED]  # Markdown: an input only
    firsts = {words: first_dropping(texts, cpu, words) for words in LABEL_WORDS}
    kept = first_dropping(texts, cpu, None)
    previous = first_dropping(texts, cpu, None, keep_nbsp=True)
    variants = {
        "rule before last (fast, no comments; teaser check)": rule_texts(
            texts, cpu, default, PREVIOUS_FIRST, False, (FALLBACK,)
        ),
        "rule, readability the only fallback": rule_texts(texts, cpu, default, fallbacks=(FALLBACK,)),
        "rule without JSON-LD": rule_texts(texts, cpu, default, fallbacks=(FALLBACK, FULL)),
        "rule without the full cascade": rule_texts(texts, cpu, default, fallbacks=(FALLBACK, DECLARED)),
        "rule without edge reconciliation": rule_texts(texts, cpu, default, edges=False),
        "rule with the lede (lede=True)": rule_texts(texts, cpu, replace(default, lede=True)),
        "rule keeping read-more inserts and notices": rule_texts(texts, cpu, default, kept),
        "same, and the no-break spaces around links": rule_texts(texts, cpu, default, previous),
        **{
            f"rule, read-more labels <= {words} words dropped": rule_texts(texts, cpu, default, firsts[words])
            for words in LABEL_WORDS
        },
        "rule from its parts (default)": rule_texts(texts, cpu, default),
    }
    rows += [(name, out, seconds) for name, (out, seconds) in variants.items()]
    halves = [[i for i, p in enumerate(pages) if half(p) == h] for h in (0, 1)]
    sub = lambda idx, xs: [xs[i] for i in idx]  # noqa: E731

    def gain_on(idx: list[int], out: list) -> float:  # F1 over bare trafilatura's on these pages
        return prf(sub(idx, pages), sub(idx, out))[2] - prf(sub(idx, pages), sub(idx, texts[bare_name]))[2]

    metric = "gold snippets" if prf is snippet_prf else "word 4-gram shingles of the gold text"
    print(f"{len(pages)} pages, scored by {metric}; CPU time of this process, candidates interleaved page by page")
    print(
        f"{'candidate':50s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'pages/s/core':>12s} {'CPU vs bare':>11s} "
        f"{'F1 vs bare, half 0 / 1':>23s}"
    )
    for name, out, seconds in rows:
        precision, recall, f1 = prf(pages, out)
        print(
            f"{name:50s} {precision:9.3f} {recall:7.3f} {f1:6.3f} {len(pages) / seconds:12.1f} "
            f"{seconds / bare_s:10.2f}x {gain_on(halves[0], out):+15.4f} / {gain_on(halves[1], out):+.4f}"
        )

    grid_texts = {
        (r, lede, words): rule_texts(texts, cpu, replace(default, teaser_ratio=r, lede=lede), firsts[words])[0]
        for r in TEASER_RATIOS
        for lede in LEDES
        for words in LABEL_WORDS
    }
    print(
        f"\ncross-validation: teaser_ratio from {', '.join(f'{r:g}' for r in TEASER_RATIOS)} x lede from "
        f"{', '.join(map(str, LEDES))} x read-more label words from {', '.join(map(str, LABEL_WORDS))} (default "
        f"{default.teaser_ratio:g}, {default.lede}, {READ_MORE_LABEL_WORDS}); halves by a hash of the file name"
    )
    for choose_on in (0, 1):
        pick = [i for i, p in enumerate(pages) if half(p) == choose_on]
        score = [i for i, p in enumerate(pages) if half(p) != choose_on]
        best = max(grid_texts, key=lambda key: prf(sub(pick, pages), sub(pick, grid_texts[key]))[2])
        held = prf(sub(score, pages), sub(score, grid_texts[best]))[2]
        at_default = prf(
            sub(score, pages), sub(score, grid_texts[(default.teaser_ratio, default.lede, READ_MORE_LABEL_WORDS)])
        )[2]
        bare = prf(sub(score, pages), sub(score, texts[bare_name]))[2]
        print(
            f"  chosen on half {choose_on} ({len(pick)} pages): teaser_ratio={best[0]:g}, lede={best[1]}, "
            f"label words={best[2]}; "
            f"on the other half ({len(score)} pages): F1 {held:.3f} vs bare trafilatura {bare:.3f} "
            f"({held - bare:+.3f}); the default there: {at_default:.3f} ({at_default - bare:+.3f})"
        )

    if prf is snippet_prf:
        declared_bodies(pages, texts, cpu)


def shown_on_page(gold: str, html: bytes | str) -> float:
    """The share of the gold text's shingles that the page's whole text (menus and all) contains."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    from corpus.extract import _decode

    want, page = shingles(gold), shingles(extract_plain_text(HTMLTree.parse(_decode(html))))
    return sum((want & page).values()) / max(sum(want.values()), 1)


def shows_declared_body(body: str | None, html: bytes | str) -> bool:
    """Whether a page's declared article body can stand as its gold text: 100 words or more, 80% of its shingles shown
    on the page."""
    return len((body or "").split()) >= 100 and shown_on_page(body, html) >= 0.8


def load_declared_pages(warcs: list[str], limit: int) -> list[dict]:
    """Up to `limit` pages of WARC files that declare an article body of 100 words or more, 80% of whose shingles the
    page shows: {"file", "url", "html", "gold"}, the declared body as gold."""
    from corpus.build import resolve_inputs
    from corpus.extract import _decode, _json_ld
    from corpus.warc import iter_html_records

    pages, seen = [], 0
    for record in iter_html_records(resolve_inputs(warcs, "WARC file")):
        seen += 1
        html = _decode(record.body)
        body = _json_ld(html, record.url)
        if shows_declared_body(body, html):
            pages.append({"file": record.url, "url": record.url, "html": record.body, "gold": body})
            if len(pages) == limit:
                break
    print(f"{len(pages)} of the {seen} HTML pages read declare an article body they show")
    if not pages:
        raise SystemExit(f"no page of {', '.join(warcs)} declares an article body (JSON-LD) of 100 words it shows")
    return pages


def declared_bodies(pages: list[dict], texts: dict, cpu: dict) -> None:
    """Article-body scope on the pages that declare their article body (JSON-LD) and show it: that body is the gold,
    scored by shingles, and the rule may not read it (no JSON-LD fallback or teaser check). Headline, standfirst,
    captions and bylines are extra text here, as in article-body benchmarks."""
    from corpus.extract import ExtractConfig

    keep = [i for i, p in enumerate(pages) if shows_declared_body(texts[DECLARED][i], p["html"])]
    gold = [dict(pages[i], gold=texts[DECLARED][i]) for i in keep]
    no_declared = (FALLBACK, FULL)
    rows = {name: texts[name] for name in ("bare trafilatura.extract() defaults", FIRST, FULL, FALLBACK, CHECK)}
    kept = first_dropping(texts, cpu, None)
    for name, config, first in (
        ("rule without JSON-LD (default)", ExtractConfig(), FIRST),
        ("rule without JSON-LD, lede=True", ExtractConfig(lede=True), FIRST),
        ("rule without JSON-LD, inserts kept", ExtractConfig(), kept),
    ):
        rows[name] = rule_texts(texts, cpu, config, first, fallbacks=no_declared)[0]
    print(
        f"\narticle-body scope: the {len(keep)} pages that declare an article body (JSON-LD, >= 100 words, 80% shown "
        "on the page), scored against it by word 4-gram shingles"
    )
    print(f"{'candidate':50s} {'precision':>9s} {'recall':>7s} {'F1':>6s}")
    for name, out in rows.items():
        precision, recall, f1 = shingle_prf(gold, [out[i] for i in keep])
        print(f"{name:50s} {precision:9.3f} {recall:7.3f} {f1:6.3f}")


def pool_speed(pages: list[dict]) -> None:
    from corpus.extract import ExtractConfig, ExtractorPool, extract_with

    config = ExtractConfig(method="trafilatura")
    for p in pages[:5]:  # warm imports and lxml
        extract_with(p["html"], p["url"], config)
    t = time.perf_counter()
    for p in pages:
        extract_with(p["html"], p["url"], config)
    bare = len(pages) / (time.perf_counter() - t)

    rows = [("extract_with loop, method=trafilatura (1 process)", bare, 1)]
    for method, workers in (("trafilatura", 1), ("combined", 1), ("trafilatura", os.cpu_count() or 1)):
        with ExtractorPool(ExtractConfig(method=method, workers=workers)) as pool:
            list(pool.imap((i, p["html"], p["url"]) for i, p in enumerate(pages[: 2 * workers])))  # start-up
            t = time.perf_counter()
            list(pool.imap((i, p["html"], p["url"]) for i, p in enumerate(pages)))
            rows.append(
                (f"pipeline pool, method={method}, workers={workers}", len(pages) / (time.perf_counter() - t), workers)
            )
    print(
        f"{'extraction of ' + str(len(pages)) + ' real pages (wall time)':58s} {'docs/s':>8s} {'docs/s/core':>12s} "
        f"{'vs loop':>8s}"
    )
    for name, rate, cores in rows:
        print(f"{name:58s} {rate:8.1f} {rate / cores:12.1f} {rate / cores / bare:8.2f}")
    overhead = 1 - rows[1][1] / bare
    print(f"pipeline overhead per core (method=trafilatura, 1 worker): {overhead:+.1%} (target <= 10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=300, help="pages to use (of 300)")
    parser.add_argument("--pool", action="store_true", help="the worker pool's overhead instead of quality and cost")
    parser.add_argument(
        "--article-bodies", type=Path, metavar="GROUND_TRUTH.json", help="an article-body benchmark's pages instead"
    )
    parser.add_argument(
        "--declared-in", nargs="+", metavar="WARC", help="article-body scope on the pages of these WARC files instead"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # trafilatura logs every page it discards
    if args.declared_in:
        pages = load_declared_pages(args.declared_in, args.pages)
        declared_bodies(pages, *measure(pages))
    elif args.article_bodies:
        pages = load_article_bodies(args.article_bodies, args.pages)
        if args.pool:
            pool_speed(pages)
        else:
            quality(pages, shingle_prf)
    elif args.pool:
        pool_speed(load_pages(args.pages))
    else:
        quality(load_pages(args.pages))


if __name__ == "__main__":
    main()

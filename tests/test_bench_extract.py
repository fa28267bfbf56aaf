"""The extraction benchmark's article-body scoring (word 4-gram shingles, each page weighing the same) and its run on
a benchmark laid out like Zyte's article-extraction-benchmark."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trafilatura

from corpus.extract import extract_with

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_extract.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_extract", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shingles_are_counted_with_repeats_and_every_page_weighs_the_same():
    bench = _bench()
    # one extra shingle of three: precision 2/3, recall 1
    assert bench.shingle_match("a b c d e", "a b c d e f") == pytest.approx((2 / 3, 1 / 3, 0.0))
    # the gold says "a b c d" twice: finding it once is 1 of 5 shingles, not 1 of 4 distinct ones
    assert bench.shingle_match("a b c d a b c d", "a b c d") == pytest.approx((0.2, 0.0, 0.8))
    assert bench.shingle_match("The end", "the end") == (0.0, 0.5, 0.5)  # case counts, as in the reference scorer
    pages = [{"gold": "a b c d e"}, {"gold": "x y"}, {"gold": " ".join(f"w{i}" for i in range(1000))}]
    texts = [
        "a b c d e f",  # precision 2/3, recall 1
        None,  # no text: left out of precision, recall 0
        " ".join(f"w{i}" for i in range(500)),  # a long page counts as one: precision 1, recall 497/997
    ]
    precision, recall, f1 = bench.shingle_prf(pages, texts)
    assert precision == pytest.approx((2 / 3 + 1) / 2)
    assert recall == pytest.approx((1 + 0 + 497 / 997) / 3)
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall))


ARTICLE = [
    "The harbour authority approved the plan to dredge the old shipping channel on Thursday evening.",
    "Engineers expect the work to take two summers, and the ferries will keep running while it lasts.",
    "Fishermen asked for the spoil to be taken far out to sea, away from the grounds they rely on.",
    "The council will publish the full schedule next month, after a last round of public meetings.",
]


def _page(title: str) -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in ARTICLE)
    menu = "".join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(12))
    return (
        f"<html><head><title>{title}</title></head><body><nav><ul>{menu}</ul></nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>Copyright 2024 The Harbour News</footer></body></html>"
    )


def _run(ground_truth: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--article-bodies", str(ground_truth)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


@pytest.mark.slow
def test_the_benchmark_scores_every_candidate_on_an_article_body_benchmark(tmp_path):
    (tmp_path / "html").mkdir()
    gold = {}
    for i in range(4):
        key = f"page{i}"
        html = _page(f"Dredging plan {i}").encode()
        if i % 2:
            (tmp_path / "html" / f"{key}.html.gz").write_bytes(gzip.compress(html))
        else:
            (tmp_path / "html" / f"{key}.html").write_bytes(html)
        gold[key] = {"articleBody": "\n".join(ARTICLE), "url": f"https://news.example.org/{key}"}
    (tmp_path / "ground-truth.json").write_text(json.dumps(gold))
    result = _run(tmp_path / "ground-truth.json")
    assert result.returncode == 0, result.stderr
    assert "4 pages, scored by word 4-gram shingles of the gold text" in result.stdout
    rows = {line[:50].strip(): line[50:].split() for line in result.stdout.splitlines()}
    # the figures are those of the texts themselves, read from plain and gzipped pages alike
    bench = _bench()
    pages = [{"gold": entry["articleBody"]} for entry in gold.values()]
    for name, run in (
        ("bare trafilatura.extract() defaults", lambda html, url: trafilatura.extract(html, url=url)),
        ("rule: extract_with() default", lambda html, url: extract_with(html, url).text),
    ):
        texts = [run(_page(f"Dredging plan {i}").encode(), entry["url"]) for i, entry in enumerate(gold.values())]
        assert rows[name][:3] == [f"{x:.3f}" for x in bench.shingle_prf(pages, texts)], name
    assert rows["rule: extract_with() default"][1] == "1.000"  # the rule finds the whole article

    (tmp_path / "html" / "page3.html.gz").unlink()
    result = _run(tmp_path / "ground-truth.json")
    assert result.returncode != 0
    assert "no page for entry 'page3'" in result.stderr


def test_article_body_scope_keeps_the_pages_that_show_the_body_they_declare(capsys):
    bench = _bench()
    body = " ".join(f"Sentence number {i} of the declared article body, told in plain words." for i in range(12))
    shown = f"<html><body><nav>Home News</nav><article><p>{body}</p></article></body></html>"
    hidden = "<html><body><p>Only a teaser of the piece is shown here.</p></body></html>"
    assert bench.shown_on_page(body, shown) == 1.0 and bench.shown_on_page(body, hidden) == 0.0
    pages = [{"file": "shown", "html": shown}, {"file": "hidden", "html": hidden}, {"file": "short", "html": shown}]
    names = {"bare trafilatura.extract() defaults", bench.FIRST, bench.FULL, bench.FALLBACK, bench.CHECK}
    texts = {name: [body, body, body] for name in names}
    texts[bench.DECLARED] = [body, body, " ".join(body.split()[:99])]  # shown, but under 100 words
    texts[bench.HEADS] = ["", "", ""]
    texts[bench.FIRST] = ["Home News\n" + body, body, body]  # extra text on the one page scored
    texts[bench.LINKED] = texts[bench.FIRST]  # the rule's first before it drops read-more inserts
    cpu = {name: [0.0] * 3 for name in texts}
    bench.declared_bodies(pages, texts, cpu)
    out = capsys.readouterr().out
    assert "the 1 pages that declare an article body" in out  # not the hidden one, not the short one
    first = next(line for line in out.splitlines() if line.startswith(bench.FIRST))
    bare = next(line for line in out.splitlines() if line.startswith("bare trafilatura"))
    assert first.split()[-3:][0] < "1.000" and bare.split()[-3:] == ["1.000", "1.000", "1.000"]


@pytest.mark.slow
def test_article_body_scope_on_the_pages_of_a_crawl_that_declare_and_show_their_body(tmp_path):
    from test_buildlock import write_html_warc

    body = " ".join(ARTICLE * 2)  # 130 words
    declared = f'<script type="application/ld+json">{json.dumps({"articleBody": body})}</script>'
    hidden = f'<script type="application/ld+json">{json.dumps({"articleBody": body.upper() + " Hidden"})}</script>'
    # the article twice, as the declared body holds it (under a headline the body leaves out)
    shown = _page("Dredging plan").replace("<article>", "<article>" + "".join(f"<p>{p}</p>" for p in ARTICLE))
    pages = [
        ("https://news.example.org/a", shown.replace("</head>", declared + "</head>")),
        ("https://news.example.org/b", _page("No JSON-LD")),
        ("https://news.example.org/c", _page("A body the page does not show").replace("</head>", hidden + "</head>")),
        ("https://news.example.org/d", shown.replace("</head>", declared + "</head>")),
    ]
    warc = write_html_warc(tmp_path / "crawl.warc.gz", pages)
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    result = run("--declared-in", str(tmp_path / "*.warc.gz"))
    assert result.returncode == 0, result.stderr
    assert "2 of the 4 HTML pages read declare an article body they show" in result.stdout
    assert "article-body scope: the 2 pages that declare an article body" in result.stdout
    rows = {line[:50].strip(): line[50:].split() for line in result.stdout.splitlines()}
    assert float(rows["rule without JSON-LD (default)"][1]) > 0.95  # recall: the rule finds the article
    assert run("--pages", "1", "--declared-in", str(warc)).stdout.startswith("1 of the 1 HTML pages read")

    write_html_warc(warc, pages[1:3])
    result = run("--declared-in", str(warc))
    assert result.returncode != 0 and "declares an article body (JSON-LD) of 100 words it shows" in result.stderr
    assert run("--declared-in", str(tmp_path / "missing.warc.gz")).returncode != 0

"""Main-text extraction on real pages, the combination rule, and the per-page deadline of the worker pool."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.extract import ExtractConfig, ExtractorPool, extract_main_text, extract_pages, extract_with


def _pages(web_pages_dir: Path, n: int) -> list[dict]:
    manifest = json.loads((web_pages_dir / "manifest.json").read_text())
    return [e for e in manifest if e["url"].startswith("http")][:n]


def test_extract_main_text_keeps_article_and_drops_boilerplate(web_pages_dir):
    entry = _pages(web_pages_dir, 1)[0]
    html = (web_pages_dir / entry["file"]).read_bytes()
    text = extract_main_text(html, entry["url"])
    assert text is not None
    assert all(snippet in text for snippet in entry["with"])
    assert not any(snippet in text for snippet in entry["without"])
    assert extract_main_text(html.decode("utf-8"), entry["url"]) == text  # str and bytes give the same text


def test_combination_is_never_worse_than_trafilatura_on_real_pages(web_pages_dir):
    entries = _pages(web_pages_dir, 8)
    scores = {}
    for method in ("trafilatura", "combined"):
        hits = 0
        for e in entries:
            text = extract_with((web_pages_dir / e["file"]).read_bytes(), e["url"], ExtractConfig(method=method)).text
            text = text or ""
            hits += sum(s in text for s in e["with"]) + sum(s not in text for s in e["without"])
        scores[method] = hits
    assert scores["combined"] >= scores["trafilatura"]


def test_empty_and_oversized_pages_have_outcomes():
    assert extract_with("<html><body></body></html>").outcome == "empty"
    assert extract_with(b"x" * 100, config=ExtractConfig(max_html_bytes=10)).outcome == "too_large"
    with pytest.raises(ValueError, match="method"):
        ExtractConfig(method="dragnet")


def test_pool_extracts_in_parallel_and_records_the_extractor(web_pages_dir):
    entries = _pages(web_pages_dir, 4)
    pages = [(e["file"], (web_pages_dir / e["file"]).read_bytes(), e["url"]) for e in entries]
    results = dict(extract_pages(pages, ExtractConfig(workers=2)))
    assert set(results) == {e["file"] for e in entries}
    for key, html, url in pages:
        assert results[key].text == extract_with(html, url).text
        assert results[key].extractor in {"trafilatura", "newspaper4k"}


def test_a_page_past_the_deadline_is_killed_and_the_pool_goes_on(web_pages_dir):
    # trafilatura has no time limit of its own: 20,000 nested blocks take it many seconds
    pathological = "<html><body>" + "".join(
        f"<div><table><tr><td><p>paragraph {i} with some words in it</p></td></tr></table></div>" for i in range(20000)
    ) + "</body></html>"
    entries = _pages(web_pages_dir, 3)
    pages = [("slow", pathological, "https://slow.example.com/")]
    pages += [(e["file"], (web_pages_dir / e["file"]).read_bytes(), e["url"]) for e in entries]
    with ExtractorPool(ExtractConfig(workers=1, timeout_s=3.0, method="trafilatura")) as pool:
        results = dict(pool.imap(pages))
        assert results["slow"].outcome == "timeout"
        assert all(results[e["file"]].outcome == "ok" for e in entries), "the replacement worker must carry on"
        again = dict(pool.imap(pages[1:2]))  # the pool is reusable after a kill
        assert again[entries[0]["file"]].outcome == "ok"

"""Main-text extraction on real pages, the combination rule, and the worker pool: per-page deadline, dead workers."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from corpus.extract import (
    METHODS,
    ExtractConfig,
    ExtractorPool,
    _declares,
    _json_ld,
    _Lines,
    _link_text,
    combine,
    declared_heads,
    drop_inserts,
    extract_main_text,
    extract_pages,
    extract_with,
    reconcile_edges,
)


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


def _page(web_pages_dir: Path, file: str) -> tuple[dict, bytes]:
    entry = next(e for e in json.loads((web_pages_dir / "manifest.json").read_text()) if e["file"] == file)
    if not entry["url"].startswith("http"):
        entry = {**entry, "url": None}
    return entry, (web_pages_dir / file).read_bytes()


def _snippets(entry: dict, text: str | None) -> tuple[list[str], list[str]]:
    """The page's gold snippets that `text` misses (article) and has (boilerplate)."""
    text = text or ""
    return [s for s in entry["with"] if s not in text], [s for s in entry["without"] if s in text]


@pytest.mark.parametrize("file", ["html/axios.com.future.html", "html/iconmagazine.de.sharonstone.html"])
def test_a_teaser_from_trafilatura_is_replaced_by_the_second_opinion(web_pages_dir, file):
    # trafilatura's fast mode keeps only the teaser of these pages; resiliparse sees a much longer body
    entry, html = _page(web_pages_dir, file)
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text or ""
    assert not all(snippet in alone for snippet in entry["with"])
    result = extract_with(html, entry["url"])
    assert result.extractor == "readability"
    assert all(snippet in result.text for snippet in entry["with"])
    assert not any(snippet in result.text for snippet in entry["without"])


def test_read_more_lines_inside_the_article_are_dropped_and_links_end_up_as_their_text(web_pages_dir):
    # three "Lea también: <linked headline>" lines in the middle of the article, a no-break space after the label
    entry, html = _page(web_pages_dir, "html/100noticias.com-millones.html")
    text = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text
    assert _snippets(entry, text) == ([], [])
    assert not [line for line in text.split("\n") if line.startswith("Lea")]
    assert "](" not in text and "http" not in text and "\xa0" not in text


def test_markdown_links_are_reduced_to_their_text():
    assert _link_text("see [the \\[1\\] report](https://x.org/r) and [b](<https://x.org/a b>).") == (
        "see the [1] report and b."
    )
    assert _link_text("Lea:\xa0[the report](https://x.org/r)\xa0today") == "Lea: the report today"
    # a link without a URL looks like text in brackets, which stays as it is
    assert _link_text("[edit] [PMID:[8658199](https://x.org/8658199)]") == "[edit] [PMID:8658199]"


def test_read_more_inserts_and_copyright_notices_are_dropped_and_nothing_else():
    kept = [
        "Body line with a [link](https://x.org/1) in it.",
        "- See also: [the page's own list](https://x.org/2)",  # list items and table rows are the page's own
        "| Address: | [Trailer](https://x.org/3) |",
        "A label of four words: [x](https://x.org/4)",  # past READ_MORE_LABEL_WORDS
        "Read more: [one](https://x.org/5) and [two](https://x.org/6)",  # not one link to the line's end
        "Read more: [one](https://x.org/7) said the minister",
        "Photo: [a](https://x.org/8) Text: [b](https://x.org/9)",  # two links: the label holds no link
        "Read more: about the minister",  # no link
        "Copyright law is strange.",
        "(c) the third option",
    ]
    dropped = [
        "Read more: [Recognizing Germany's colonial crimes](https://x.org/a)",
        "MIRA | [Kenji Fujimori: PJ concluye](https://x.org/b)",
        "\tÀ lire aussi » [Ballonnements, lourdeurs](https://x.org/c)",
        "Le puede interesar: [JEP abrirá tres nuevos macrocasos](<https://x.org/d e>).",
        "RELATED > [Alaska Airlines delays membership](https://x.org/e)",
        "© 2020 General Mills All Rights Reserved",
        "Copyright 2023 Sunbeam Television Corp.",
        "Copyright © Wiley",
    ]
    text = "\n".join(kept[0:1] + [line for pair in zip(dropped, kept[1:]) for line in pair] + kept[len(dropped) + 1 :])
    assert drop_inserts(text) == "\n".join(kept)
    assert drop_inserts("Read more: [x](https://x.org/a)", label_words=1) == "Read more: [x](https://x.org/a)"
    assert drop_inserts("Read more: [x](https://x.org/a)", label_words=2) == ""
    assert drop_inserts("Le puede interesar: [x](https://x.org/a)", label_words=2) == (
        "Le puede interesar: [x](https://x.org/a)"
    )


@pytest.mark.timeout(60)
def test_dropping_inserts_is_linear_on_hostile_text():
    for hostile in ("a: [" * 200_000, ":" * 1_000_000, "Read: [" + "\\]" * 300_000, "Read more: [x](" + "a" * 500_000):
        assert drop_inserts(hostile) == hostile


@pytest.mark.parametrize(
    "file",
    ["html/dw.com.colonial.html", "html/madame.lefigaro.fr.dintestin.html", "html/breakingbelizenews.com-paho.html"],
)
def test_real_read_more_inserts_and_notices_are_gone_and_the_article_stays(web_pages_dir, file):
    entry, html = _page(web_pages_dir, file)
    for method in ("trafilatura", "combined"):
        text = extract_with(html, entry["url"], ExtractConfig(method=method)).text
        missed, boilerplate = _snippets(entry, text)
        assert missed == []
        assert not [s for s in boilerplate if s.startswith(("Read more", "À lire", "This article is the copyright"))]


def test_trailing_lines_that_resiliparse_lacks_are_dropped(web_pages_dir):
    # trafilatura ends the article with the site's related posts (titles and dates); resiliparse ends it before
    entry, html = _page(web_pages_dir, "html/aclu.org-grades.html")
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text
    assert _snippets(entry, alone) == ([], ["of Our Students"])
    assert alone.split("\n")[-1] == "July 31, 2020"
    result = extract_with(html, entry["url"])
    assert result.extractor == "trafilatura"
    assert _snippets(entry, result.text) == ([], [])


def test_the_lede_above_trafilaturas_first_line_is_put_back(web_pages_dir):
    entry, html = _page(web_pages_dir, "html/pcmag.com.platters.html")
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text
    assert _snippets(entry, alone) == (["but the path looks clear to scale up to 80TB."], [])
    assert _snippets(entry, extract_with(html, entry["url"], ExtractConfig(lede=True)).text) == ([], [])
    # the headline and the summary the page declares in its head are the two lines added; off by default
    lines = extract_with(html, entry["url"], ExtractConfig(lede=True)).text.split("\n")
    assert lines[0] == "Next-Gen HAMR Platters Promise 80TB Hard Drives"
    assert lines[1].endswith("scale up to 80TB.") and lines[2:] == alone.split("\n")
    assert extract_with(html, entry["url"]).text == alone


def test_captions_and_notices_above_the_text_are_not_put_back(web_pages_dir):
    # resiliparse has a browser notice and a photo caption (more than 12 words each) just above trafilatura's first
    # line; neither is the headline or summary the page declares, so neither comes back
    entry, html = _page(web_pages_dir, "html/newrepublic.com.neoliberalism.html")
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text
    text = extract_with(html, entry["url"], ExtractConfig(lede=True)).text
    assert "upgrade your browser" not in text and "(Saul Loeb/AFP/Getty Images)" not in text
    assert text.split("\n")[0] == alone.split("\n")[0]


def test_edges_are_not_trimmed_against_a_fragment_of_the_body(web_pages_dir):
    # resiliparse finds only 148 of the 3,586 words here: most of trafilatura's lines are not in it, and are kept
    entry, html = _page(web_pages_dir, "html/ext.theperspective.com.items.html")
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text
    assert extract_with(html, entry["url"]).text == alone
    assert _snippets(entry, alone) == ([], [])


BODY = [
    "The council approved the new budget on Monday after a long debate about schools.",
    "Spending on roads rises by a tenth, while the parks department keeps its funding.",
    "The mayor said the vote showed that the city can agree on what matters.",
]


def test_reconcile_edges_drops_the_tail_and_adds_the_lede_only_at_the_edges():
    lede = "A short summary line of the article that a newspaper prints right under its headline."
    caption = "The council chamber on Monday, as members of the public waited for the vote. (Photo: City Hall)"
    check = "\n".join(["Home | News | Sport", "Budget passes", lede, caption, *BODY, "Share this article"])
    traf = "\n".join([BODY[0], "A caption only trafilatura kept.", *BODY[1:], "Sign up for our newsletter today!"])
    heads = ["Budget passes | City News", lede, "Home"]
    # the caption inside the text stays; the trailing sign-up line goes; of the two lines just above the text, the
    # declared summary comes back and the photo caption does not; the headline and the menu (not just above) do not
    body = [BODY[0], "A caption only trafilatura kept.", *BODY[1:]]
    with_lede = ExtractConfig(lede=True)
    assert reconcile_edges(traf, check, heads, with_lede) == "\n".join([lede, *body])
    assert reconcile_edges(traf, check, config=with_lede) == "\n".join(body)  # nothing declared, nothing put back
    # the two lines above the text are the headline and the summary: both come back, in order
    assert reconcile_edges(traf, check.replace(f"{caption}\n", ""), heads, with_lede) == "\n".join(
        ["Budget passes", lede, *body]
    )
    assert reconcile_edges(traf, check, heads).split("\n")[0] == BODY[0]  # the lede is off by default
    # lines that differ in spacing and punctuation still match; texts with nothing in common are left alone
    respaced = "The  council approved the new budget, on Monday!"
    assert reconcile_edges(f"{respaced}\nSign up for our newsletter today!", check) == respaced
    assert reconcile_edges(traf, "Something else entirely, with other words.", heads, with_lede) == traf


def _fallbacks(*texts: str | None, asked: list | None = None):
    """The rule's fallbacks as `combine` asks for them: (text, name) in order, recording that they were asked."""

    def ask() -> list[tuple[str | None, str]]:
        if asked is not None:
            asked.append(True)
        return list(zip(texts, ("readability", "trafilatura-full", "json-ld")))

    return ask


def test_fallbacks_are_asked_only_for_a_teaser_and_the_longest_is_taken_only_when_longer():
    body, teaser, check = " ".join(BODY), BODY[0], "\n".join(BODY * 3)  # the check: 9 times the teaser's words
    longer = body + " " + BODY[1]
    asked: list = []
    assert combine(teaser, check, None, _fallbacks(body, None, None, asked=asked)) == (body, "readability")
    assert combine(teaser, check, None, _fallbacks(body, longer, None)) == (longer, "trafilatura-full")
    assert combine(teaser, check, None, _fallbacks(body, longer, longer + " More.")) == (longer + " More.", "json-ld")
    assert combine(teaser, check, None, _fallbacks(body, body, None)) == (body, "readability")  # a tie: the first
    assert combine(teaser, check, None, _fallbacks("Shorter.", None, "")) == (teaser, "trafilatura")
    assert asked == [True]
    # not a teaser: the fallbacks, which cost more than trafilatura, are not run
    assert combine(body, check, None, lambda: pytest.fail("the fallbacks were asked"))[1] == "trafilatura"


def test_a_declared_article_body_much_longer_than_trafilaturas_text_marks_a_teaser():
    # a paywall: the page shows (and resiliparse sees) a teaser, its JSON-LD declares the whole article
    body, teaser = "\n".join(BODY * 3), BODY[0]
    assert combine(teaser, teaser, body, _fallbacks(None, teaser, body)) == (body, "json-ld")
    assert combine(teaser, teaser, None, lambda: pytest.fail("the fallbacks were asked")) == (teaser, "trafilatura")
    # a declared summary shorter than trafilatura's text changes nothing
    assert combine(body, None, teaser, lambda: pytest.fail("the fallbacks were asked")) == (body, "trafilatura")


def _ld_page(*scripts: str) -> str:
    blocks = "".join(f'<script type="application/ld+json">{s}</script>' for s in scripts)
    return f"<html><head>{blocks}</head><body><p>Teaser.</p></body></html>"


def test_json_ld_prefers_the_article_the_page_names_as_its_own():
    own, other = "The page's own article, short.", "Another article on the listing, which is longer than the first."
    listing = {
        "@type": "ItemList",
        "itemListElement": [
            {"@type": "NewsArticle", "url": "https://news.example/b", "articleBody": other},
            {"@type": "NewsArticle", "@id": "https://news.example/a/#article", "articleBody": own},
        ],
    }
    page = _ld_page(json.dumps(listing))
    assert _json_ld(page, "https://news.example/a") == own  # by its @id, fragment and trailing slash aside
    assert _json_ld(page, "https://news.example/b/") == other
    assert _json_ld(page, None) == other and _json_ld(page, "https://news.example/c") == other  # else the longest
    entity = {"@type": "Article", "mainEntityOfPage": {"@id": "https://news.example/a"}, "articleBody": own}
    page = _ld_page(json.dumps(entity), json.dumps({"@type": "Article", "articleBody": other}))
    assert _json_ld(page, "https://news.example/a#top") == own


def test_json_ld_article_body_comes_out_as_lines_of_text_in_every_form_publishers_write():
    plain = json.dumps({"@type": "NewsArticle", "articleBody": "First paragraph.\n\nSecond  paragraph."})
    assert _json_ld(_ld_page(plain), None) == "First paragraph.\nSecond paragraph."
    as_html = json.dumps({"articleBody": "<p>First &amp; <b>bold</b>.</p><!-- wp:image {'a>b': 1} --><p>Second.</p>"})
    assert _json_ld(_ld_page(as_html), None) == "First & bold.\nSecond."
    escaped = json.dumps({"articleBody": "&lt;p&gt;It&#039;s here.&lt;/p&gt;&lt;p&gt;1 &amp;lt; 2&lt;/p&gt;"})
    assert _json_ld(_ld_page(escaped), None) == "It's here.\n1 < 2"
    # nested in @graph, with raw newlines (invalid strict JSON, common), next to an invalid block and other types;
    # the longest body wins
    graph = '{"@graph": [{"@type": "WebPage"}, {"@type": "Article", "articleBody": "Line one.\nLine two."}]}'
    assert _json_ld(_ld_page("{not json", '{"articleBody": "Short."}', graph), None) == "Line one.\nLine two."
    assert _json_ld(_ld_page('{"headline": "No body"}'), None) is None
    assert _json_ld("<script type='application/ld+json'>[]</script>", None) is None


@pytest.mark.timeout(60)
def test_json_ld_reading_is_linear_on_hostile_pages():
    # quadratic scanning (every unclosed script or tag rescanning the rest) takes hours on these; linear, milliseconds
    unclosed_scripts = '<script type="application/ld+json">{' * 100_000
    assert _json_ld(unclosed_scripts, None) is None
    assert _json_ld(unclosed_scripts + "</script>", None) is None  # one script, whose text holds the other openings
    # unclosed tags stay text; an unclosed comment ends the text, as in HTML
    tags = "<a" * 200_000 + " end" + "<!--" * 200_000
    assert _json_ld(_ld_page(json.dumps({"articleBody": "Body " + tags})), None) == "Body " + "<a" * 200_000 + " end"
    # a "<" that opens no tag is text
    assert _json_ld(_ld_page(json.dumps({"articleBody": "1 < 2 and 3 > 2"})), None) == "1 < 2 and 3 > 2"


def test_a_paywalled_article_comes_from_its_declared_body(web_pages_dir):
    # the page shows a 24-word teaser; its JSON-LD declares the 702-word opinion piece
    entry, html = _page(web_pages_dir, "html/scmp.com.playbook.html")
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text or ""
    assert not any(snippet in alone for snippet in entry["with"])
    result = extract_with(html, entry["url"])
    assert result.extractor == "json-ld"
    assert all(snippet in result.text for snippet in entry["with"])


def test_a_teaser_that_readability_misses_comes_from_trafilaturas_full_cascade(web_pages_dir):
    # a slideshow page: fast trafilatura and readability both keep one caption; the full cascade finds the slides
    entry, html = _page(web_pages_dir, "html/economictimes.indiatimes.com.slideshow.html")
    for method in ("trafilatura", "readability"):
        alone = extract_with(html, entry["url"], ExtractConfig(method=method)).text or ""
        assert not any(snippet in alone for snippet in entry["with"]), method
    result = extract_with(html, entry["url"])
    assert result.extractor == "trafilatura-full"
    assert _snippets(entry, result.text) == ([], [])


def test_the_rules_boundaries():
    body = " ".join(BODY)  # 41 words
    teaser = " ".join(body.split()[:8])
    five_times = " ".join([teaser] * 5)  # exactly 5 times the teaser's words: not more, so not a teaser
    never = lambda: pytest.fail("the fallbacks were asked")  # noqa: E731
    assert combine(teaser, five_times, None, never) == (teaser, "trafilatura")
    assert combine(teaser, five_times + " one", None, _fallbacks(body))[1] == "readability"
    # the config's teaser_ratio is the one used
    assert combine(teaser, five_times + " one", None, never, ExtractConfig(teaser_ratio=10)) == (teaser, "trafilatura")
    # no fallback at all, or none longer than trafilatura's text (a tie keeps trafilatura's)
    assert combine(teaser, five_times + " one", None, lambda: []) == (teaser, "trafilatura")
    same_length = " ".join(["word"] * len(teaser.split()))
    assert combine(teaser, five_times + " one", None, _fallbacks(same_length)) == (teaser, "trafilatura")
    # edges are reconciled against a check of at least half trafilatura's words, not against a smaller fragment
    traf = "\n".join([*BODY, "Sign up for our newsletter today!"])  # 47 words
    half = "\n".join([BODY[2], " ".join(["filler"] * 10)])  # 24 words
    assert combine(traf, half, None, never) == ("\n".join(BODY), "trafilatura")
    fragment = BODY[2] + " one two three four"  # 18 words: less than half of trafilatura's 47
    assert combine(traf, fragment, None, never) == (traf, "trafilatura")


def test_a_line_is_present_when_half_its_word_3_grams_are():
    lines = _Lines("one two three four five six")
    assert lines.has("one two three four xx yy")  # 2 of its 4 trigrams
    assert not lines.has("one two three xx yy")  # 1 of 3
    assert lines.has("Two, THREE!") and not lines.has("two five")  # shorter lines: their bigrams, any case
    assert lines.has("...") is None


def test_the_lede_can_be_the_first_line_and_only_lines_just_above_the_text_come_back():
    lede = "Budget passes after a long night"
    traf = "\n".join(BODY)
    on = ExtractConfig(lede=True)
    assert reconcile_edges(traf, "\n".join([lede, *BODY]), [lede], on) == "\n".join([lede, *BODY])
    # three lines above: only the two nearest the text are looked at
    three = ["Budget passes", "Council splits", "Mayor pleased"]
    assert reconcile_edges(traf, "\n".join([*three, *BODY]), three, on) == "\n".join([*three[1:], *BODY])
    # resiliparse has trafilatura's lines only inside much longer ones: where the body starts is unknown, nothing is
    # added
    padded = [f"{line} {' '.join(['padding'] * 40)}" for line in BODY]
    assert reconcile_edges(traf, "\n".join([lede, *padded]), [lede], on) == traf
    # lines of two words: where the body starts is found by their word pairs, line by line
    assert reconcile_edges("Alpha beta\nGamma delta", "Head line\nAlpha beta\nGamma delta", ["Head line"], on) == (
        "Head line\nAlpha beta\nGamma delta"
    )
    # combine passes its config on: the lede with lede=True only
    check = "\n".join([lede, *BODY])
    assert combine(traf, check, None, lambda: [], on, heads=[lede])[0] == check
    assert combine(traf, check, None, lambda: [], heads=[lede])[0] == traf


def test_a_line_is_declared_when_it_runs_inside_a_head_or_a_head_inside_it_at_half_its_length_or_more():
    assert _declares("Budget passes", ["Budget passes | City News"])  # 2 of the title's 4 words
    assert not _declares("Budget passes", ["Budget passes | City News Online"])  # 2 of 5
    assert _declares("The summary, cut short here and then going on", ["The summary cut short here..."])  # 5 of 9
    assert not _declares("The summary cut short and then going on", ["The summary cut short here"])  # not a run
    assert _declares("BUDGET, passes!", ["budget passes"]) and not _declares("passes budget", ["budget passes"])
    assert not _declares("...", ["..."]) and not _declares("Budget", [])
    assert not _declares("udget passes", ["Budget passes"])  # whole words only
    assert _declares("Zebra crossing", ["A zebra crossing story"])  # the shorter by length, not by spelling


def test_declared_heads_are_the_title_and_the_title_and_description_meta_tags():
    page = (
        "<html><head><title>Budget passes &amp; more | City News</title>"
        '<meta property="og:title" content="Budget passes">'
        "<meta name='description' content='A short summary.'>"
        "<meta name=twitter:description content=Short>"
        '<meta property="og:site_name" content="City News"><meta name="keywords" content="budget, city">'
        '<meta name="title-color" content="red"><meta content="Content first" property="og:description" />'
        '<meta property="og:description" content="  spread\n  over   lines ">'
        '<meta name="description" content="">'
        "</head><body><svg><title>An icon</title></svg></body></html>"
    )
    assert declared_heads(page) == [
        "Budget passes & more | City News",
        "Budget passes",
        "A short summary.",
        "Short",
        "Content first",
        "spread over lines",
    ]
    assert declared_heads("<p>No head at all</p>") == []


@pytest.mark.timeout(60)
def test_declared_heads_are_read_in_linear_time_on_hostile_pages():
    # a regular expression that scanned to the end of the page from every unclosed tag would take hours here
    assert declared_heads("<meta name=description content=x " * 100_000) == []
    assert declared_heads("<title>" * 200_000) == []


def test_a_teaser_that_only_the_declared_body_reveals_is_replaced_by_it():
    # the page shows three paragraphs (resiliparse sees no more than trafilatura); its JSON-LD declares the article.
    # (A shorter teaser would not do: below 250 characters trafilatura reads the JSON-LD itself.)
    article = "\n".join(BODY * 7)
    declared = json.dumps({"@type": "NewsArticle", "articleBody": article})
    teaser = "".join(f"<p>{line}</p>" for line in BODY)
    page = (
        f'<html><head><script type="application/ld+json">{declared}</script></head><body><article>{teaser}'
        "<p>Subscribe to read the whole story.</p></article></body></html>"
    )
    assert len(extract_with(page, config=ExtractConfig(method="resiliparse")).text.split()) < 50
    result = extract_with(page, "https://news.example.org/budget")
    assert (result.extractor, result.text) == ("json-ld", article)


def test_json_ld_at_the_start_of_a_page_and_escaped_markup_inside_an_html_body():
    assert _json_ld('<script type="application/ld+json">{"articleBody": "First."}</script>', None) == "First."
    # in an HTML body, &lt;br&gt; is text that shows a tag, not a line break
    body = json.dumps({"articleBody": "<p>Write &lt;br&gt; for a break &amp; more.</p>"})
    assert _json_ld(_ld_page(body), None) == "Write <br> for a break & more."


def test_one_extractor_alone_and_the_size_limit():
    page = "<html><body><article>" + "".join(f"<p>{line}</p>" for line in BODY * 4) + "</article></body></html>"
    for method in ("readability", "resiliparse", "trafilatura-full"):
        result = extract_with(page, config=ExtractConfig(method=method))
        assert result.extractor == method and result.text.split() == " ".join(BODY * 4).split(), method
    assert extract_with(page.encode(), config=ExtractConfig(max_html_bytes=len(page))).outcome == "ok"
    assert extract_with(page.encode(), config=ExtractConfig(max_html_bytes=len(page) - 1)).outcome == "too_large"
    assert extract_with("<html><body></body></html>", config=ExtractConfig(method="readability")).outcome == "empty"
    # blocks without a line break between them in the HTML are still lines of their own
    assert extract_with(page, config=ExtractConfig(method="readability")).text.split("\n")[:3] == BODY
    # no-break spaces come out as spaces, whichever extractor ran
    spaced = page.replace("new budget", "new&nbsp;budget").replace("the parks", "the\u00a0parks")
    for method in ("trafilatura", "trafilatura-full", "resiliparse", "readability", "combined"):
        text = extract_with(spaced, config=ExtractConfig(method=method)).text
        assert "\xa0" not in text and "new budget" in text and "the parks" in text, method


def test_readability_text_keeps_every_character_of_its_summary_one_line_per_block(web_pages_dir):
    import lxml.html
    from readability import Document

    entry, html = _page(web_pages_dir, "html/axios.com.future.html")
    page = html.decode("utf-8")
    text = extract_with(page, entry["url"], ExtractConfig(method="readability")).text
    summary = lxml.html.fromstring(Document(page, url=entry["url"]).summary(html_partial=True)).text_content()
    assert "".join(text.split()) == "".join(summary.split())  # every character, only the white space differs
    assert len(text.split()) > len(summary.split())  # blocks that ran together ("behaviors.Axios'") are apart
    assert all(line == line.strip() and line for line in text.split("\n"))


def test_comments_are_left_out_by_the_first_extractor_and_the_full_cascade(web_pages_dir):
    import trafilatura

    entry, html = _page(web_pages_dir, "html/blog.wordpress.com.diverse.html")
    page = html.decode("utf-8")
    with_comments = _link_text(trafilatura.extract(page, url=entry["url"], include_comments=True, include_links=True))
    for method in ("trafilatura", "trafilatura-full"):
        text = extract_with(page, entry["url"], ExtractConfig(method=method)).text
        comments = [line for line in with_comments.split("\n") if line not in text and len(line.split()) > 8]
        assert len(text.split()) < 0.7 * len(with_comments.split()) and len(comments) > 5, method


def test_the_full_cascade_sees_links_too(web_pages_dir):
    # the "Lea también" link lines that trafilatura keeps when links are stripped before its link-density tests
    entry, html = _page(web_pages_dir, "html/100noticias.com-millones.html")
    text = extract_with(html, entry["url"], ExtractConfig(method="trafilatura-full")).text
    assert _snippets(entry, text) == ([], [])
    assert "](" not in text


def test_a_full_article_from_trafilatura_is_kept(web_pages_dir):
    entry = _pages(web_pages_dir, 1)[0]
    html = (web_pages_dir / entry["file"]).read_bytes()
    result = extract_with(html, entry["url"], ExtractConfig(lede=True))
    alone = extract_with(html, entry["url"], ExtractConfig(method="trafilatura")).text
    assert result.extractor == "trafilatura"
    assert extract_with(html, entry["url"]).text == alone
    # with the lede: the page's declared headline above trafilatura's text, nothing else added
    assert result.text == "Biggest money laundering scheme in history uncovered in Ukraine\n" + alone


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
    with pytest.raises(ValueError, match="teaser_ratio must be > 0, got 0"):
        ExtractConfig(teaser_ratio=0)


DEEP_TEXT = " ".join(
    f"Sentence {i} of an article that a broken page generator buried under many elements." for i in range(40)
)


def _nested_page(depth: int) -> bytes:
    return (
        f"<html><head><title>Deep</title></head><body>{'<div>' * depth}<p>{DEEP_TEXT}</p>{'</div>' * depth}"
        f"</body></html>"
    ).encode()


def test_a_page_nested_past_the_parser_depth_limit_is_recorded_as_too_deep_not_empty():
    """libxml2 stops parsing at 256 levels of elements, so 200,000 nested <div>s read as an empty page."""
    assert extract_with(_nested_page(200)).outcome == "ok"  # below the limit the text comes out
    deep = extract_with(_nested_page(200_000), "https://deep.example.com/page")
    assert deep.outcome == "too_deep" and deep.text is None
    assert "nested deeper than 256 levels" in deep.error
    assert extract_with("<html><body><div><div></div></div></body></html>").outcome == "empty"
    [(_, pooled)] = list(
        extract_pages([(0, _nested_page(200_000), "https://deep.example.com/page")], ExtractConfig(workers=1))
    )
    assert pooled.outcome == "too_deep"  # also through the worker pool the build uses


def test_pool_extracts_in_parallel_and_records_the_extractor(web_pages_dir):
    entries = _pages(web_pages_dir, 4)
    pages = [(e["file"], (web_pages_dir / e["file"]).read_bytes(), e["url"]) for e in entries]
    results = dict(extract_pages(pages, ExtractConfig(workers=2)))
    assert set(results) == {e["file"] for e in entries}
    for key, html, url in pages:
        assert results[key].text == extract_with(html, url).text
        assert results[key].extractor in set(METHODS) - {"combined"}


def test_two_workers_extract_at_the_same_time():
    """Both workers burn CPU on their pages in the same sampling windows (one worker after the other would overlap
    in at most the window of the hand-over)."""
    page = nested_blocks(1500)  # ~0.7 s of CPU each
    me = psutil.Process()
    before = {c.pid for c in me.children()}
    with ExtractorPool(ExtractConfig(workers=2, method="trafilatura", timeout_s=300.0)) as pool:
        workers = [c for c in me.children() if c.pid not in before]
        assert len(workers) == 2
        samples: list[list[float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append([_cpu_seconds(w) for w in workers])
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            # four pages: each worker holds two (the one it works on and one sent ahead)
            results = dict(pool.imap([(i, page, f"https://slow{i}.example.com/") for i in range(4)]))
        finally:
            stop.set()
            sampler.join()
    assert {r.outcome for r in results.values()} == {"ok"}
    both_busy = sum(b[0] > a[0] and b[1] > a[1] for a, b in zip(samples, samples[1:]))
    assert both_busy >= 5, f"{both_busy} windows with both workers busy; samples: {samples}"


# trafilatura has no time limit of its own: 20,000 nested blocks take it several seconds
def nested_blocks(n: int) -> str:
    return (
        "<html><body>"
        + "".join(
            f"<div><table><tr><td><p>paragraph {i} with some words in it</p></td></tr></table></div>" for i in range(n)
        )
        + "</body></html>"
    )


PATHOLOGICAL = nested_blocks(20000)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def test_a_page_past_the_deadline_is_killed_and_the_pool_goes_on(web_pages_dir):
    entries = _pages(web_pages_dir, 3)
    pages = [("slow", PATHOLOGICAL, "https://slow.example.com/")]
    pages += [(e["file"], (web_pages_dir / e["file"]).read_bytes(), e["url"]) for e in entries]
    with ExtractorPool(ExtractConfig(workers=1, timeout_s=3.0, method="trafilatura")) as pool:
        results = dict(pool.imap(pages))
        assert results["slow"].outcome == "timeout"
        assert all(results[e["file"]].outcome == "ok" for e in entries), "the replacement worker must carry on"
        again = dict(pool.imap(pages[1:2]))  # the pool is reusable after a kill
        assert again[entries[0]["file"]].outcome == "ok"


SIMPLE_PAGE = (
    "<html><body><article>"
    + "".join(
        f"<p>Paragraph {i} of a plain article, with enough ordinary words in it to be the main text of the page, "
        f"as a reader would see it, sentence after sentence.</p>"
        for i in range(6)
    )
    + "</article></body></html>"
)


def _spawned_workers(before: set[int]) -> list[psutil.Process]:
    """Extraction workers this process spawned (not multiprocessing's resource tracker)."""
    return [
        c
        for c in psutil.Process().children()
        if c.pid not in before and any("spawn_main" in part for part in c.cmdline())
    ]


def test_a_worker_killed_before_it_is_ready_hands_its_pages_on(caplog: pytest.LogCaptureFixture) -> None:
    before = {c.pid for c in psutil.Process().children()}
    pages = [(i, SIMPLE_PAGE, f"https://example.com/{i}") for i in range(4)]
    # spawn: a worker takes about a second to import its extractors, so it is surely killed before it is ready
    with ExtractorPool(ExtractConfig(workers=1, method="trafilatura", start_method="spawn")) as pool:
        (worker,) = _spawned_workers(before)
        worker.send_signal(signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="corpus.extract"):
            results = dict(pool.imap(pages))
    assert {key: r.outcome for key, r in results.items()} == {0: "ok", 1: "ok", 2: "ok", 3: "ok"}
    # the pool saw the worker's pipe close before its "ready" message: the kill came before ready
    assert "an extraction worker failed to start (worker died (killed by SIGKILL))" in caplog.text


def test_workers_that_keep_dying_at_start_up_stop_the_pool_with_a_clear_error() -> None:
    before = {c.pid for c in psutil.Process().children()}
    stop = threading.Event()

    def kill_every_worker() -> None:
        while not stop.is_set():
            for worker in _spawned_workers(before):
                worker.send_signal(signal.SIGKILL)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_every_worker)
    killer.start()
    try:
        with ExtractorPool(ExtractConfig(workers=1, method="trafilatura", start_method="spawn")) as pool:
            with pytest.raises(
                RuntimeError,
                match=r"5 extraction workers in a row failed to start, the last: "
                r"worker died \(killed by SIGKILL\)",
            ):
                list(pool.imap([(0, SIMPLE_PAGE, "https://example.com/")]))
    finally:
        stop.set()
        killer.join()


def _kill_once_busy(worker: psutil.Process, cpu_s: float = 0.5) -> None:
    """SIGKILL the worker (as the kernel's OOM killer would) once it has spent `cpu_s` of CPU on its first page."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        times = worker.cpu_times()
        if times.user + times.system >= cpu_s:
            worker.send_signal(signal.SIGKILL)
            return
        time.sleep(0.02)


def test_a_worker_killed_mid_page_is_recorded_and_replaced(web_pages_dir):
    entries = _pages(web_pages_dir, 3)
    pages = [("doomed", PATHOLOGICAL, "https://doomed.example.com/")]
    pages += [(e["file"], (web_pages_dir / e["file"]).read_bytes(), e["url"]) for e in entries]
    me = psutil.Process()
    before = {c.pid for c in me.children()}
    # one worker and a deadline far away: only the kill can end the pathological page
    with ExtractorPool(ExtractConfig(workers=1, timeout_s=300.0, method="trafilatura")) as pool:
        (worker,) = [c for c in me.children() if c.pid not in before]
        killer = threading.Thread(target=_kill_once_busy, args=(worker,))
        killer.start()
        results = dict(pool.imap(pages))
        killer.join()
        assert not worker.is_running()
        assert results["doomed"].outcome == "error"
        assert results["doomed"].error == "worker died (killed by SIGKILL)"
        assert results["doomed"].text is None
        assert all(results[e["file"]].outcome == "ok" for e in entries), "the replacement worker must do the rest"
        (replacement,) = [c for c in me.children() if c.pid not in before]
        assert replacement.pid != worker.pid


def test_workers_end_soon_after_the_process_that_started_them_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed flow run must not leave extraction workers behind: they held its output pipe, so Prefect never saw
    the run end. The parent is killed while one worker is busy on a page that takes it seconds and the other waits
    (the parent's send-ahead of the second page blocks until the first worker is done)."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys\n"
        "from corpus.extract import ExtractConfig, ExtractorPool\n"
        f"page = {PATHOLOGICAL!r}\n"
        "pool = ExtractorPool(ExtractConfig(workers=2, method='trafilatura', timeout_s=300.0))\n"
        "print(' '.join(str(slot.proc.pid) for slot in pool._slots), flush=True)\n"
        "list(pool.imap([(i, page, None) for i in range(4)]))\n"
    )
    repo = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    workers: list[psutil.Process] = []
    try:
        assert parent.stdout is not None
        workers = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2
        deadline = time.monotonic() + 60
        while not any(sum(w.cpu_times()[:2]) > 0.5 for w in workers):  # one is in the middle of a page
            assert time.monotonic() < deadline and parent.poll() is None, "no worker got busy"
            time.sleep(0.02)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, f"workers {[w.pid for w in alive]} outlived their killed parent by 5 s"
    finally:
        parent.kill()
        parent.wait()
        for worker in workers:
            try:
                worker.kill()
            except psutil.NoSuchProcess:
                pass


def test_a_stuck_worker_times_out_even_with_a_large_page_waiting_behind_it() -> None:
    """A page larger than the pipe's buffer, sent ahead to a worker that never finishes its current page, blocked the
    whole pool (and so the deadline that was to kill that worker): the pool hung for ever."""
    large = "<html><body><article>" + "<p>A long and ordinary article paragraph, sentence after sentence.</p>" * 20000
    large += "</article></body></html>"  # ~1.4 MB: far past a pipe's 64 KiB buffer
    # 8 s: the large page must finish inside the deadline on a loaded 2-core machine too
    with ExtractorPool(ExtractConfig(workers=1, timeout_s=8.0, method="trafilatura")) as pool:
        assert dict(pool.imap([("warm", SIMPLE_PAGE, None)]))["warm"].outcome == "ok"  # the worker is ready
        worker = psutil.Process(pool._slots[0].proc.pid)

        def pages():
            # The worker is stopped while it works on the first page: it will never finish it nor read again.
            threading.Timer(0.3, worker.suspend).start()
            yield "stuck", PATHOLOGICAL, "https://stuck.example.com/"
            yield "large", large, "https://large.example.com/"

        results: dict = {}
        # In a thread, so that a pool blocked in a pipe write fails this test instead of hanging the suite.
        runner = threading.Thread(target=lambda: results.update(pool.imap(pages())), daemon=True)
        runner.start()
        runner.join(120)
        hung = runner.is_alive()
        if hung:
            worker.kill()  # unblocks the write, so the pool can be closed
            runner.join(30)
    assert not hung, "the pool blocked on a page sent to a worker that never reads it"
    assert results["stuck"].outcome == "timeout"
    assert results["large"].outcome == "ok" and results["large"].text


def test_a_worker_resets_trafilaturas_caches_every_n_pages():
    """The worker loop itself, run in a thread of this process so that trafilatura's caches can be looked at."""
    from trafilatura.utils import line_processing

    from corpus.extract import _worker

    mine, theirs = mp.Pipe()
    worker = threading.Thread(
        target=_worker, args=(theirs, ExtractConfig(method="trafilatura", reset_caches_every=3), os.getppid())
    )
    worker.start()
    try:
        assert mine.recv() == "ready"
        line_processing.cache_clear()
        cached = []
        for i in range(5):
            mine.send((i, SIMPLE_PAGE.replace("Paragraph", f"Page {i} paragraph"), f"https://example.com/{i}"))
            assert mine.recv()[1].outcome == "ok"
            cached.append(line_processing.cache_info().currsize)
    finally:
        mine.send(None)
        worker.join()
    # growing over pages 1-2; reset after page 3 (before page 4 was read), so page 4 starts from empty caches
    assert 0 < cached[0] < cached[1] and cached[3] < cached[1], cached

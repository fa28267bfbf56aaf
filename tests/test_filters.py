"""Quality filters with drop reasons, the language filter, and Wikipedia removal."""

from __future__ import annotations

from corpus.filters import FilterConfig, alpha_fraction, detect_language, drop_reason
from corpus.wikipedia import is_wikipedia, is_wikipedia_host

ENGLISH = (
    "The committee met on Tuesday to discuss the new budget for the city's public libraries, "
    "which have seen growing demand since the schools closed early this year. "
) * 12
GERMAN = (
    "Der Ausschuss traf sich am Dienstag, um den neuen Haushalt für die öffentlichen Bibliotheken der Stadt "
    "zu besprechen, die seit der frühen Schließung der Schulen stark gefragt sind. "
) * 12


def test_too_short_uses_words():
    assert drop_reason("word " * 127) == "too_short"
    assert drop_reason(ENGLISH) is None
    assert drop_reason("word " * 20, FilterConfig(min_words=10)) is None


def test_mostly_non_text():
    numbers = " ".join(f"{i}.{i * 7} | {i * 3}% ;;" for i in range(300))
    assert alpha_fraction(numbers) < 0.6
    assert drop_reason(numbers) == "mostly_non_text"


def test_language_filter_is_optional_and_offline():
    assert detect_language(GERMAN)[0] == "de"
    assert detect_language(ENGLISH)[0] == "en"
    assert drop_reason(GERMAN) is None  # off by default: every language is kept
    assert drop_reason(GERMAN, FilterConfig(languages=("en",))) == "wrong_language"
    assert drop_reason(ENGLISH, FilterConfig(languages=("en",))) is None


def test_wikipedia_any_language_mobile_and_mirrors():
    for url in (
        "https://en.wikipedia.org/wiki/GPT-2",
        "https://de.m.wikipedia.org/wiki/X",
        "http://wikipedia.org/",
        "https://EN.WIKIPEDIA.ORG./wiki/Y",
        "https://www.wikiwand.com/en/GPT-2",
    ):
        assert is_wikipedia(url), url
    for url in ("https://notwikipedia.org/", "https://wikipedia.org.evil.com/", "https://example.com/wikipedia.org"):
        assert not is_wikipedia(url), url
    # after a redirect: the final URL or the link URL is enough
    assert is_wikipedia("https://example.com/article", "https://en.wikipedia.org/wiki/Z")
    assert is_wikipedia(None, "https://fr.wikipedia.org/wiki/Z")
    assert is_wikipedia_host("ja.m.wikipedia.org")

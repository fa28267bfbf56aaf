"""Document quality filters, each with its own drop reason.

- `too_short`: fewer than `min_words` words (default 128: the OpenWebTextCorpus/Megatron cut-off of 128 tokens,
  taken in words, which are fewer than GPT-2 tokens, so it is a little stricter; the 300 evaluation pages have
  a median of about 600 words and boilerplate-only extractions fall under it).
- `mostly_non_text`: fewer than `min_alpha_fraction` of the non-space characters are letters (tables of numbers,
  code dumps, symbol soup).
- `wrong_language`: optional; `languages` = ISO 639-1 codes to keep, identified with py3langid (its model ships in
  the package, nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FilterConfig:
    min_words: int = 128
    min_alpha_fraction: float = 0.6
    languages: tuple[str, ...] = ()  # empty: keep every language
    language_min_confidence: float = 0.5


_identifier = None


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of `text` by py3langid, normalized probabilities."""
    global _identifier
    if _identifier is None:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        _identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    lang, prob = _identifier.classify(text[:5000])
    return lang, float(prob)


def alpha_fraction(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def drop_reason(text: str, config: FilterConfig = FilterConfig()) -> str | None:
    """The reason to drop this document, or None to keep it. Cheap checks first."""
    if len(text.split()) < config.min_words:
        return "too_short"
    if alpha_fraction(text) < config.min_alpha_fraction:
        return "mostly_non_text"
    if config.languages:
        lang, prob = detect_language(text)
        if lang not in config.languages or prob < config.language_min_confidence:
            return "wrong_language"
    return None

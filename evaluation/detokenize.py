"""Invertible de-tokenizers for WikiText, PTB and One Billion Word (paper section 3.1).

The benchmark files are tokenized: punctuation and contractions stand apart (`it 's`, `well , then`), WikiText
marks split numbers and hyphens (`1 @,@ 000`, `role @-@ playing`), PTB is lower-cased. The paper scores a
de-tokenized text that reads like web text (worth 2.5 to 5 perplexity points) and still divides by the number of
words of the original file. OpenAI never published their de-tokenizers; these are our own.

Each de-tokenizer works line by line and comes with its inverse, `retokenize`. `detokenize_lines` keeps a
de-tokenized line only when `retokenize` gives the original line back, and keeps the original line otherwise, so
the mapping from the original file to the scored text is invertible by construction; `DetokenizedText.fraction`
says how many lines were changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLOSE_PUNCT = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%"}
_OPEN_PUNCT = {"(", "[", "{", "$"}
_WIKI_MARKERS = {"@-@": "-", "@,@": ",", "@.@": "."}


@dataclass(frozen=True)
class Style:
    """The tokenization conventions of one data set."""

    name: str
    contraction_split: str  # "n't" (PTB: `do n't`) or "'t" (Moses: `don 't`)
    wiki_markers: bool = False  # WikiText's @-@ @,@ @.@
    lowercase: bool = False  # PTB is all lower case: de-tokenizing capitalizes sentence starts
    line_padding: bool = False  # WikiText lines start and end with a space


WIKITEXT = Style("wikitext", contraction_split="'t", wiki_markers=True, line_padding=True)
PTB = Style("ptb", contraction_split="n't", lowercase=True, line_padding=True)
ONE_BILLION_WORD = Style("1bw", contraction_split="'t")
STYLES = {s.name: s for s in (WIKITEXT, PTB, ONE_BILLION_WORD)}


def _is_contraction(token: str, style: Style) -> bool:
    if style.contraction_split == "n't" and token.lower() == "n't":
        return True
    return (
        len(token) > 1
        and token[0] == "'"
        and token[1:].isalpha()
        and token[1:].lower() in {"s", "re", "ve", "ll", "d", "m", "t"}
    )


def detokenize_line(line: str, style: Style) -> str:
    """One tokenized line (without its newline) as running text."""
    body = line[1:-1] if style.line_padding and len(line) >= 2 and line[0] == line[-1] == " " else line
    tokens = body.split(" ")
    out = ""
    join_next = False  # the previous token wants no space after it
    open_quote = False
    for i, token in enumerate(tokens):
        if style.wiki_markers and token in _WIKI_MARKERS:
            out += _WIKI_MARKERS[token]
            join_next = True
            continue
        glue = i == 0 or join_next
        join_next = False
        if token == '"':
            if open_quote:
                glue = True
            else:
                join_next = True
            open_quote = not open_quote
        elif token in _CLOSE_PUNCT or _is_contraction(token, style):
            glue = True
        elif token in _OPEN_PUNCT:
            join_next = True
        out += token if glue else " " + token
    if style.lowercase:
        out = out[:1].upper() + out[1:]
    return out


_WORD_EDGE = re.compile(r"^([(\[{$\"]*)(.*?)([,;:!?)\]}%\"]*)$")


def _split_word(word: str, style: Style) -> list[str]:
    lead, core, trail = _WORD_EDGE.match(word).groups()  # type: ignore[union-attr]
    # A final period stands alone unless it ends an abbreviation (U.S.) or is the only character.
    period = ""
    if core.endswith(".") and len(core) > 1 and ("." not in core[:-1] or core.endswith("..")):
        core, period = core[:-1], "."
    trail = period + trail
    pieces: list[str] = []
    if style.contraction_split == "n't" and core.lower().endswith("n't") and len(core) > 3:
        pieces += [core[:-3], core[-3:]]
    else:
        m = re.match(r"^(.+?[A-Za-z])('(?:s|re|ve|ll|d|m|t|S|RE|VE|LL|D|M|T))$", core)
        pieces += [m.group(1), m.group(2)] if m else [core] if core else []
    return list(lead) + pieces + list(trail)


def retokenize_line(text: str, style: Style) -> str:
    """The inverse of `detokenize_line`: split punctuation and contractions off again."""
    if style.wiki_markers:
        text = re.sub(r"(?<=\d),(?=\d)", " @,@ ", text)
        text = re.sub(r"(?<=\d)\.(?=\d)", " @.@ ", text)
        text = re.sub(r"(?<=\S)-(?=\S)", " @-@ ", text)
    tokens: list[str] = []
    for word in text.split(" "):
        tokens += _split_word(word, style) if word else [""]
    if style.lowercase:  # PTB's only capital letters are its number token N
        tokens = [t if t == "N" else t.lower() for t in tokens]
    body = " ".join(tokens)
    return f" {body} " if style.line_padding else body


@dataclass(frozen=True)
class DetokenizedText:
    text: str
    lines: int
    changed: int

    @property
    def fraction(self) -> float:
        return self.changed / self.lines if self.lines else 0.0


def detokenize_lines(text: str, style: Style) -> DetokenizedText:
    """De-tokenize every line whose de-tokenized form re-tokenizes back to it; keep the other lines as they are."""
    out, changed, lines = [], 0, 0
    for line in text.split("\n"):
        if not line.strip():
            out.append(line.strip())
            continue
        lines += 1
        candidate = detokenize_line(line, style)
        if candidate != line and retokenize_line(candidate, style) == line:
            out.append(candidate)
            changed += 1
        else:
            out.append(line)
    return DetokenizedText("\n".join(out), lines, changed)

"""Real English prose for the mini web: Python's own reference documentation, bundled with every interpreter.

`pydoc_data.topics.topics` maps ~80 topic names to the plain-text pages that `help()` shows. We cut each page into
article-sized passages of whole paragraphs, keeping the structure (headings, lists, code) so that pages can render it
as HTML the way a real site would.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pydoc_data.topics import topics
from typing import Literal

BlockKind = Literal["heading", "paragraph", "item", "code"]

_UNDERLINE = re.compile(r"^[=*\-~^\"]{3,}$")
_ITEM = re.compile(r"^\s*[*\-] ")


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str


@dataclass(frozen=True)
class Passage:
    """A run of whole paragraphs from one documentation topic, long enough to be an article."""

    key: str  # "<topic>-<index>", stable for one Python version
    title: str
    blocks: tuple[Block, ...]

    @property
    def n_words(self) -> int:
        """Words of prose (code blocks excluded): what a word-count filter sees at the least."""
        return sum(len(b.text.split()) for b in self.blocks if b.kind != "code")

    def plain_text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


def _is_prose(lines: list[str]) -> bool:
    """An indented block that is sentences (a method's description), not a code sample or a grammar rule."""
    text = " ".join(line.strip() for line in lines)
    tokens = text.split()
    wordlike = sum(bool(re.fullmatch(r"[A-Za-z][a-z]*[,.;:]?", t)) for t in tokens)
    return len(tokens) >= 8 and wordlike / len(tokens) >= 0.7 and not re.search(r">>>|::=|^\s*[#@]", text)


def _blocks(page: str) -> tuple[str, list[Block]]:
    """Split one topic page into its title and blocks (paragraphs separated by blank lines)."""
    chunks = [c for c in re.split(r"\n\s*\n", page.strip("\n")) if c.strip()]
    title = chunks[0].splitlines()[0].strip()
    blocks: list[Block] = []
    for chunk in chunks[1:] if _UNDERLINE.match(chunks[0].splitlines()[-1].strip()) else chunks:
        lines = chunk.splitlines()
        if all(_UNDERLINE.match(line.strip()) for line in lines):
            continue  # a bare horizontal rule
        if len(lines) == 2 and _UNDERLINE.match(lines[1].strip()):
            blocks.append(Block("heading", lines[0].strip()))
        elif _ITEM.match(lines[0]):
            blocks.append(Block("item", " ".join(line.strip() for line in lines)[2:].strip()))
        elif all(line.startswith("   ") for line in lines) and not _is_prose(lines):
            blocks.append(Block("code", "\n".join(line[3:] for line in lines)))
        else:
            blocks.append(Block("paragraph", " ".join(line.strip() for line in lines)))
    return title, blocks


def _mostly_letters(blocks: list[Block], least: float = 0.72) -> bool:
    """Letters are most of the visible characters: tables of operators and format codes are not articles."""
    chars = [c for b in blocks for c in b.text if not c.isspace()]
    return sum(c.isalpha() for c in chars) >= least * len(chars)


def _prose_words(blocks: list[Block]) -> int:
    return sum(len(b.text.split()) for b in blocks if b.kind != "code")


@lru_cache(maxsize=4)
def load_passages(target_words: int = 240, min_words: int = 160) -> tuple[Passage, ...]:
    """All passages of the bundled documentation, in a fixed order (by topic name, then position).

    A passage closes at the first heading after `target_words` words of prose, or at any paragraph after twice that;
    a short tail joins the passage before it, and a topic too short for one passage is skipped.
    """
    passages: list[Passage] = []
    for name in sorted(topics):
        title, blocks = _blocks(topics[name])
        groups: list[list[Block]] = [[]]
        for block in blocks:
            words = _prose_words(groups[-1])
            if groups[-1] and ((words >= target_words and block.kind == "heading") or words >= 2 * target_words):
                groups.append([])
            groups[-1].append(block)
        if len(groups) > 1 and _prose_words(groups[-1]) < min_words:
            groups[-2].extend(groups.pop())
        section = None  # the heading in force where a passage starts, for its title
        for i, group in enumerate(groups):
            if group[0].kind == "heading":
                section = group.pop(0).text
            body = list(group)
            while body and body[-1].kind == "heading":
                body.pop()
            if _prose_words(body) >= min_words and _mostly_letters(body):
                passage_title = f"{title}: {section}" if section else title
                passages.append(Passage(key=f"{name}-{i}", title=passage_title, blocks=tuple(body)))
            section = next((b.text for b in reversed(group) if b.kind == "heading"), section)
    return tuple(_unique_titles(_distinct(passages)))


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """Word n-grams of the lower-cased text: what near-duplicate detection compares."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def _distinct(passages: list[Passage], max_overlap: float = 0.05) -> list[Passage]:
    """Drop passages that repeat another: the reference pages overlap (the "compound" page holds the "try" page).

    Only unplanned duplicates would confuse the ground truth, so every pair of passages kept shares almost no 5-gram.
    Passages of short, single-subject topics are kept first; the collections that repeat them go.
    """
    topic_size = {name: len(text) for name, text in topics.items()}
    kept: list[tuple[Passage, set[tuple[str, ...]]]] = []
    for p in sorted(passages, key=lambda p: (topic_size[p.key.rsplit("-", 1)[0]], p.key)):
        own = shingles(p.plain_text())
        if all(len(own & other) / len(own | other) < max_overlap for _, other in kept):
            kept.append((p, own))
    chosen = {p.key for p, _ in kept}
    return [p for p in passages if p.key in chosen]


def _unique_titles(passages: list[Passage]) -> list[Passage]:
    """Number repeated titles ("..., part 2") the way a series of articles on one subject would be."""
    seen: dict[str, int] = {}
    out = []
    for p in passages:
        seen[p.title] = seen.get(p.title, 0) + 1
        out.append(p if seen[p.title] == 1 else Passage(p.key, f"{p.title}, part {seen[p.title]}", p.blocks))
    return out


def source_fingerprint() -> str:
    """A hash of the bundled documentation text: the mini web depends on it as much as on the seed."""
    digest = hashlib.sha256()
    for name in sorted(topics):
        digest.update(name.encode() + b"\0" + topics[name].encode() + b"\0")
    return digest.hexdigest()[:16]

"""What a finished build must say out loud: an empty corpus (which stage dropped everything, and why) or a corpus
too small to have a validation split. Written into manifest.json and the dataset card; the flow logs them and fails a
build that ends with no documents."""

from __future__ import annotations

from collections.abc import Sequence

# What goes into and out of each stage, for the message.
_UNITS = {
    "links": ("submissions", "links"),
    "fetch": ("URLs", "pages"),
    "extract": ("pages", "texts"),
    "filter": ("texts", "documents"),
    "dedup": ("documents", "documents"),
    "wikipedia": ("documents", "documents"),
    "shards": ("documents", "documents"),
}
_NO_INPUT = {
    "links": "the Reddit dumps hold no submissions (an empty or cut dump?)",
    "extract": "there are no HTML pages to extract (no page was fetched, or the WARC inputs hold none)",
}


def empty_corpus_reason(stages: Sequence[dict]) -> str | None:
    """None when the last stage kept documents; else which stage was the first to keep nothing, and the counts."""
    if not stages or stages[-1]["out"] > 0:
        return None
    row = next(r for r in stages if r["out"] == 0)
    stage = row["stage"]
    units_in, units_out = _UNITS.get(stage, ("items", "items"))
    if row["in"] == 0:
        why = _NO_INPUT.get(stage, f"it received no {units_in}")
        return f"the corpus is empty: the {stage} stage had no input: {why}"
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(row["dropped"].items(), key=lambda kv: (-kv[1], kv[0])) if v)
    return (
        f"the corpus is empty: the {stage} stage kept 0 {units_out} of {row['in']} {units_in} "
        f"(dropped: {dropped or 'no reason recorded'})"
    )


def build_warnings(stages: Sequence[dict], val_documents: int, val_fraction: float) -> list[str]:
    """The warnings of a finished build, for manifest.json, the card and the run's logs."""
    warnings = []
    if (reason := empty_corpus_reason(stages)) is not None:
        warnings.append(reason)
    elif val_fraction > 0 and val_documents == 0:
        warnings.append(
            f"no validation split: {stages[-1]['out'] if stages else 0} document(s) are too few to set "
            f"one aside (gpt2/train's webtext-val evaluation needs one)"
        )
    return warnings

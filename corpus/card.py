"""The dataset card (shards/README.md), rendered from the build manifest: what, how, stats, top domains, caveats."""

from __future__ import annotations

from typing import Any


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(manifest: dict[str, Any]) -> str:
    cfg = manifest["config"]
    totals = manifest["totals"]
    stages = manifest["stages"]
    stage_rows = [
        [s["stage"], s["in"], s["out"], ", ".join(f"{k}: {v}" for k, v in s["dropped"].items()) or "-"] for s in stages
    ]
    shard_rows = [[f["name"], f["rows"], f"{f['bytes']:,}", f["sha256"][:16]] for f in manifest["shards"]]
    domain_rows = [[d, n] for d, n in manifest["top_domains"]]
    extractor_rows = [[e, n] for e, n in sorted(manifest["extractors"].items())]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest["versions"].items()))
    warnings = "".join(f"\n> **Warning:** {w}.\n" for w in manifest.get("warnings", []))
    links = cfg.get("links")
    if links:
        source = (
            f"web pages linked from Reddit submissions with at least {links['min_karma']} karma (sum of scores "
            f"per canonical URL, submissions before {links['cutoff']}, NSFW posts "
            f"{'dropped' if links['drop_nsfw'] else 'kept'})"
        )
    else:
        source = "web pages read from existing WARC files"
    extract = cfg["extract"]
    if extract.get("method", "combined") == "combined":
        extraction = (
            "trafilatura, read-more inserts and copyright notices dropped, trailing lines checked against resiliparse's "
            f"text{', the declared headline and summary put back' if extract.get('lede') else ''}; when resiliparse or "
            f"the page's JSON-LD article body has more than {extract['teaser_ratio']}x its words, the longest of "
            "readability-lxml, trafilatura's full cascade and that body"
        )
    else:
        extraction = f"{extract['method']} alone"
    return f"""# WebText-style corpus

A rebuild of GPT-2's WebText: the main text of {source}, de-duplicated, with Wikipedia removed.
{warnings}
## Contents

- **{totals["documents"]:,} documents**, {totals["words"]:,} words, {totals["text_bytes"]:,} bytes of UTF-8 text
  (train {totals["train_documents"]:,}, val {totals["val_documents"]:,}; val fraction {cfg["shards"]["val_fraction"]}).
- Columns: `id` (hash of the link URL), `url` (final URL after redirects), `link_url` (canonical Reddit link),
  `domain`, `title` (of the highest-scored submission), `text`, `karma`, `subreddits`, `created_utc` (first
  submission, unix seconds), `fetched_at`, `extractor` (trafilatura, or what replaced its teaser: readability,
  trafilatura-full or json-ld), `n_words`.
- Parquet, zstd, row groups of {cfg["shards"]["row_group_rows"]} rows; rows ordered by a hash of `id` (a fixed
  shuffle). The split is another hash of `id`, so it is stable when the corpus grows.

## How it was built

links (Reddit dumps -> canonical URLs with karma) -> fetch (polite crawler, WARC archive) -> extract ({extraction})
-> filter (at least
{cfg["filter"]["min_words"]} words, at least {cfg["filter"]["min_alpha_fraction"]:.0%} letters,
languages: {", ".join(cfg["filter"]["languages"]) or "all"}) -> dedup (exact normalized-text hash; MinHash LSH on word
{cfg["dedup"]["shingle_words"]}-grams, {cfg["dedup"]["num_perm"]} permutations, pairs verified at Jaccard >=
{cfg["dedup"]["threshold"]}; survivor: highest karma, then earliest) -> Wikipedia removal (wikipedia.org, all
languages and mobile hosts, and known mirrors) -> shards.

{_table(["stage", "in", "out", "dropped"], stage_rows)}

## Extractors

{_table(["extractor", "documents"], extractor_rows)}

## Top domains

{_table(["domain", "documents"], domain_rows)}

## Files

{_table(["file", "rows", "bytes", "sha256 (prefix)"], shard_rows)}

Full checksums, the configuration and library versions are in `../manifest.json`. Built with {versions}.

## Caveats

- Pages are what the sites served at fetch time, not in 2017; many links from old dumps are dead or changed.
- Reddit karma is a weak quality signal; the text can be offensive, wrong or copyrighted. Use for research.
- Extraction is heuristic: some boilerplate (menus, cookie notices) remains and some article text is lost
  (measured F1 about 0.93 on trafilatura's evaluation pages).
- Near-duplicate detection is probabilistic (LSH); verified pairs are exact, but a few duplicates are missed.
- Wikipedia copies on sites not in the mirror list are kept.
"""

"""Fetching in parts: the link list is split by a stable hash of each URL's registered domain, so every host (and its
`www.` form) is in exactly one part and `corpus.fetch`'s per-host politeness holds across the cluster. Each part is
one `fetch_urls` run with its own folder (`parts/<k>/`: links.parquet, log.parquet, warc/), resumable by itself from
its log, and reads its links a batch at a time: no process holds the whole link list. A part's links file also
carries each link's Reddit metadata, so the filter stage joins the pages of a part with that part's links only.

Concurrency: every part runs `FetchConfig.concurrency` requests at most, so the whole fetch runs (parts in flight) x
`concurrency`; per host it stays `per_host`, `min_delay_s` apart, whatever the number of parts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpus import links
from corpus.files import atomic_output, run_once, write_json
from corpus.urls import registered_domain, url_host

METADATA = ("karma", "subreddits", "title", "first_created_utc")  # what the filter stage joins to each page
LINKS_SCHEMA = pa.schema(
    [("url", pa.string()), ("start", pa.string())]  # log key, URL to request
    + [(name, links.LINKS_SCHEMA.field(name).type) for name in METADATA]
)
_BATCH_ROWS = 50_000


def part_of(url: str, parts: int) -> int:
    """The part of a URL: a hash of its registered domain, the same in every process and run."""
    domain = registered_domain(url_host(url))
    return int.from_bytes(hashlib.blake2b(domain.encode(), digest_size=8).digest(), "big") % parts


def request_url(url: str, original_urls: list[str] | None) -> str:
    """Request a URL as it was submitted (https first): the canonical form is a key, not always a page a site serves."""
    return min(original_urls or [url], key=lambda u: (not u.startswith("https:"), u))


def plan(links_path: Path, fetch_dir: Path, parts: int) -> dict:
    """Write each part's links (parts/<k>/links.parquet) from links.parquet, a batch at a time; returns the plan.

    A plan written by an interrupted run is kept as it was (its part folders hold fetched pages)."""
    plan_file = fetch_dir / "_plan.json"
    if plan_file.exists():
        return json.loads(plan_file.read_text())
    if parts < 1:
        raise ValueError(f"fetch parts must be at least 1, got {parts}")
    folders = [fetch_dir / "parts" / f"{k:05d}" for k in range(parts)]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    sizes = [0] * parts
    with contextlib.ExitStack() as stack:  # writers close (footers) before their files are renamed into place
        writers = [
            stack.enter_context(
                pq.ParquetWriter(
                    stack.enter_context(atomic_output(folder / "links.parquet")), LINKS_SCHEMA, compression="zstd"
                )
            )
            for folder in folders
        ]
        columns = ["url", "original_urls", *METADATA]
        if missing := [c for c in columns if c not in pq.read_schema(links_path).names]:
            raise ValueError(f"{links_path} is not a links file of the links stage: no column {', '.join(missing)}")
        for batch in pq.ParquetFile(links_path).iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            starts = [request_url(u, o) for u, o in zip(batch["url"].to_pylist(), batch["original_urls"].to_pylist())]
            part_of_row = np.array([part_of(start, parts) for start in starts], dtype=np.int64)
            table = pa.Table.from_batches([batch]).drop_columns(["original_urls"])
            table = table.add_column(1, "start", pa.array(starts, pa.string()))
            for k in np.unique(part_of_row):
                rows = table.filter(pa.array(part_of_row == k))
                writers[k].write_table(rows.cast(LINKS_SCHEMA))
                sizes[k] += rows.num_rows
    result = {"parts": parts, "links": sum(sizes), "part_links": sizes}
    write_json(plan_file, result)  # last: the plan exists only when every part's links do
    return result


def _links(folder: Path) -> Iterator[tuple[str, str]]:
    for batch in pq.ParquetFile(folder / "links.parquet").iter_batches(
        batch_size=_BATCH_ROWS, columns=["url", "start"]
    ):
        yield from zip(batch.column("url").to_pylist(), batch.column("start").to_pylist())


def fetch_part(fetch_dir: Path, k: int, config, progress: Callable[[dict], None] | None = None) -> dict:
    """Fetch part k unless its marker says it is done; returns its outcome counts."""
    from corpus.fetch import fetch_urls

    folder = fetch_dir / "parts" / f"{k:05d}"

    def fetch() -> dict:
        fetch_urls(_links(folder), folder, config, progress=progress)
        return dict(sorted(Counter(_log_outcomes(folder)).items()))

    return run_once(folder / "_DONE.json", fetch)


def _log_outcomes(folder: Path) -> list[str]:
    log = folder / "log.parquet"
    return pq.read_table(log, columns=["outcome"]).column("outcome").to_pylist() if log.exists() else []


def part_links(warc: Path) -> Path:
    """The links file of the part that fetched `warc` (one of `warcs`)."""
    return warc.parent.parent / "links.parquet"


def warcs(fetch_dir: Path) -> list[Path]:
    """Every part's WARC files, in part order."""
    return sorted((fetch_dir / "parts").glob("*/warc/*.warc.gz"))


def logs(fetch_dir: Path) -> list[Path]:
    return sorted((fetch_dir / "parts").glob("*/log.parquet"))

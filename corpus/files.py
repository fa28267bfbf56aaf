"""Atomic file writes and part markers: a file is written under a temporary name in its folder and renamed into place,
so a reader (or a re-run after a crash) sees either no file or the whole file; the temporary file is removed when the
write fails. `run_once` is the marker protocol of a stage's parts."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary path)` and rename the result to `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_once(marker: Path, work: Callable[[], dict]) -> dict:
    """A part of a stage: `work()` writes its files and returns its counts, which go to `marker`, written last; a part
    whose marker exists is not run again (its counts are read back). A part killed before its marker is run again,
    so its files must be written under the same names each time."""
    if marker.exists():
        return json.loads(marker.read_text())
    counts = work()
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_json(marker, counts)
    return counts


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_parquet(table: pa.Table, path: Path, row_group_size: int | None = None, compression: str = "zstd") -> None:
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression=compression, row_group_size=row_group_size))

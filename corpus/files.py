"""Atomic file writes: a file is written under a temporary name in its folder and renamed into place, so a reader (or a
re-run after a crash) sees either no file or the whole file; the temporary file is removed when the write fails."""
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


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def write_parquet(table: pa.Table, path: Path, row_group_size: int | None = None, compression: str = "zstd") -> None:
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression=compression, row_group_size=row_group_size))

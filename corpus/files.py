"""Atomic file writes and part markers: a file is written under a temporary name in its folder and renamed into place,
so a reader (or a re-run after a crash) sees either no file or the whole file; the temporary file is removed when the
write fails. `run_once` is the marker protocol of a stage's parts. `fingerprint` is the one rule by which every cache
and stage key of the project identifies an input file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
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


def fingerprint(path: Path) -> tuple[str, int, int]:
    """An input file's identity for cache and stage keys: its name, size and modification time (ns). The name, not
    the path: moving or copying a data folder (with its times, `cp -p`, `rsync -t`) keeps every cache valid."""
    stat = Path(path).stat()
    return Path(path).name, stat.st_size, stat.st_mtime_ns


def fingerprints(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """`fingerprint` of each file, in order; for a folder, of every file under it, named by its relative path."""
    out: list[tuple[str, int, int]] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += [(str(f.relative_to(path)), *fingerprint(f)[1:]) for f in sorted(path.rglob("*")) if f.is_file()]
        else:
            out.append(fingerprint(path))
    return out

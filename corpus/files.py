"""Atomic file writes and part markers: a file or folder is written under a temporary name beside it
(`.<name>.<pid>.tmp`) and renamed into place, so a reader (or a re-run after a crash) sees either no file or the whole
file; the temporary file is removed when the write fails, and a killed run's is removed by the next write of the same
name. `run_once` is the marker protocol of a stage's parts. `fingerprint` is the one rule by which every cache and
stage key of the project identifies an input file."""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: hidden, in the same folder (a rename across file
    systems is not atomic), named by the process, and never matching a glob for finished files (`*.parquet`)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class atomic_output:  # lower case: used like a function, as contextlib.suppress is
    """`with atomic_output(path) as tmp:` write `tmp`; it becomes `path` when the block ends without error and is
    removed when the block raises. A streaming writer (ParquetWriter, a token shard) must be closed inside the block.
    A writer whose file outlives one block calls `commit()` or `discard()` itself instead.

    Temporary files of the same name left by processes that no longer run (a killed run) are removed first; one
    process at a time writes a given path."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        _remove_leftovers(self.path)
        _remove(self.tmp)  # left by a killed process whose pid this one reuses (a restarted container)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> None:
        try:
            self._replace()
        finally:
            self.discard()  # a failed rename leaves no temporary file either

    def discard(self) -> None:
        _remove(self.tmp)

    def _replace(self) -> None:
        os.replace(self.tmp, self.path)


class atomic_folder(atomic_output):
    """`with atomic_folder(path) as tmp:` fill the (new, empty) folder `tmp`; it replaces the folder `path` when the
    block ends without error (the old folder is renamed aside first, so a reader sees the old folder, no folder or
    the new one, never a mix) and is removed when the block raises."""

    def __enter__(self) -> Path:
        self.tmp.mkdir(parents=True)
        return self.tmp

    def _replace(self) -> None:
        if not self.path.exists():
            os.replace(self.tmp, self.path)
            return
        old = temp_path(self.path.with_name(self.path.name + ".old"))  # .<name>.old.<pid>.tmp
        _remove(old)
        os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_leftovers(path: Path) -> None:
    """Remove `.<name>.<pid>.tmp` (and a folder set aside, `.<name>.old.<pid>.tmp`) beside `path` for each pid that
    is not a running process: what a killed write of `path` left."""
    prefix = f".{path.name}."
    for entry in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid = entry.name[len(prefix) : -len(".tmp")].removeprefix("old.")
        if pid.isdigit() and not _running(int(pid)):
            _remove(entry)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary path)` and rename the result to `path`."""
    with atomic_output(path) as tmp:
        write(tmp)


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

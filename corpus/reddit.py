"""Read and write Reddit submission dumps in the Pushshift format (one JSON object per line).

The compression follows the file suffix: `.zst` (zstandard, long windows as the real dumps need), `.bz2`, `.xz`,
`.gz`; any other suffix (`.json`, `.ndjson`, none) is plain NDJSON. Reading streams line by line in constant memory.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import logging
import lzma
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import zstandard

log = logging.getLogger(__name__)

# The 2019+ Pushshift dumps were written with `zstd --long=31`; the default decoder limit (2**27) rejects them.
ZSTD_MAX_WINDOW = 2**31
_READ_BUFFER = 1 << 20

MalformedHandler = Callable[[Path, int, str], None]


def _log_malformed(path: Path, line_no: int, reason: str) -> None:
    log.warning("%s:%d: skipped malformed line (%s)", path, line_no, reason)


@contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    suffix = path.suffix.lower()
    raw = open(path, "rb")  # noqa: SIM115 - closed below, whatever the decoder
    try:
        if suffix == ".zst":
            reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(
                raw, read_across_frames=True)
            yield io.BufferedReader(reader, buffer_size=_READ_BUFFER)  # type: ignore[arg-type]
        elif suffix == ".bz2":
            yield bz2.open(raw, "rb")
        elif suffix == ".xz":
            yield lzma.open(raw, "rb")
        elif suffix == ".gz":
            yield gzip.open(raw, "rb")
        else:
            yield io.BufferedReader(raw, buffer_size=_READ_BUFFER)
    finally:
        raw.close()


def _created_utc(value: object) -> int | None:
    """Pushshift stores created_utc as int, float or string depending on the year; normalize to int seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("created_utc is a boolean")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        return int(float(value))
    raise ValueError(f"created_utc has type {type(value).__name__}")


def iter_submissions(path: str | Path, on_malformed: MalformedHandler | None = None) -> Iterator[dict]:
    """Yield the submissions of one dump, with `created_utc` normalized to int (None when absent).

    A line that is not a JSON object (or has an unusable created_utc) is skipped and reported to `on_malformed`
    (default: a warning with file and line number). A missing file raises FileNotFoundError; a file that cannot be
    decompressed raises ValueError naming the file and the line reached.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Reddit dump not found: {path}")
    report = on_malformed or _log_malformed
    line_no = 0
    try:
        with _open_binary(path) as stream:
            for line_no, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"a JSON {type(record).__name__}, not an object")
                    record["created_utc"] = _created_utc(record.get("created_utc"))
                except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    report(path, line_no, str(error)[:200])
                    continue
                yield record
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as error:
        raise ValueError(f"cannot read Reddit dump {path} after line {line_no}: {error}") from error


@contextmanager
def _create_binary(path: Path, suffix: str) -> Iterator[IO[bytes]]:
    suffix = suffix.lower()
    with open(path, "wb") as raw:
        if suffix == ".zst":
            with zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False) as writer:
                yield writer  # type: ignore[misc]
        elif suffix == ".bz2":
            with bz2.open(raw, "wb") as writer:
                yield writer
        elif suffix == ".xz":
            with lzma.open(raw, "wb") as writer:
                yield writer
        elif suffix == ".gz":
            with gzip.open(raw, "wb") as writer:
                yield writer
        else:
            yield raw
        raw.flush()
        os.fsync(raw.fileno())


def write_submissions(path: str | Path, records: Iterable[dict]) -> Path:
    """Write records as a dump in the format the suffix implies (`RS_2017-06.zst` gives a real zstd frame).

    Written to a temporary name and renamed when complete, so a reader never sees half a dump.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with _create_binary(tmp, path.suffix) as stream:
            for record in records:
                stream.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

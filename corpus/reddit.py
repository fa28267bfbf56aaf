"""Read and write Reddit submission dumps in the Pushshift format (one JSON object per line).

The compression follows the file suffix: `.zst` (zstandard, long windows as the real dumps need), `.bz2`, `.xz`,
`.gz`; any other suffix (`.json`, `.ndjson`, none) is plain NDJSON. Reading streams line by line in constant memory.
A compressed dump that ends inside a frame (a cut download or copy) is an error, never a shorter dump.
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
from typing import IO, Any

import zstandard

from corpus.files import atomic_output

log = logging.getLogger(__name__)

# The 2019+ Pushshift dumps were written with `zstd --long=31`; the default decoder limit (2**27) rejects them.
ZSTD_MAX_WINDOW = 2**31
_READ_BUFFER = 1 << 20
_ZSTD_INPUT_CHUNK = 1 << 16  # compressed bytes decoded at once (about 1-3 MiB of JSON)

MalformedHandler = Callable[[Path, int, str], None]
# A Pushshift line is at most a few hundred KB (a 40,000-character self-text, escaped). A longer one is no submission
# (a file of another kind, or one without line breaks): it is skipped in pieces of this size, never held whole.
MAX_LINE_BYTES = 16 << 20


class DumpReadError(ValueError):
    """A dump that cannot be read to its end: truncated or corrupt."""


def _log_malformed(path: Path, line_no: int, reason: str) -> None:
    log.warning("%s:%d: skipped malformed line (%s)", path, line_no, reason)


class _ZstdFrames(io.RawIOBase):
    """The zstd frames of a file, one after the other, as one stream; EOFError when the file ends inside a frame.

    zstandard's stream_reader and read_to_iter end quietly at the end of the input, complete frame or not, so a dump
    cut in half would read as a shorter one; a decompressobj per frame says whether its frame ended (`eof`).
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._frame: Any = None  # the decompressor of the frame being read; None between frames
        self._pending = memoryview(b"")
        self._compressed_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if not self._decode_more():
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _decode_more(self) -> bool:
        chunk = self._raw.read(_ZSTD_INPUT_CHUNK)
        if not chunk:
            if self._frame is not None:
                raise EOFError(f"the file ends inside a zstd frame after {self._compressed_read:,} compressed bytes")
            return False
        self._compressed_read += len(chunk)
        out = []
        while chunk:
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
            out.append(self._frame.decompress(chunk))
            if self._frame.eof:  # the rest of the chunk starts the next frame
                chunk, self._frame = self._frame.unused_data, None
            else:
                chunk = b""
        self._pending = memoryview(b"".join(out))
        return True


@contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    suffix = path.suffix.lower()
    raw = open(path, "rb")  # noqa: SIM115 - closed below, whatever the decoder
    try:
        if suffix == ".zst":
            yield io.BufferedReader(_ZstdFrames(raw), buffer_size=_READ_BUFFER)
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


MAX_CREATED_UTC = 2**40  # seconds: far past any real time, and well inside the int64 the links are stored in


def _created_utc(value: object) -> int | None:
    """Pushshift stores created_utc as int, float or string depending on the year; normalize to int seconds. A value
    that is no time since 1970 (negative, NaN, infinite, past `MAX_CREATED_UTC`) raises ValueError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("created_utc is a boolean")
    if isinstance(value, str):
        seconds: float = float(value)
    elif isinstance(value, (int, float)):
        seconds = value
    else:
        raise ValueError(f"created_utc has type {type(value).__name__}")
    if not 0 <= seconds < MAX_CREATED_UTC:  # also NaN
        raise ValueError(f"created_utc {value!r} is out of range")
    return int(seconds)


def _lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The stream's lines, None for one longer than `limit` bytes (read through in pieces, never held whole)."""
    while line := stream.readline(limit + 1):
        if len(line) > limit and not line.endswith(b"\n"):
            while (piece := stream.readline(limit)) and not piece.endswith(b"\n"):
                pass
            yield None
        else:
            yield line


def iter_submissions(path: str | Path, on_malformed: MalformedHandler | None = None) -> Iterator[dict]:
    """Yield the submissions of one dump, with `created_utc` normalized to int (None when absent).

    A line that is not a JSON object (or has an unusable created_utc, or is longer than `MAX_LINE_BYTES`) is skipped
    and reported to `on_malformed` (default: a warning with file and line number). A missing file raises
    FileNotFoundError; a file that is truncated or cannot be decompressed raises DumpReadError (a ValueError) naming
    the file and the line reached.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Reddit dump not found: {path}")
    report = on_malformed or _log_malformed
    line_no = 0
    try:
        with _open_binary(path) as stream:
            for line_no, line in enumerate(_lines(stream, MAX_LINE_BYTES), start=1):
                if line is None:
                    report(path, line_no, f"a line longer than {MAX_LINE_BYTES} bytes, not a submission")
                    continue
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
    except EOFError as error:  # what gzip, bz2, lzma and _ZstdFrames raise at the end of a file cut mid-stream
        raise DumpReadError(
            f"Reddit dump {path} is truncated: it ends inside its compressed data, after line "
            f"{line_no} ({error}). Fetch or copy the dump again."
        ) from error
    except (OSError, lzma.LZMAError, zstandard.ZstdError) as error:
        raise DumpReadError(f"cannot read Reddit dump {path} after line {line_no}: {error}") from error


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
    with atomic_output(path) as tmp, _create_binary(tmp, path.suffix) as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return path

"""The token-shard file format: llm.c's `dev/data` layout, with one reader and one writer.

A header of 256 little-endian int32 (header[0] = 20240520 magic, header[1] = version, header[2] = token count), then
the tokens:
  version 1: uint16 tokens, llm.c's format, used whenever every id fits (< 65536);
  version 2: uint32 tokens, our extension for larger vocabularies (llm.c reads only version 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from corpus.files import atomic_output

MAGIC = 20240520
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPES = {1: np.dtype("<u2"), 2: np.dtype("<u4")}


def version_for(max_id: int) -> int:
    """The narrowest version whose token type holds ids up to max_id."""
    return 1 if max_id < 2**16 else 2


def read_token_shard(path: str | Path) -> np.memmap:
    """Memory-map the tokens of one shard (uint16 for version 1, uint32 for version 2), after checking its header."""
    path = Path(path)
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if len(header) < HEADER_INTS or header[0] != MAGIC:
        raise ValueError(f"{path}: not a token shard (no {HEADER_INTS}-int32 header with magic {MAGIC})")
    version, count = int(header[1]), int(header[2])
    if version not in TOKEN_DTYPES:
        raise ValueError(f"{path}: unknown token shard version {version} (known: {sorted(TOKEN_DTYPES)})")
    dtype = TOKEN_DTYPES[version]
    expected = HEADER_BYTES + count * dtype.itemsize
    if path.stat().st_size != expected:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, header promises {expected} ({count} tokens)")
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(count,))


class TokenShardWriter:
    """One open shard: header placeholder, tokens appended, header filled in, then renamed into place (so a reader
    never sees a half-written shard under the final name). `discard()` removes an unfinished one."""

    def __init__(self, path: Path, version: int) -> None:
        if version not in TOKEN_DTYPES:
            raise ValueError(f"{path}: unknown token shard version {version} (known: {sorted(TOKEN_DTYPES)})")
        self.path, self.version, self.tokens, self.documents = Path(path), version, 0, 0
        self.output = atomic_output(self.path)
        self.file: BinaryIO = open(self.output.tmp, "wb")  # noqa: SIM115 - closed in finish or discard
        self.file.write(bytes(HEADER_BYTES))

    def write(self, tokens: np.ndarray, eot: int | None = None) -> None:
        """Append tokens; when eot is given, count the documents (one <|endoftext|> before each)."""
        self.file.write(np.asarray(tokens).astype(TOKEN_DTYPES[self.version], copy=False).tobytes())
        self.tokens += len(tokens)
        if eot is not None:
            self.documents += int(np.count_nonzero(np.asarray(tokens) == eot))

    def finish(self) -> None:
        header = np.zeros(HEADER_INTS, dtype="<i4")
        header[:3] = (MAGIC, self.version, self.tokens)
        self.file.seek(0)
        self.file.write(header.tobytes())
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.output.commit()

    def discard(self) -> None:
        self.file.close()
        self.output.discard()


def write_token_shard(path: str | Path, tokens: np.ndarray) -> Path:
    """Write a whole array as one shard (uint16 when every id fits, else uint32)."""
    tokens = np.asarray(tokens)
    writer = TokenShardWriter(Path(path), version_for(int(tokens.max()) if tokens.size else 0))
    try:
        writer.write(tokens)
        writer.finish()
    except BaseException:
        writer.discard()
        raise
    return writer.path

"""Where each benchmark's files live and where they are published; nothing is ever downloaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def require_file(path: str | Path, what: str, published: str) -> Path:
    """The path if it is a readable file, else a FileNotFoundError naming the file and where to get it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{what}: expected the file {path} (published at {published}); "
            "nothing is downloaded at run time, put the file there or pass its path"
        )
    return path


def require_dir(path: str | Path, what: str, published: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what}: expected the folder {path} (published at {published}); "
            "nothing is downloaded at run time, put the files there or pass the path"
        )
    return path


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every non-blank line of a JSON-lines file. A line that is not a JSON object with the
    `required` keys raises ValueError naming the file and the line (json's own error counts within the line only)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                where = f"{path}:{line_no}"
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                yield line_no, _record(value, required, where)


def read_json(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON file holding one object with the `required` keys; a ValueError names the file, line and column."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return _record(value, required, str(path))


def _record(value: Any, required: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise ValueError(f"{where}: the record has no {', '.join(map(repr, missing))} field")
    return value

"""Where each benchmark's files live and where they are published; nothing is ever downloaded."""
from __future__ import annotations

from pathlib import Path


def require_file(path: str | Path, what: str, published: str) -> Path:
    """The path if it is a readable file, else a FileNotFoundError naming the file and where to get it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: expected the file {path} (published at {published}); "
                                "nothing is downloaded at run time, put the file there or pass its path")
    return path


def require_dir(path: str | Path, what: str, published: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: expected the folder {path} (published at {published}); "
                                "nothing is downloaded at run time, put the files there or pass the path")
    return path

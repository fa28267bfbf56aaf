"""One build at a time in an output folder: an exclusive `fcntl.flock` on `<out_dir>/.build.lock`.

The lock is the kernel's, not the file's existence: it goes with the process that holds it (SIGKILL included), so a
lock file left by a killed build never blocks the next one. The file only tells a refused build who holds the lock
(PID, host, start time). `out_dir` is checked first (created if missing; a file, or a folder that cannot be written,
is an error naming it), so a bad folder fails before any work.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".build.lock"

# The lock file descriptor of each folder this process holds.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


class OutDirError(ValueError):
    """`out_dir` is not a folder this build can write."""


class BuildLockedError(RuntimeError):
    """Another build holds `out_dir`."""


def _close_held_in_child() -> None:
    # A forked child (an extraction worker) must not keep the lock alive after its parent is gone.
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def prepare_out_dir(out_dir: str | Path) -> Path:
    """`out_dir` resolved and created; OutDirError naming it when it is a file or cannot be created or written."""
    path = Path(out_dir).resolve()
    if path.exists() and not path.is_dir():
        raise OutDirError(f"out_dir {path} is a file, not a folder: give a folder path (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        a_file = next((parent for parent in reversed(path.parents) if parent.is_file()), None)
        why = f"{a_file} is a file, not a folder" if a_file else f"{error.strerror}; choose a folder on a writable disk"
        raise OutDirError(f"out_dir {path} cannot be created: {why}") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutDirError(
            f"out_dir {path} is not writable by this user (uid {os.getuid()}): choose another folder "
            f"or fix its permissions"
        )
    return path


def _holder_text(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder.get("pid"):
        return "a build that is just starting (no holder recorded yet)"
    text = f"PID {holder['pid']} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
    if holder.get("host") == socket.gethostname() and not _alive(holder["pid"]):
        text += " (that process has exited: a process it started still holds the lock)"
    return text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def build_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold `out_dir` for one build: yields the resolved folder; BuildLockedError at once when another build holds
    it (another process, or another build in this one), naming the folder and the holder."""
    path = prepare_out_dir(out_dir)
    lock_path = path / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise OutDirError(
            f"out_dir {path} is not writable (cannot create {lock_path}: {error.strerror}): choose "
            f"another folder or fix its permissions"
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise BuildLockedError(
            f"out_dir {path} is in use by another build: {_holder_text(lock_path)}. Wait for that build to end (or "
            f"stop it), or build into another out_dir. The lock ({lock_path}) goes with its holder's process, so "
            f"there is nothing to delete."
        ) from None
    with _held_guard:
        _held[path] = fd
    try:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield path
    finally:
        with _held_guard:
            del _held[path]
        os.ftruncate(fd, 0)  # the next build shows no stale holder
        os.close(fd)  # releases the flock

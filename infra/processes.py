"""Start background processes in their own process group, remember them by PID file, stop them by PID.

A PID file holds the PID and the process's start time, so a stale file whose PID the kernel has since given to
another process is recognised and never acted on.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def spawn(cmd: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    """Start `cmd` detached from our terminal, in a new session (its own process group), logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def write_pid_file(path: Path, pid: int) -> None:
    proc = psutil.Process(pid)
    record = {"pid": pid, "create_time": proc.create_time(), "cmdline": proc.cmdline()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def read_pid_file(path: Path) -> psutil.Process | None:
    """The live process a PID file names, or None when the file is missing, unreadable or stale."""
    try:
        record = json.loads(path.read_text())
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record["create_time"])) > 0.01:
            return None  # the PID was reused by an unrelated process
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (FileNotFoundError, ValueError, KeyError, TypeError, psutil.NoSuchProcess):
        return None


def stop_tree(pid: int, timeout: float = 10.0) -> list[int]:
    """Stop a process, its process group and every descendant: SIGTERM, then SIGKILL after `timeout` seconds.

    Descendants are collected before anything is signalled, because children that start their own session (Prefect
    runs each flow in a new process group) would otherwise be orphaned and missed. Returns the PIDs signalled.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        log.warning("pid %d did not stop on SIGTERM within %.0f s; killing it", proc.pid, timeout)
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    return [proc.pid for proc in procs]


def stop_pid_file(path: Path, timeout: float = 10.0) -> list[int]:
    """Stop the process tree a PID file names (if it still runs) and remove the file. Safe to call twice."""
    proc = read_pid_file(path)
    stopped = stop_tree(proc.pid, timeout) if proc else []
    path.unlink(missing_ok=True)
    return stopped


def marked_processes(name: str, value: str) -> list[psutil.Process]:
    """Every live process (of this user) whose environment has `name`=`value`, except this process."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(name) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def tree(proc: psutil.Process) -> set[int]:
    """The PIDs of a process and all its descendants (empty when it is gone)."""
    try:
        return {proc.pid, *(child.pid for child in proc.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()

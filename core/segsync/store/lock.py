"""One writer at a time: an advisory lock file beside the store.

A second ``segsync sync`` on the same store fails at once (non-blocking lock) with the holder's
pid, instead of waiting or corrupting anything. The OS releases the lock when the holder exits,
so a crashed run never leaves a stale lock behind: a run still marked ``running`` while nobody
holds the lock has crashed (:func:`writer_active`). Read commands cannot open the store while a
writer has it (DuckDB's rule); they ask :func:`writer_active` first, and may
:func:`wait_for_writer`.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

POLL_SECONDS = 0.2


class StoreLocked(RuntimeError):
    pass


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def writer_active(db_path: Path) -> bool:
    """Whether a process (this one included) holds the store's writer lock right now."""
    try:
        handle = open(lock_path(db_path), encoding="utf-8")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def writer_pid(db_path: Path) -> str:
    try:
        return lock_path(db_path).read_text(encoding="utf-8").strip() or "unknown"
    except FileNotFoundError:
        return "unknown"


def wait_for_writer(db_path: Path, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the writer lock to be free; True when it is."""
    deadline = time.monotonic() + timeout
    while writer_active(db_path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


class WriterLock:
    def __init__(self, db_path: Path) -> None:
        self.path = lock_path(db_path)
        self._handle = None

    def acquire(self) -> None:
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLocked(
                f"the store {self.path.with_suffix('')} is in use by another segsync process "
                f"(pid {holder}); wait for it to finish, or stop it, and try again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

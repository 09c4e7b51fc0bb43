"""What a running sync publishes beside the store, for read commands that cannot open it.

DuckDB lets one process open a database file for writing or any number open it read-only, never
both at once; so while `segsync sync` writes the store, `segsync runs` reads this sidecar
(``<store>.status.json``) instead: who holds the store (pid, run id, start, phase, progress) and
the run history as it was when the run started. The file is replaced atomically (write, then
rename), so a reader never sees half of it, and it is removed when the run's store closes. A
file left behind by a killed run is ignored: it counts only while its writer holds the store's
writer lock (:mod:`.lock`).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segsync.store.lock import writer_active, writer_pid

# Progress is republished at most this often; phase changes are published at once.
MIN_INTERVAL = 0.5


def status_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".status.json")


class RunStatusFile:
    """The sidecar of one running sync; ``progress`` is a :class:`~segsync.progress.Reporter`
    listener."""

    def __init__(self, db_path: Path, *, run_id: int, history: list[dict[str, Any]]) -> None:
        self.path = status_path(db_path)
        self._doc: dict[str, Any] = {
            "pid": os.getpid(),
            "run_id": run_id,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "phase": "starting",
            "done": None,
            "total": None,
            "history": history,
        }
        self._published = 0.0
        self._write()

    def progress(self, phase: str, done: int, total: int | None) -> None:
        changed = phase != self._doc["phase"]
        self._doc.update(phase=phase, done=done, total=total)
        if changed or done == total or time.monotonic() - self._published >= MIN_INTERVAL:
            self._write()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        self._doc["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        partial = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(self._doc, default=str), encoding="utf-8")
        os.replace(partial, self.path)
        self._published = time.monotonic()


def read_status(db_path: Path) -> dict[str, Any] | None:
    """The running sync's published status, or None (no file, or one being replaced)."""
    try:
        return json.loads(status_path(db_path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def running_status(db_path: Path) -> dict[str, Any] | None:
    """The status of the sync holding the store right now; None when no sync holds it."""
    status = read_status(db_path)
    if status is None or not writer_active(db_path) or str(status.get("pid")) != writer_pid(db_path):
        return None
    return status


def describe(status: dict[str, Any] | None) -> str:
    """``pid 123, run 7, started 2025-…, phase push mc (1,500/4,000)`` for messages."""
    if status is None:
        return "no status published yet"
    progress = ""
    if status.get("done") is not None:
        total = status.get("total")
        progress = f" ({status['done']:,}/{total:,})" if total else f" ({status['done']:,} done)"
    return (f"pid {status.get('pid')}, run {status.get('run_id')}, started {status.get('started_at')}, "
            f"phase {status.get('phase')}{progress}")

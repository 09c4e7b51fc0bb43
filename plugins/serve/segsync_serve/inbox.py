"""The durable inbox: webhook records kept until a run has applied them.

A webhook is answered 200 only once its records are committed here (SQLite, synchronous=FULL),
so a crash, a restart or a sync holding the store (DuckDB admits one writing process) loses
nothing: the worker applies what is pending as soon as it can, and removes it only after the run
that ingested it finished. Applying the same records twice is harmless (the store deduplicates
them), so a crash between the run and the removal costs a repeat, never a loss.

It lives beside the store (``<store>.inbox.sqlite``) and holds personal data only until applied.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segsync import Batch, Stream

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,      -- time.time() when the webhook arrived
    connection  TEXT NOT NULL,
    batches     TEXT NOT NULL,      -- JSON: [{stream, rows, record_ids}]
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
)
"""


@dataclass(frozen=True)
class Pending:
    id: int
    received_at: float
    connection: str
    batches: list[Batch]
    attempts: int


class Inbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    @classmethod
    def beside(cls, store_path: Path) -> Inbox:
        return cls(store_path.with_name(store_path.name + ".inbox.sqlite"))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, connection: str, batches: Sequence[Batch], received_at: float | None = None) -> int:
        """Commit one delivery's batches; its id."""
        document = json.dumps([{"stream": b.stream.value, "rows": list(b.rows or ()),
                                "record_ids": list(b.record_ids or ())} for b in batches])
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO inbox (received_at, connection, batches) VALUES (?, ?, ?)",
                (received_at if received_at is not None else time.time(), connection, document))
            return int(cursor.lastrowid)

    def pending(self, max_attempts: int, limit: int = 1000) -> list[Pending]:
        """The oldest deliveries not applied yet that have failed fewer than ``max_attempts`` times."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received_at, connection, batches, attempts FROM inbox WHERE attempts < ? "
                "ORDER BY id LIMIT ?", (max_attempts, limit)).fetchall()
        return [Pending(i, at, connection, [_batch(b) for b in json.loads(doc)], attempts)
                for i, at, connection, doc, attempts in rows]

    def done(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM inbox WHERE id = ?", [(i,) for i in ids])

    def failed(self, ids: Sequence[int], error: str) -> None:
        with self._lock:
            self._db.executemany("UPDATE inbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                                 [(error[:2000], i) for i in ids])

    def counts(self, max_attempts: int) -> tuple[int, int]:
        """(deliveries waiting, deliveries given up after ``max_attempts`` failed runs)."""
        with self._lock:
            waiting, dead = self._db.execute(
                "SELECT count(*) FILTER (WHERE attempts < ?), count(*) FILTER (WHERE attempts >= ?) FROM inbox",
                (max_attempts, max_attempts)).fetchone()
        return int(waiting), int(dead)

    def oldest(self, max_attempts: int) -> float | None:
        with self._lock:
            (at,) = self._db.execute("SELECT min(received_at) FROM inbox WHERE attempts < ?",
                                     (max_attempts,)).fetchone()
        return at


def _batch(document: dict) -> Batch:
    return Batch(Stream(document["stream"]), None, document["rows"], record_ids=document["record_ids"] or None)

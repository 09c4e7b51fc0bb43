"""Opening, migrating and querying the store; bulk ingestion lives in :mod:`.ingest`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from segsync.store.lock import StoreLocked, WriterLock
from segsync.store.migrations import MIGRATIONS, Migration


class Store:
    """A DuckDB database holding segsync's tables.

    ``path`` is a file (created when missing) or ``":memory:"``. Opened for writing, it takes
    the writer lock and applies pending migrations; ``read_only=True`` never writes.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> None:
        self.path = path if path == ":memory:" else Path(path)
        self.read_only = read_only
        self._lock: WriterLock | None = None
        if isinstance(self.path, Path):
            if read_only and not self.path.exists():
                raise FileNotFoundError(
                    f"no store at {self.path}; run `segsync sync` (or `segsync demo`) first"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not read_only:
                self._lock = WriterLock(self.path)
                self._lock.acquire()
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            self.close()
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"the store {self.path} is in use by another process: {exc}"
                ) from None
            raise
        # Timestamps without an offset never reach the store (ingestion rejects them), but
        # DuckDB renders and truncates TIMESTAMPTZ in the session zone: make it UTC everywhere.
        self.con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            self.migrate(migrations)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None  # type: ignore[assignment]
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        """The first column of the first row (None when no row)."""
        # fetchall, not fetchone: DuckDB keeps a half-read result open on the connection.
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    # -- schema ------------------------------------------------------------------------------

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
        """Apply pending migrations in order; return the versions applied."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
        )
        done = {r[0] for r in self.con.execute("SELECT version FROM schema_migrations").fetchall()}
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            with self.transaction():
                for statement in migration.statements:
                    self.con.execute(statement)
                self.con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, now())",
                    [migration.version, migration.description],
                )
            applied.append(migration.version)
        return applied

    def schema_version(self) -> int:
        return self.scalar("SELECT coalesce(max(version), 0) FROM schema_migrations")

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, connection: str, stream: str) -> Any | None:
        rows = self.con.execute(
            "SELECT cursor FROM cursors WHERE connection = ? AND stream = ?", [connection, stream]
        ).fetchall()
        return json.loads(rows[0][0]) if rows else None

    def set_cursor(self, connection: str, stream: str, cursor: Any, run_id: int | None) -> None:
        self.con.execute(
            """
            INSERT INTO cursors VALUES (?, ?, ?, now(), ?)
            ON CONFLICT (connection, stream) DO UPDATE SET
                cursor = EXCLUDED.cursor, updated_at = EXCLUDED.updated_at, run_id = EXCLUDED.run_id
            """,
            [connection, stream, json.dumps(cursor, default=str), run_id],
        )

    def clear_cursors(self, connection: str) -> None:
        self.con.execute("DELETE FROM cursors WHERE connection = ?", [connection])

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, as_of: datetime, options: dict[str, Any]) -> int:
        # We hold the writer lock, so a run still marked running died without finishing.
        self.con.execute(
            "UPDATE runs SET status = 'crashed' WHERE status = 'running' AND finished_at IS NULL"
        )
        return int(
            self.scalar(
                "INSERT INTO runs (started_at, status, as_of, options) "
                "VALUES (now(), 'running', ?, ?) RETURNING id",
                [as_of, json.dumps(options, default=str)],
            )
        )

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any]) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at = now(), status = ?, counts = ? WHERE id = ?",
            [status, json.dumps(counts, default=str), run_id],
        )

    def record_destination(
        self,
        run_id: int,
        destination: str,
        status: str,
        write_calls: int,
        written: int,
        rejected: int,
        retrying: int,
        error: str | None,
    ) -> None:
        self.con.execute(
            """
            INSERT INTO run_destinations VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (run_id, destination) DO UPDATE SET status = EXCLUDED.status,
                write_calls = EXCLUDED.write_calls, records_written = EXCLUDED.records_written,
                records_rejected = EXCLUDED.records_rejected,
                records_retrying = EXCLUDED.records_retrying, error = EXCLUDED.error
            """,
            [run_id, destination, status, write_calls, written, rejected, retrying, error],
        )

    def record_error(
        self,
        run_id: int | None,
        connection: str,
        phase: str,
        record: str,
        field: str | None,
        reason: str,
        retryable: bool = False,
    ) -> None:
        self.con.execute(
            "INSERT INTO record_errors VALUES (?, ?, ?, ?, ?, ?, ?, now())",
            [run_id, connection, phase, record, field, reason, retryable],
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Run history, newest first, each with its destinations."""
        rows = self.con.execute(
            "SELECT id, started_at, finished_at, status, as_of, options, counts FROM runs "
            "ORDER BY id DESC LIMIT ?",
            [limit],
        ).fetchall()
        dests = self.con.execute(
            "SELECT run_id, destination, status, write_calls, records_written, records_rejected, "
            "records_retrying, error FROM run_destinations WHERE run_id >= ? ORDER BY destination",
            [rows[-1][0] if rows else 0],
        ).fetchall()
        by_run: dict[int, list[dict[str, Any]]] = {}
        for d in dests:
            by_run.setdefault(d[0], []).append(
                {
                    "destination": d[1],
                    "status": d[2],
                    "write_calls": d[3],
                    "records_written": d[4],
                    "records_rejected": d[5],
                    "records_retrying": d[6],
                    "error": d[7],
                }
            )
        return [
            {
                "id": r[0],
                "started_at": r[1].isoformat(),
                "finished_at": r[2].isoformat() if r[2] else None,
                "status": r[3],
                "as_of": r[4].isoformat(),
                "options": json.loads(r[5]),
                "counts": json.loads(r[6]),
                "destinations": by_run.get(r[0], []),
            }
            for r in rows
        ]

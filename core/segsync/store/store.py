"""Opening, migrating and querying the store; bulk ingestion lives in :mod:`.ingest`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from segsync.redaction import redact
from segsync.store.lock import StoreLocked, WriterLock, wait_for_writer, writer_active, writer_pid
from segsync.statuses import PartStatus, RunStatus
from segsync.store.status import RunStatusFile, describe, read_status
from segsync.store.migrations import MIGRATIONS, Migration
from segsync.store.sql import identifier, literal


class StoreError(RuntimeError):
    """The store file cannot be opened: not a DuckDB database, truncated, unreadable."""


class StoreOutdated(StoreError):
    """Opened read-only, the store has migrations pending that only a writer can apply."""


class Store:
    """A DuckDB database holding segsync's tables.

    ``path`` is a file (created when missing) or ``":memory:"``. Opened for writing, it takes
    the writer lock and applies pending migrations; ``read_only=True`` never writes, and is
    refused with who holds the store while a writer has it (DuckDB admits one writing process or
    many readers, never both), after waiting up to ``reader_wait`` seconds (``segsync --wait``).
    """

    reader_wait: ClassVar[float] = 0.0
    # The sidecar of the run this store is writing (see status.py); None outside a sync.
    status: RunStatusFile | None = None

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        migrations: tuple[Migration, ...] = MIGRATIONS,
        memory_limit: str | None = None,
    ) -> None:
        self.path = path if path == ":memory:" else Path(path)
        self.read_only = read_only
        self.memory_limit = memory_limit  # DuckDB's memory_limit; None: DuckDB's default
        self._lock: WriterLock | None = None
        if isinstance(self.path, Path):
            if read_only and not self.path.exists():
                raise FileNotFoundError(
                    f"no store at {self.path}; run `segsync sync` (or `segsync demo`) first"
                )
            if read_only and not wait_for_writer(self.path, self.reader_wait):
                raise StoreLocked(_busy_message(self.path))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not read_only:
                    self._lock = WriterLock(self.path)
                    self._lock.acquire()
            except OSError as exc:
                raise StoreError(f"the store {self.path} cannot be opened: {exc}") from None
        self._connect()
        if read_only:
            self._refuse_outdated(migrations)
        else:
            self.migrate(migrations)
            if self.rewrite_pending():
                # An erasure committed its deletes but the process died before the file was
                # rewritten: the freed blocks may still hold the address.
                self.rewrite()

    def _connect(self) -> None:
        try:
            self.con = duckdb.connect(str(self.path), read_only=self.read_only)
        except duckdb.Error as exc:
            self.close()
            if isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower():
                raise StoreLocked(
                    f"the store {self.path} is in use by another process: {exc}"
                ) from None
            raise StoreError(
                f"the store {self.path} cannot be opened as a DuckDB database ({exc}); "
                "point [store] path at another file, or move this one away"
            ) from None
        # Timestamps without an offset never reach the store (ingestion rejects them), but
        # DuckDB renders and truncates TIMESTAMPTZ in the session zone: make it UTC everywhere.
        self.con.execute("SET TimeZone = 'UTC'")
        if self.memory_limit is not None:
            # Past it DuckDB evicts cached blocks and spills to disk instead of growing.
            self.con.execute(f"SET memory_limit = {literal(self.memory_limit)}")

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None  # type: ignore[assignment]
        if self.status is not None:
            self.status.remove()
            self.status = None
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

    # -- rewriting (erasure) -----------------------------------------------------------------
    #
    # DuckDB never overwrites deleted rows or freed blocks (CHECKPOINT and VACUUM leave them),
    # so after an erasure the address could still be read from the file. rewrite() copies the
    # live data into a fresh file and puts it in place of the old one; a marker file beside the
    # store says a rewrite is owed, so a crash at any point is finished by the next writer.

    def _sibling(self, suffix: str) -> Path:
        assert isinstance(self.path, Path)
        return self.path.with_name(self.path.name + suffix)

    def rewrite_pending(self) -> bool:
        return isinstance(self.path, Path) and self._sibling(".rewrite-pending").exists()

    def require_rewrite(self) -> None:
        """Record (durably) that the file must be rewritten; call before committing a deletion
        whose bytes must not survive."""
        if not isinstance(self.path, Path):
            return
        marker = self._sibling(".rewrite-pending")
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write("deleted personal data: the store file is rewritten by the next writer\n")
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_directory(marker.parent)

    def rewrite(self) -> None:
        """Copy the database into a fresh file and atomically replace this one with it.

        Only live rows are copied, so nothing deleted before survives in the store file, its
        WAL or DuckDB's temp directory. Runs under the writer lock (held by this Store the whole
        time); the connection is reopened afterwards, so temp tables are gone. A crash leaves
        either the old or the new file in place, and the marker makes the next writer redo it.
        """
        if self.read_only or not isinstance(self.path, Path):
            raise RuntimeError("only a store opened for writing on a file can be rewritten")
        fresh = self._sibling(".rewrite")
        for leftover in (fresh, self._sibling(".rewrite.wal")):
            leftover.unlink(missing_ok=True)  # a half-written copy from a crashed rewrite
        database = self.scalar("SELECT current_database()")
        tables = [r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND NOT temporary ORDER BY table_name").fetchall()]
        # The copy renumbers rows, and incremental segment evaluation finds new events by rowid
        # (segsync.segments.incremental): the next evaluation starts over with a full one.
        self.con.execute("DELETE FROM segment_evaluation")
        self.con.execute("CHECKPOINT")
        self.con.execute(f"ATTACH {literal(str(fresh))} AS segsync_rewrite")
        try:
            self.con.execute(f"COPY FROM DATABASE {identifier(database)} TO segsync_rewrite")
            for table in tables:  # never swap in a copy that lost anything
                old, new = (self.scalar(f"SELECT count(*) FROM {identifier(db)}.main.{identifier(table)}")
                            for db in (database, "segsync_rewrite"))
                if old != new:
                    raise RuntimeError(f"rewriting the store copied {new} of {old} rows of {table}")
            self.con.execute("CHECKPOINT segsync_rewrite")
        except BaseException:
            self.con.execute("DETACH segsync_rewrite")
            fresh.unlink(missing_ok=True)
            raise
        self.con.execute("DETACH segsync_rewrite")
        self.con.close()
        self.con = None  # type: ignore[assignment]
        wal = self._sibling(".wal")
        if wal.exists() and wal.stat().st_size:
            # Replaying the old file's log onto the new file would corrupt it; keep the old one.
            self._connect()
            raise RuntimeError(f"the store's write-ahead log {wal} was not checkpointed; rewrite not done")
        wal.unlink(missing_ok=True)
        self._sibling(".rewrite.wal").unlink(missing_ok=True)
        with open(fresh, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(fresh, self.path)  # atomic: the old file's blocks go with its last link
        _fsync_directory(self.path.parent)
        shutil.rmtree(self._sibling(".tmp"), ignore_errors=True)  # DuckDB's spill files
        self._sibling(".rewrite-pending").unlink(missing_ok=True)
        _fsync_directory(self.path.parent)
        self._connect()

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

    def _refuse_outdated(self, migrations: tuple[Migration, ...]) -> None:
        # A reader cannot migrate, and this version's queries read what the pending migrations
        # add (e.g. the typed event columns): say so rather than fail on a missing column.
        latest = max((m.version for m in migrations), default=0)
        has_table = self.scalar(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND table_name = 'schema_migrations'")
        version = self.schema_version() if has_table else 0
        if version < latest:
            self.close()
            raise StoreOutdated(
                f"the store {self.path} has schema version {version}, this segsync needs "
                f"{latest}: run `segsync sync` (or any command that writes) once to upgrade it"
            )

    def schema_version(self) -> int:
        return self.scalar("SELECT coalesce(max(version), 0) FROM schema_migrations")

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, connection: str, stream: str) -> Any | None:
        rows = self.con.execute(
            "SELECT cursor FROM cursors WHERE connection = ? AND stream = ?", [connection, stream]
        ).fetchall()
        return json.loads(rows[0][0]) if rows else None

    def set_cursor(
        self, *, connection: str, stream: str, cursor: Any, run_id: int | None
    ) -> None:
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
            "UPDATE runs SET status = ? WHERE status = ? AND finished_at IS NULL",
            [RunStatus.CRASHED, RunStatus.RUNNING],
        )
        run_id = int(
            self.scalar(
                "INSERT INTO runs (started_at, status, as_of, options) "
                "VALUES (now(), ?, ?, ?) RETURNING id",
                [RunStatus.RUNNING, as_of, json.dumps(options, default=str)],
            )
        )
        if isinstance(self.path, Path):
            # For `segsync runs` while this run holds the store: the history it can no longer read.
            self.status = RunStatusFile(self.path, run_id=run_id, history=self.runs())
        return run_id

    def finish_run(self, *, run_id: int, status: RunStatus, counts: dict[str, Any]) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at = now(), status = ?, counts = ? WHERE id = ?",
            [status, redact(json.dumps(counts, default=str)), run_id],
        )

    def record_destination(
        self,
        *,
        run_id: int,
        destination: str,
        status: PartStatus,
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
            [run_id, destination, status, write_calls, written, rejected, retrying,
             None if error is None else redact(error)],
        )

    def record_error(
        self,
        *,
        run_id: int | None,
        connection: str,
        phase: str,
        record: str,
        field: str | None,
        reason: str,
        retryable: bool = False,
    ) -> None:
        """Store one record error; addresses are masked and known secrets removed first."""
        self.con.execute(
            "INSERT INTO record_errors VALUES (?, ?, ?, ?, ?, ?, ?, now())",
            [run_id, connection, phase, redact(record), field, redact(reason), retryable],
        )

    def redact_record_errors(self, run_id: int | None, connection: str) -> int:
        """Redact record errors written set-based (by ingestion) for ``run_id``/``connection``;
        call it in the transaction that wrote them, so the raw text never reaches the file."""
        rows = self.con.execute(
            "SELECT DISTINCT record, reason FROM record_errors "
            "WHERE run_id IS NOT DISTINCT FROM ? AND connection = ?",
            [run_id, connection],
        ).fetchall()
        changed = [(record, reason, redact(record), redact(reason)) for record, reason in rows
                   if (redact(record), redact(reason)) != (record, reason)]
        for record, reason, new_record, new_reason in changed:
            self.con.execute(
                "UPDATE record_errors SET record = ?, reason = ? WHERE run_id IS NOT DISTINCT FROM ? "
                "AND connection = ? AND record = ? AND reason = ?",
                [new_record, new_reason, run_id, connection, record, reason],
            )
        return len(changed)

    def runs(self, limit: int = 20, *, run_id: int | None = None) -> list[dict[str, Any]]:
        """Run history, newest first, each with its destinations (``run_id``: only that run)."""
        runs = dicts(
            self.con,
            "SELECT id, started_at, finished_at, status, as_of, options, counts FROM runs "
            "WHERE $id IS NULL OR id = $id ORDER BY id DESC LIMIT $limit",
            {"id": run_id, "limit": limit},
        )
        by_run: dict[int, list[dict[str, Any]]] = {}
        for d in dicts(
            self.con,
            "SELECT run_id, destination, status, write_calls, records_written, records_rejected, "
            "records_retrying, error FROM run_destinations WHERE run_id >= ? ORDER BY destination",
            [runs[-1]["id"] if runs else 0],
        ):
            by_run.setdefault(d.pop("run_id"), []).append(d)
        # Opened read-only, the store has no writer (see __init__): a run still marked running
        # died without finishing; the next writer marks it so too (start_run).
        orphaned = self.read_only and isinstance(self.path, Path) and not writer_active(self.path)
        for run in runs:
            run.update(
                started_at=run["started_at"].isoformat(),
                finished_at=run["finished_at"].isoformat() if run["finished_at"] else None,
                status=RunStatus.CRASHED if orphaned and run["status"] == RunStatus.RUNNING else run["status"],
                as_of=run["as_of"].isoformat(),
                options=json.loads(run["options"]),
                counts=json.loads(run["counts"]),
                destinations=by_run.get(run["id"], []),
            )
        return runs


def dicts(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """Every row of ``sql`` as a dict keyed by column name."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _busy_message(path: Path) -> str:
    status = read_status(path)
    pid = writer_pid(path)
    if status is not None and str(status.get("pid")) == pid:
        holder = f"`segsync sync` ({describe(status)})"
    else:
        holder = f"another segsync command (pid {pid})"
    return (f"the store {path} is being written by {holder}; read commands can open it only "
            "between writes (DuckDB admits one writing process or many readers, never both). "
            "Run the command again when it ends, or add --wait (e.g. `segsync --wait 600 "
            "contacts show ...`); `segsync runs` shows the running sync's progress meanwhile")

"""The embedded engine: the DuckDB store itself (the default; docs/scale.md).

Evaluation, consent and snapshots run exactly as they always have on the store's connection;
this class only lets the equivalence suite and engine-neutral code drive the store through the
same :class:`~segsync.engines.base.Engine` methods as an external engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import field_validator

from segsync.engines.base import Engine, EngineSettings
from segsync.segments.evaluate import fill_memberships, snapshot
from segsync.segments.query import SegmentQuery
from segsync.store.sql import identifier
from segsync.store.store import Store


class DuckDBSettings(EngineSettings):
    @field_validator("tables")
    @classmethod
    def _no_mapping(cls, tables: dict[str, str]) -> dict[str, str]:
        if tables:
            raise ValueError("the embedded store reads its own tables; [store.tables] needs an "
                             "external engine (postgres, spark)")
        return tables


class DuckDBEngine(Engine):
    name = "duckdb"
    dialect = "duckdb"
    description = "the embedded store: one DuckDB file beside segsync.toml, no server"
    Settings = DuckDBSettings

    def __init__(self, settings: EngineSettings, project_dir: Path, store: Store | None = None,
                 path: str | Path = ":memory:") -> None:
        super().__init__(settings, project_dir)
        self.store = store
        self._path = path
        self._owned = store is None

    def open(self) -> None:
        if self.store is None:
            self.store = Store(self._path)

    def close(self) -> None:
        if self._owned and self.store is not None:
            self.store.close()
            self.store = None

    @property
    def _con(self):
        assert self.store is not None, "open() the engine first"
        return self.store.con

    def execute(self, sql: str) -> None:
        self._con.execute(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self._con.execute(sql).fetchall()

    def table_columns(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for table, column in self.rows(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = current_database()"):
            found.setdefault(table, set()).add(column)
        return found

    def create_tables(self) -> None:
        pass  # the store's migrations create them

    def append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if rows:
            names = ", ".join(identifier(c) for c in columns)
            marks = ", ".join("?" for _ in columns)
            self._con.executemany(f"INSERT INTO {identifier(table)} ({names}) VALUES ({marks})", rows)
        return len(rows)

    def upsert(self, table: str, key: Sequence[str], columns: Sequence[str],
               rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if rows:
            names = ", ".join(identifier(c) for c in columns)
            marks = ", ".join("?" for _ in columns)
            self._con.executemany(
                f"INSERT OR REPLACE INTO {identifier(table)} ({names}) VALUES ({marks})", rows)
        return len(rows)

    def evaluate(self, segment_query: SegmentQuery) -> dict[str, int]:
        # The store's own path, unchanged: a temp table on the run's connection.
        return fill_memberships(self._con, segment_query)

    def snapshot(self, run_id: int, as_of: datetime) -> int:
        return snapshot(self._con, run_id, as_of)

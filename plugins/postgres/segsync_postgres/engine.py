"""The PostgreSQL engine: segsync's evaluation, consent rule and snapshot run in PostgreSQL.

segsync's tables live in one schema (``[store] schema``, default ``segsync``), created when
missing; ``[store.tables]`` reads the user's own tables or views instead of the canonical
contacts, events or consent ledger. Every statement is segsync's SQL rendered for PostgreSQL
(:mod:`segsync.segments.dialects`); rows go in by ``COPY`` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import psycopg
from pydantic import SecretStr
from psycopg import sql as pgsql

from segsync.engines import (
    CANONICAL_TABLES,
    POSTGRES_FUNCTIONS,
    RESULT_TABLES,
    Engine,
    EngineError,
    EngineSettings,
    EngineUnavailable,
)
from segsync.http import safe_url
from segsync_postgres.cluster import LocalCluster

# Indexes on segsync's own tables: what evaluation joins and groups on, what a snapshot is read by.
# The transfer's high-water mark (segsync.engines.transfer) reads max(run_id) of events and ledger.
INDEXES = {
    "events": ("contact_id", "run_id"),
    "consent_ledger": ("contact_key", "run_id"),
    "segment_snapshots": ("run_id",),
    "status_changes": ("contact_key",),
}
PRIMARY_KEYS = {"contacts": ("contact_key",)}
LOCAL_FOLDER = "segsync-postgres"
MEMBERSHIPS = "segment_membership"


class PostgresSettings(EngineSettings):
    """``[store]`` for ``engine = "postgres"``."""

    # postgresql://USER@HOST:PORT/DATABASE (libpq URL); no password in it: SEGSYNC_STORE_PASSWORD.
    # Not set: a local cluster in the project folder (``local_folder``), started per command.
    url: str | None = None
    password: SecretStr | None = None
    schema_name: str = "segsync"  # segsync's own tables (created when missing)
    local_folder: str = LOCAL_FOLDER
    connect_timeout: int = 10


def masked(url: str) -> str:
    """``url`` for messages: a password in it (``user:PASSWORD@`` or libpq's ``?password=``) and
    other secret query values replaced by the HTTP kit's ``safe_url``; the user name kept."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    shown = urlsplit(safe_url(urlunsplit(parts._replace(netloc=host))))
    if not at:
        return urlunsplit(shown)
    user = f"{parts.username or ''}:***" if parts.password is not None else userinfo
    return urlunsplit(shown._replace(netloc=f"{user}@{shown.netloc}"))


def has_password(url: str) -> bool:
    """A password in ``url``: in its authority or as libpq's ``password`` query parameter."""
    parts = urlsplit(url)
    return parts.password is not None or any(
        key.lower() == "password" for key, _ in parse_qsl(parts.query, keep_blank_values=True))


class PostgresEngine(Engine):
    name = "postgres"
    dialect = "postgres"
    description = "PostgreSQL (psycopg 3): evaluation, consent and snapshots in the database; COPY for ingestion"
    Settings = PostgresSettings

    def __init__(self, settings: EngineSettings, project_dir: Path) -> None:
        super().__init__(settings, project_dir)
        self.settings: PostgresSettings
        self._con: psycopg.Connection | None = None
        self._cluster: LocalCluster | None = None

    # -- connection --------------------------------------------------------------------------

    @property
    def where(self) -> str:
        if self.settings.url:
            return f"PostgreSQL at {masked(self.settings.url)}"
        where = self._cluster.directory if self._cluster else self.project_dir / self.settings.local_folder
        return f"the local PostgreSQL cluster in {where}"

    def open(self) -> None:
        url = self.settings.url
        if url is None:
            self._cluster = LocalCluster(self.project_dir / self.settings.local_folder)
            url = self._cluster.start()
        if has_password(url):
            raise EngineUnavailable(
                f"{masked(url)}: a password does not belong in [store] url; set SEGSYNC_STORE_PASSWORD")
        password = self.settings.password.get_secret_value() if self.settings.password else None
        try:
            self._con = psycopg.connect(url, password=password, autocommit=True,
                                        connect_timeout=self.settings.connect_timeout)
        except psycopg.Error as exc:
            self.close()
            raise EngineUnavailable(f"{self.where} cannot be reached: {_first_line(exc)}") from None
        schema = pgsql.Identifier(self.settings.schema_name)
        try:
            self._con.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            self._con.execute(pgsql.SQL("SET search_path TO {}, public").format(schema))
            self._con.execute("SET TimeZone TO 'UTC'")
            for statement in POSTGRES_FUNCTIONS:
                self._con.execute(statement)
            # The memberships of this connection's evaluations: a temp table (searched before
            # the schema), so a command's evaluation never replaces a running sync's.
            self._con.execute(pgsql.SQL(
                'CREATE TEMP TABLE IF NOT EXISTS {} (segment text COLLATE "C", contact_key text COLLATE "C")'
            ).format(pgsql.Identifier(MEMBERSHIPS)))
        except psycopg.Error as exc:
            self.close()
            raise EngineUnavailable(f"{self.where}: cannot use schema {self.settings.schema_name!r}: "
                                    f"{_first_line(exc)}") from None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None

    @property
    def con(self) -> psycopg.Connection:
        if self._con is None:
            raise EngineError(f"{self.where}: the engine is not open")
        return self._con

    # -- SQL ---------------------------------------------------------------------------------

    def execute(self, sql: str) -> None:
        try:
            self.con.execute(sql)  # type: ignore[arg-type]  # segsync's own SQL, rendered
        except psycopg.Error as exc:
            raise EngineError(f"{self.where}: {_first_line(exc)}") from exc

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise EngineError(f"{self.where}: {_first_line(exc)}") from exc

    def table_columns(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for table, column in self.con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = %s", [self.settings.schema_name]).fetchall():
            found.setdefault(table, set()).add(column)
        for name in self.tables.values():
            schema, _, table = name.rpartition(".")
            rows = self.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = coalesce(%s, current_schema())", [table, schema or None]).fetchall()
            if rows:
                found[name] = {r[0] for r in rows}
        return found

    def create_tables(self) -> None:
        own = {t: c for t, c in CANONICAL_TABLES.items() if t not in self.tables}
        results = {t: c for t, c in RESULT_TABLES.items() if t != MEMBERSHIPS}  # per session
        for table, columns in {**own, **results}.items():
            defs = [pgsql.SQL("{} {}{}").format(
                pgsql.Identifier(column), pgsql.SQL(kind),
                # Keys compare and sort by code point, as in DuckDB (docs/scale.md).
                pgsql.SQL(' COLLATE "C"' if kind == "text" else ""))
                for column, kind in columns.items()]
            if table in PRIMARY_KEYS:
                defs.append(pgsql.SQL("PRIMARY KEY ({})").format(
                    pgsql.SQL(", ").join(map(pgsql.Identifier, PRIMARY_KEYS[table]))))
            self.con.execute(pgsql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                pgsql.Identifier(table), pgsql.SQL(", ").join(defs)))
            for column in INDEXES.get(table, ()):
                self.con.execute(pgsql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    pgsql.Identifier(f"{table}_{column}"), pgsql.Identifier(table),
                    pgsql.Identifier(column)))

    # -- bulk writes -------------------------------------------------------------------------

    def _writable(self, table: str) -> None:
        if table in self.tables:
            raise EngineError(f"{self.where}: {table} is mapped to {self.tables[table]} "
                              "([store.tables]), which segsync reads but never writes")

    def _copy(self, cur: psycopg.Cursor, table: pgsql.Composable, columns: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> int:
        n = 0
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            table, pgsql.SQL(", ").join(map(pgsql.Identifier, columns)))
        with cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        return n

    def append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        self._writable(table)
        try:
            with self.con.transaction(), self.con.cursor() as cur:
                return self._copy(cur, pgsql.Identifier(table), columns, rows)
        except psycopg.Error as exc:
            raise EngineError(f"{self.where}: appending to {table}: {_first_line(exc)}") from exc

    def upsert(self, table: str, key: Sequence[str], columns: Sequence[str],
               rows: Iterable[Sequence[Any]]) -> int:
        self._writable(table)
        staging = pgsql.Identifier(f"_segsync_upsert_{table}")
        names = pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
        updates = pgsql.SQL(", ").join(
            pgsql.SQL("{0} = EXCLUDED.{0}").format(pgsql.Identifier(c)) for c in columns if c not in key)
        try:
            with self.con.transaction(), self.con.cursor() as cur:
                cur.execute(pgsql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
                    staging, pgsql.Identifier(table)))
                n = self._copy(cur, staging, columns, rows)
                cur.execute(pgsql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) DO UPDATE SET {}").format(
                    pgsql.Identifier(table), names, names, staging,
                    pgsql.SQL(", ").join(map(pgsql.Identifier, key)), updates))
                return n
        except psycopg.Error as exc:
            raise EngineError(f"{self.where}: writing {table}: {_first_line(exc)}") from exc


    # -- erasure -----------------------------------------------------------------------------

    def erase(self, contact_key: str) -> dict[str, int]:
        """Delete the person from every table segsync writes here in one transaction (all or
        nothing), then VACUUM the tables it touched so the dead rows are reclaimed (the bytes
        may stay in the table's free space, the WAL and backups: docs/scale.md#erasure)."""
        removed: dict[str, int] = {}
        try:
            with self.con.transaction(), self.con.cursor() as cur:
                for table in self.written_tables():
                    cur.execute(pgsql.SQL("DELETE FROM {} WHERE contact_key = %s").format(
                        pgsql.Identifier(table)), [contact_key])
                    if cur.rowcount:
                        removed[table] = cur.rowcount
            for table in removed:
                if table != MEMBERSHIPS:  # this connection's temporary table: gone on close
                    self.con.execute(pgsql.SQL("VACUUM {}").format(pgsql.Identifier(table)))
        except psycopg.Error as exc:
            raise EngineError(f"{self.where}: erasing a person: {_first_line(exc)}") from exc
        return removed


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

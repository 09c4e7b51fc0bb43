"""What an engine must do: the seam between segsync and where the data lives (docs/scale.md).

An engine runs segsync's heavy SQL where contacts, events and the consent ledger are: segment
evaluation, effective consent and the membership snapshot. What comes back is what a
destination must change (membership entries and exits) and what a command shows. Small state
(cursors, acknowledgements, rejections, run history, the suppression list and the consent
audit) stays in the embedded store; the two consent tables among it are copied to the engine
before consent is derived (:meth:`Engine.copy_state`).

An engine plugin registers its class through ``segsync_register_engines``; ``[store] engine =
"NAME"`` picks it and the other keys of ``[store]`` fill its :class:`EngineSettings` (secrets
from ``SEGSYNC_STORE_<FIELD>``, never from the file). Every SQL text an engine runs is built by
segsync as a sqlglot tree (or DuckDB text) and rendered by :meth:`Engine.render` /
:meth:`Engine.transpile`, which apply :mod:`segsync.segments.dialects`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self, TypeAlias

import duckdb
from pydantic import Field, field_validator
from sqlglot import exp

from segsync.connector import ConnectorSettings
from segsync.consent.policies import DEFAULT_CLOCK_SKEW, ConsentPolicy
from segsync.consent.rules import combined_status_sql
from segsync.engines.layout import CANONICAL_TABLES, RESULT_TABLES, USER_TABLES, missing_columns
from segsync.segments import dialects
from segsync.segments.evaluate import membership_select
from segsync.segments.functions import BuildContext
from segsync.segments.query import SegmentQuery
from segsync.store.sql import literal

DEFAULT_ENGINE = "duckdb"


# Where a read command's question is answered: the embedded store's connection, or an open
# external engine (see source_rows).
Source: TypeAlias = "duckdb.DuckDBPyConnection | Engine"


def source_rows(source: Source, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (DuckDB's SQL, values inlined as literals) on ``source``: run as is on
    the embedded store, rendered for an external engine (its dialect and table mapping)."""
    if isinstance(source, duckdb.DuckDBPyConnection):
        return source.execute(sql).fetchall()
    return source.rows(source.transpile(sql))


class EngineError(RuntimeError):
    """An engine refused or failed a statement; the message names the engine."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached (or started); the message says why and what to set."""


@dataclass
class Received:
    """What came back from an engine since it was opened, per kind (``memberships``,
    ``consent``, ``contacts``): rows counted, and what was fetched whole and why (logged)."""

    rows: dict[str, int] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int) -> None:
        self.rows[kind] = self.rows.get(kind, 0) + n


class EngineSettings(ConnectorSettings):
    """``[store]`` keys every external engine reads; an engine's ``Settings`` adds its own.

    ``tables`` maps a canonical table (contacts, events, consent_ledger) onto the user's own
    table or view (``schema.name``); segsync then only reads it.
    """

    tables: dict[str, str] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _only_user_tables(cls, tables: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(tables) - set(USER_TABLES))
        if unknown:
            raise ValueError(f"{', '.join(unknown)} cannot be mapped; only "
                             f"{', '.join(USER_TABLES)} can (the others are segsync's own)")
        return tables


class Engine(ABC):
    """Where segment evaluation, effective consent and the snapshot run.

    Subclasses set ``name`` (what ``[store] engine`` says), ``dialect`` (sqlglot's name of its
    SQL), ``Settings`` and implement the abstract methods; the others are written once, here,
    in terms of them, so every engine runs the same queries.
    """

    name: ClassVar[str]
    dialect: ClassVar[str]
    description: ClassVar[str] = ""
    Settings: ClassVar[type[EngineSettings]] = EngineSettings

    def __init__(self, settings: EngineSettings, project_dir: Path) -> None:
        self.settings = settings
        self.project_dir = project_dir
        self.received = Received()

    @property
    def tables(self) -> Mapping[str, str]:
        """Canonical table -> the user's table or view it is read from."""
        return self.settings.tables

    # -- what every engine implements --------------------------------------------------------

    @abstractmethod
    def open(self) -> None:
        """Connect (start a local engine if the settings say so); raise
        :class:`EngineUnavailable` with the reason when it cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect (and stop what :meth:`open` started)."""

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run one statement (already in the engine's dialect) and commit it."""

    @abstractmethod
    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Every row of a query in the engine's dialect."""

    @abstractmethod
    def table_columns(self) -> dict[str, set[str]]:
        """Each table or view the engine can read, as it is named in ``[store.tables]`` or
        canonically (unqualified: in segsync's schema), with its column names."""

    @abstractmethod
    def create_tables(self) -> None:
        """Create segsync's tables that are missing: the canonical ones not mapped onto the
        user's, and the result tables (:data:`segsync.engines.layout.RESULT_TABLES`)."""

    @abstractmethod
    def append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Append ``rows`` to a canonical table in bulk (COPY, a DataFrame write; never a
        statement per row); return how many. Refused for a table mapped onto the user's."""

    @abstractmethod
    def upsert(self, table: str, key: Sequence[str], columns: Sequence[str],
               rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows``, replacing the rows with the same ``key`` columns, in bulk (contacts
        are updated as well as added); return how many. Refused for a mapped table."""

    # -- written once for every engine -------------------------------------------------------

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def render(self, expr: exp.Expression) -> str:
        return dialects.render(expr, self.dialect, self.renamed_tables())

    def transpile(self, duckdb_sql: str) -> str:
        return dialects.transpile(duckdb_sql, self.dialect, self.renamed_tables())

    def renamed_tables(self) -> Mapping[str, str]:
        """Canonical table -> the name the rendered SQL reads instead: :attr:`tables`, unless
        the engine makes each mapped table readable under its canonical name (a view)."""
        return self.tables

    def replace_rows(self, table: str, select_sql: str | None) -> None:
        """Replace every row of segsync's ``table`` with those of ``select_sql`` (its columns in
        the table's order; None: no rows). DELETE then INSERT here; an engine without DELETE
        (Spark's Parquet tables) overwrites instead."""
        self.execute(f"DELETE FROM {table}")
        if select_sql is not None:
            self.execute(f"INSERT INTO {table} {select_sql}")

    def written_tables(self) -> list[str]:
        """segsync's own tables on the engine (every one has a ``contact_key`` column): the
        canonical ones not mapped onto the user's, the state and the result tables."""
        return [t for t, columns in {**CANONICAL_TABLES, **RESULT_TABLES}.items()
                if t not in self.tables and "contact_key" in columns]

    def delete_rows(self, table: str, column: str, value: Any) -> int:
        """Delete the rows of segsync's ``table`` whose ``column`` is ``value``; return how
        many. DELETE here; Spark's Parquet tables are rewritten without them instead."""
        where = exp.EQ(this=exp.column(column), expression=exp.convert(value))
        n = int(self.query(exp.select(exp.Count(this=exp.Star())).from_(table).where(where))[0][0])
        if n:
            self.execute(self.render(exp.delete(table, where=where)))
        return n

    def erase(self, contact_key: str) -> dict[str, int]:
        """Delete every row about ``contact_key`` from :meth:`written_tables` (tables mapped
        onto the user's are never written: the erasure reports them for removal by hand);
        returns rows deleted per table. PostgreSQL makes it one transaction."""
        removed = {table: self.delete_rows(table, "contact_key", contact_key)
                   for table in self.written_tables()}
        return {table: n for table, n in removed.items() if n}

    def query(self, expr: exp.Expression) -> list[tuple[Any, ...]]:
        """Rows of a query segsync built (rendered for this engine)."""
        return self.rows(self.render(expr))

    def check(self) -> list[str]:
        """Missing tables and columns, one line each (connectivity: :meth:`open` raises)."""
        found = self.table_columns()
        problems = missing_columns(found, dict(self.tables))
        for table, columns in RESULT_TABLES.items():
            if table in found and set(columns) - found[table]:
                problems.append(f"table {table} lacks columns "
                                f"{', '.join(sorted(set(columns) - found[table]))}")
        return problems

    def evaluate(self, segment_query: SegmentQuery) -> dict[str, int]:
        """Replace ``segment_membership`` with the members of ``segment_query`` (built with
        this engine's ``dialect``); return each segment's size."""
        if not segment_query.segments:
            self.replace_rows("segment_membership", None)
            return {}
        # (segment, contact_key): the table's column order.
        self.replace_rows("segment_membership", self.render(membership_select(segment_query)))
        sizes = {s.name: 0 for s in segment_query.segments}
        sizes.update({name: int(n) for name, n in self.rows(
            "SELECT segment, count(*) FROM segment_membership GROUP BY segment")})
        return sizes

    def members(self) -> list[tuple[str, str]]:
        """``(segment, contact_key)`` of the latest evaluation, sorted."""
        return [(s, k) for s, k in self.query(
            exp.select("segment", "contact_key").from_("segment_membership")
            .order_by("segment", "contact_key"))]

    def snapshot(self, run_id: int, as_of: datetime) -> int:
        """Append ``segment_membership`` to ``segment_snapshots`` under ``run_id``."""
        at = BuildContext.timestamp(as_of)
        select = exp.select(exp.Literal.number(run_id), "segment", "contact_key", at).from_(
            "segment_membership")
        self.execute(f"INSERT INTO segment_snapshots (run_id, segment, contact_key, as_of) "
                     f"{self.render(select)}")
        return int(self.rows(self.render(
            exp.select(exp.Count(this=exp.Star())).from_("segment_snapshots")
            .where(exp.EQ(this=exp.column("run_id"), expression=exp.Literal.number(run_id)))))[0][0])

    def membership_changes(self, previous_run: int | None) -> list[tuple[str, str, str]]:
        """``(segment, contact_key, change)``, change ``enter`` or ``exit``: the latest
        evaluation against the snapshot of ``previous_run`` (None: everyone enters). Only these
        rows leave the engine."""
        current = exp.select("segment", "contact_key").from_("segment_membership")
        before = exp.select("segment", "contact_key").from_("segment_snapshots").where(
            exp.EQ(this=exp.column("run_id"),
                   expression=exp.Literal.number(-1 if previous_run is None else previous_run)))
        enter = exp.select("segment", "contact_key", exp.Literal.string("enter").as_("change")).from_(
            exp.except_(current, before.copy()).subquery("entering"))
        leave = exp.select("segment", "contact_key", exp.Literal.string("exit").as_("change")).from_(
            exp.except_(before, current.copy()).subquery("leaving"))
        ordered = exp.select("segment", "contact_key", "change").from_(
            exp.union(enter, leave, distinct=False).subquery("changes")).order_by(
            "segment", "contact_key")
        return [tuple(r) for r in self.query(ordered)]  # type: ignore[misc]

    def effective_consent(
        self,
        policy: ConsentPolicy,
        countries: Mapping[str, ConsentPolicy] | None = None,
        *,
        as_of: datetime,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        contact_key: str | None = None,
        channel: str = "email",
        purpose: str = "marketing",
    ) -> list[tuple[Any, ...]]:
        """``(contact_key, status, ledger_id, method, suppression_id, policy)`` per contact with
        a decision (:func:`segsync.consent.rules.combined_status_sql`), derived in the engine;
        ``contact_key``: only that person's row (``consent show``)."""
        sql = combined_status_sql(policy, countries or {}, as_of=as_of, clock_skew=clock_skew,
                                  channel=channel, purpose=purpose,
                                  portable=self.dialect != dialects.DUCKDB)
        query = f"SELECT * FROM ({sql}) AS effective"
        if contact_key is not None:
            query += f" WHERE contact_key = {literal(contact_key)}"
        return self.rows(self.transpile(query + " ORDER BY contact_key"))

    def copy_state(self, suppressions: Sequence[Sequence[Any]],
                   status_changes: Sequence[Sequence[Any]]) -> None:
        """Replace the engine's copy of segsync's consent state (rows in
        :data:`CANONICAL_TABLES` column order): what effective consent reads besides the
        ledger."""
        for table, rows in (("suppressions", suppressions), ("status_changes", status_changes)):
            self.replace_rows(table, None)
            self.append(table, list(CANONICAL_TABLES[table]), rows)

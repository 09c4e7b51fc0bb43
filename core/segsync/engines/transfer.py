"""Moving what ingestion committed to the embedded store into an external engine, in bulk.

Connectors' records are validated, deduplicated and keyed by the embedded store's ingestion as
always; then the rows the engine lacks (events and ledger records of the runs after the latest
it holds, contacts written since the latest update it holds) go to it through
:meth:`Engine.upsert` and :meth:`Engine.append` (COPY, DataFrame writes), never row by row. segsync's own consent state (suppressions, the status audit) is
copied before consent is derived (:meth:`Engine.copy_state`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
from sqlglot import exp

from segsync.engines.base import Engine
from segsync.engines.layout import CANONICAL_TABLES
from segsync.store.sql import identifier

BATCH = 50_000
JSON_COLUMNS = {("contacts", "custom"), ("events", "properties")}


def _select(table: str, where: str = "") -> str:
    cols = ", ".join(f"{identifier(c)}::VARCHAR" if (table, c) in JSON_COLUMNS else identifier(c)
                     for c in CANONICAL_TABLES[table])
    return f"SELECT {cols} FROM {identifier(table)}{where}"


def stream(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple]:
    cursor = con.cursor()  # its own cursor: the caller's connection stays free
    cursor.execute(sql, list(params))
    while batch := cursor.fetchmany(BATCH):
        yield from batch
    cursor.close()


def transfer(con: duckdb.DuckDBPyConnection, engine: Engine) -> dict[str, int]:
    """Send the ingested rows ``engine`` lacks, and the consent state; return rows sent per
    table. Tables mapped onto the user's own are not written (segsync only reads them).

    What the engine lacks is found per table by a high-water mark read on the engine and
    compared with the store, never by the current run alone: so the rows of a run killed after
    the store committed them and before they reached the engine go with the next run."""
    sent: dict[str, int] = {}
    for table in ("events", "consent_ledger"):
        if table not in engine.tables:
            since = _runs_lacking(con, engine, table)
            sent[table] = engine.append(table, list(CANONICAL_TABLES[table]),
                                        stream(con, _select(table, _where_run(since)), _params(since)))
    if "contacts" not in engine.tables:
        # Contacts have no run: those written after the latest update the engine holds. Rows
        # of the same instant were written by one store transaction (now() is its start) and
        # sent together by one upsert, which is atomic on every engine.
        latest = engine.query(exp.select(exp.Max(this=exp.column("updated_at"))).from_("contacts"))[0][0]
        where = "" if latest is None else " WHERE updated_at > ?"
        sent["contacts"] = engine.upsert("contacts", ["contact_key"], list(CANONICAL_TABLES["contacts"]),
                                         stream(con, _select("contacts", where), [] if latest is None else [latest]))
    copy_state(con, engine)
    return sent


def _runs_lacking(con: duckdb.DuckDBPyConnection, engine: Engine, table: str) -> int | None:
    """The first run whose rows of ``table`` the engine lacks (None: it holds none at all).

    The engine's latest run is sent again when it holds fewer of that run's rows than the
    store (an append cut short; its rows are deleted first); rows with no run (a bulk load)
    count as run 0, sent only to an empty table."""
    if not engine.query(exp.select(exp.Literal.number(1)).from_(table).limit(1)):
        return None
    # max(run_id) alone: PostgreSQL answers it from the run_id index.
    latest = int(engine.query(exp.select(exp.Max(this=exp.column("run_id"))).from_(table))[0][0] or 0)
    if latest:
        count = exp.Count(this=exp.Star())
        on_engine = int(engine.query(exp.select(count).from_(table).where(
            exp.EQ(this=exp.column("run_id"), expression=exp.Literal.number(latest))))[0][0])
        in_store = int(con.execute(f"SELECT count(*) FROM {identifier(table)} WHERE run_id = ?",
                                   [latest]).fetchall()[0][0])
        if on_engine < in_store:
            engine.delete_rows(table, "run_id", latest)
            return latest
    return latest + 1


def _where_run(since: int | None) -> str:
    return "" if since is None else " WHERE run_id >= ?"


def _params(since: int | None) -> list[int]:
    return [] if since is None else [since]


def copy_state(con: duckdb.DuckDBPyConnection, engine: Engine) -> None:
    """The suppression list and the status audit, as the consent rule reads them."""
    engine.copy_state(list(stream(con, _select("suppressions"))),
                      list(stream(con, _select("status_changes"))))

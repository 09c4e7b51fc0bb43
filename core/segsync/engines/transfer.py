"""Moving what ingestion committed to the embedded store into an external engine, in bulk.

Connectors' records are validated, deduplicated and keyed by the embedded store's ingestion as
always; then the rows a run added (contacts it added or changed, its events and ledger records)
go to the engine through :meth:`Engine.upsert` and :meth:`Engine.append` (COPY, DataFrame
writes), never row by row. segsync's own consent state (suppressions, the status audit) is
copied before consent is derived (:meth:`Engine.copy_state`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

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


def transfer(con: duckdb.DuckDBPyConnection, engine: Engine, run_id: int | None = None) -> dict[str, int]:
    """Send the rows run ``run_id`` ingested (None: every row) and the consent state to
    ``engine``; return rows sent per table. Tables mapped onto the user's own are not written
    (segsync only reads them)."""
    sent: dict[str, int] = {}
    where = "" if run_id is None else " WHERE run_id = ?"
    params = [] if run_id is None else [run_id]
    if "contacts" not in engine.tables:
        # Contacts have no run_id: those whose events or consent the run brought, or that it
        # updated (updated_by names the connection, updated_at the run's instant).
        contacts_where = "" if run_id is None else (
            " WHERE contact_key IN (SELECT contact_key FROM events WHERE run_id = $1 UNION "
            "SELECT contact_key FROM consent_ledger WHERE run_id = $1) OR updated_at >= "
            "(SELECT started_at FROM runs WHERE id = $1)")
        sent["contacts"] = engine.upsert("contacts", ["contact_key"], list(CANONICAL_TABLES["contacts"]),
                                         stream(con, _select("contacts", contacts_where), params))
    for table in ("events", "consent_ledger"):
        if table not in engine.tables:
            sent[table] = engine.append(table, list(CANONICAL_TABLES[table]),
                                        stream(con, _select(table, where), params))
    copy_state(con, engine)
    return sent


def copy_state(con: duckdb.DuckDBPyConnection, engine: Engine) -> None:
    """The suppression list and the status audit, as the consent rule reads them."""
    engine.copy_state(list(stream(con, _select("suppressions"))),
                      list(stream(con, _select("status_changes"))))

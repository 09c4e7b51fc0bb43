"""Copying a DuckDB store's canonical tables into an engine (test data for the Spark tests)."""

from __future__ import annotations

from segsync.engines import CANONICAL_TABLES, USER_TABLES


def copy_store(con, engine) -> dict[str, int]:
    """Append the store's contacts, events and consent ledger to ``engine`` (each in one bulk
    write) and copy its suppressions and status audit; return rows per table."""
    counts = {}
    for table in USER_TABLES:
        columns = list(CANONICAL_TABLES[table])
        rows = con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        counts[table] = engine.append(table, columns, rows)
    state = {}
    for table in ("suppressions", "status_changes"):
        columns = list(CANONICAL_TABLES[table])
        state[table] = con.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        counts[table] = len(state[table])
    engine.copy_state(state["suppressions"], state["status_changes"])
    return counts

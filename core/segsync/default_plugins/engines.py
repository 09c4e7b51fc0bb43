"""The embedded DuckDB engine, registered like an engine plugin's (docs/scale.md)."""

from __future__ import annotations

from segsync.hookspecs import hookimpl


@hookimpl
def segsync_register_engines(register):  # noqa: ANN001 - pluggy hook
    from segsync.engines.duckdb import DuckDBEngine

    register(DuckDBEngine)

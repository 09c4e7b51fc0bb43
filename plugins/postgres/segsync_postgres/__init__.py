"""segsync-postgres: the PostgreSQL engine (``[store] engine = "postgres"``; docs/scale.md)."""

from __future__ import annotations

from segsync import hookimpl


@hookimpl
def segsync_register_engines(register):  # noqa: ANN001 - pluggy hook
    from segsync_postgres.engine import PostgresEngine

    register(PostgresEngine)

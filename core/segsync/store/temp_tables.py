"""Objects that own temp tables on the run's DuckDB connection (a diff, the effective consent).

The owner names its tables uniquely and is the only one to read them; :meth:`close` (or leaving
its ``with`` block) drops them, after which the owner refuses every read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

import duckdb


class OwnsTempTables:
    """Mixin: ``_con`` is the connection, ``_open`` is true until :meth:`close`, and
    :meth:`_owned_tables` names the tables to drop."""

    _con: duckdb.DuckDBPyConnection
    _open: bool

    def _owned_tables(self) -> Iterable[str]:
        raise NotImplementedError

    def close(self) -> None:
        """Drop the owned tables (at the end of the stage or run)."""
        if self._open:
            for table in self._owned_tables():
                self._con.execute(f"DROP TABLE IF EXISTS {table}")
            self._open = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close()
        except duckdb.Error:
            if exc_type is None:  # never hide the error that ended the block
                raise

"""A scratch store: what the store makes of a connector's batches, without a project or a run.

::

    with ScratchStore("mailchimp") as store:
        for batch in connector.read(Stream.CONTACTS, None):
            result = store.ingest(batch)
            assert (result.loaded, result.rejected) == (len(batch.rows), 0)
        assert store.query("SELECT contact_key FROM contacts") == [("ann@example.com",)]

Batches are validated and normalized exactly as a sync run's pull stage does (the built-in
event vocabulary, plus ``event_types``); bad records become record errors
(``SELECT record, field, reason FROM record_errors``). The tables are those of docs/records.md
(``contacts``, ``events``, ``consent_ledger``, ``identities``, ``record_errors``); read them for
assertions only: their shape is not part of the public API and may change between releases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segsync import Batch
    from segsync.store.ingest import IngestResult


class ScratchStore:
    """An in-memory store ingesting batches as connection ``connection``.

    :meth:`ingest` returns the batch's result: ``rows`` read, ``loaded``, ``rejected`` and the
    first few ``errors`` (dicts with ``record``, ``field``, ``reason``).
    """

    def __init__(self, connection: str = "test", *, event_types: Mapping[str, str] | None = None) -> None:
        from segsync.default_plugins.event_types import EVENT_TYPES
        from segsync.store import Store
        from segsync.store.ingest import Ingestor

        self.connection = connection
        self._store = Store(":memory:")
        self._ingestor = Ingestor(self._store.con, connection=connection, run_id=None,
                                  event_types={**EVENT_TYPES, **(event_types or {})})

    def ingest(self, batch: Batch) -> IngestResult:
        """Validate and load ``batch`` (its records only: cursors are the runner's)."""
        return self._ingestor.ingest(batch)

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[tuple]:
        """Rows of a read-only query over the store's tables."""
        return self._store.con.execute(sql, params or []).fetchall()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ScratchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

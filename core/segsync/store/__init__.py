"""The embedded store (DuckDB): contacts, events, consent ledger, cursors, runs, acknowledgements."""

from segsync.store.lock import StoreLocked
from segsync.store.store import Store, StoreError, StoreOutdated

__all__ = ["Store", "StoreError", "StoreLocked", "StoreOutdated"]

"""The embedded store (DuckDB): contacts, events, consent ledger, cursors, runs, acknowledgements."""

from segsync.store.lock import StoreLocked
from segsync.store.store import Store, StoreError, StoreOutdated, dicts

__all__ = ["Store", "StoreError", "StoreLocked", "StoreOutdated", "dicts"]

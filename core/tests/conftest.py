from __future__ import annotations

from pathlib import Path

import pytest

from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.store import Store
from segsync.store.ingest import Ingestor


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "store.duckdb") as s:
        yield s


@pytest.fixture
def ingestor(store: Store) -> Ingestor:
    return Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES)


def rows(store: Store, sql: str, params=None) -> list[tuple]:
    return store.con.execute(sql, params or []).fetchall()

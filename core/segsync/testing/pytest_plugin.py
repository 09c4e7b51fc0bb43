"""pytest fixtures for plugin authors, registered under the ``pytest11`` entry point.

Loaded into every pytest run of an environment with segsync installed, so it imports nothing
until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from segsync.testing.clock import FakeClock
    from segsync.testing.memory import MemoryConnector


@pytest.fixture
def segsync_project(tmp_path: Path) -> Path:
    """An empty project folder with a minimal ``segsync.toml`` (store beside it)."""
    (tmp_path / "segsync.toml").write_text('[store]\npath = "segsync.duckdb"\n', encoding="utf-8")
    return tmp_path


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`~segsync.testing.FakeClock` at 2025-01-01T00:00:00Z."""
    from segsync.testing.clock import FakeClock

    return FakeClock()


@pytest.fixture
def memory_destination() -> Iterator[type[MemoryConnector]]:
    """The :class:`~segsync.testing.MemoryConnector` class, holding nothing before and after
    the test (``.held[connection]``, ``.calls[connection]``)."""
    from segsync.testing.memory import MemoryConnector, reset_memory

    reset_memory()
    yield MemoryConnector
    reset_memory()

"""pytest fixtures for plugin authors, registered under the ``pytest11`` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def segsync_project(tmp_path: Path) -> Path:
    """An empty project folder with a minimal ``segsync.toml`` (store beside it)."""
    (tmp_path / "segsync.toml").write_text('[store]\npath = "segsync.duckdb"\n', encoding="utf-8")
    return tmp_path

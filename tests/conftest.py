"""Shared pieces for cross-package tests: a project folder and an in-memory destination (both
from segsync.testing, the helpers every plugin author gets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segsync import Batch, Stream
from segsync.testing import SAMPLE_CONFIG as BASIC_CONFIG
from segsync.testing import MemoryConnector, Project, reset_memory


@pytest.fixture(autouse=True)
def _reset_memory():
    reset_memory()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    # Only the plugins under test: other installed connectors must not change these runs.
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    return Project.sample(tmp_path)


__all__ = ["BASIC_CONFIG", "MemoryConnector", "Project", "Batch", "Stream"]

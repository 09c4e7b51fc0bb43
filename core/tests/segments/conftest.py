"""Fixtures of the segment-engine tests; data and helpers live in ``segtestkit``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib keeps test folders off sys.path; the tests import segtestkit.
sys.path.insert(0, str(Path(__file__).parent))

from segtestkit import create_store, populate  # noqa: E402


@pytest.fixture
def store():
    con = create_store()
    populate(con)
    yield con
    con.close()

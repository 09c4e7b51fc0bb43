"""The files connector passes the standard connector tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance
from segsync_files import FilesConnector, FilesSettings


class TestFilesSource(ConnectorConformance):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> FilesConnector:
        (tmp_path / "c.csv").write_text("email,first_name\nann@example.com,Ann\nbo@example.com,Bo\n")
        (tmp_path / "consent.csv").write_text("email,status,timestamp\nann@example.com,opted_in,2024-01-01T00:00:00Z\n")
        (tmp_path / "e.jsonl").write_text(json.dumps(
            {"email": "ann@example.com", "type": "email.opened", "timestamp": "2024-01-02T00:00:00Z", "id": "1"}) + "\n")
        return FilesConnector("shop", FilesSettings(contacts="c.csv", consent="consent.csv", events="e.jsonl"), tmp_path)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return []


class TestFilesDestination(ConnectorConformance):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> FilesConnector:
        return FilesConnector("upload", FilesSettings(output="out/list"), tmp_path)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("ann@example.com", "upsert", "subscribed", {"first_name": "Ann"}, tags=("vip",)),
            ContactChange("bo@example.com", "upsert", "unsubscribed", {}),
        ]

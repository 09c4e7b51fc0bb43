"""The files connector passes the standard connector tests and the behaviour scenarios."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance
from segsync.testing.service import NOT_SUBSCRIBED, OPTED_OUT, PENDING, SUBSCRIBED, RemoteContact, ServiceAdapter
from segsync_files import FilesConnector, FilesSettings

STATUSES = {"subscribed": SUBSCRIBED, "pending": PENDING, "none": NOT_SUBSCRIBED}


class AudienceFolder(ServiceAdapter):
    """The files connector's "service": the audience file it writes, and the folder of contact
    files it reads (one file a page: the connector yields a batch per file)."""

    page_size = 10

    def __init__(self, root: Path, output: str = "out/list", contacts: str = "contacts") -> None:
        self.audience = root / f"{output}.jsonl"
        self.contacts = root / contacts
        self.files = 0

    def contact(self, key: str) -> RemoteContact | None:
        if not self.audience.exists():
            return None
        rows = [json.loads(line) for line in self.audience.read_text(encoding="utf-8").splitlines() if line]
        mine = [row for row in rows if row["email"] == key]
        if not mine:
            return None
        row = mine[0]
        return RemoteContact(
            status=STATUSES.get(row["status"], OPTED_OUT),
            tags=frozenset(row["tags"]),
            attributes={k: v for k, v in row["attributes"].items() if v not in (None, "")},
            copies=len(mine),
        )

    def add_contacts(self, keys: Sequence[str]) -> None:
        self.contacts.mkdir(exist_ok=True)
        for start in range(0, len(keys), self.page_size):
            self.files += 1  # file names sort in the order they were written
            lines = ["email,first_name", *(f"{key},Reader" for key in keys[start:start + self.page_size])]
            (self.contacts / f"{self.files:05d}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


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


class TestFilesPagedSource(ConnectorConformance):
    """Contacts from a folder that receives a file per export: the read scenarios."""

    @pytest.fixture
    def service(self, tmp_path: Path) -> AudienceFolder:
        service = AudienceFolder(tmp_path)
        service.add_contacts(["ann@example.com", "bo@example.com"])
        return service

    @pytest.fixture
    def connector(self, tmp_path: Path, service: AudienceFolder) -> FilesConnector:
        return FilesConnector("shop", FilesSettings(contacts="contacts/*.csv"), tmp_path)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return []


class TestFilesDestination(ConnectorConformance):
    @pytest.fixture
    def connector(self, tmp_path: Path) -> FilesConnector:
        return FilesConnector("upload", FilesSettings(output="out/list"), tmp_path)

    @pytest.fixture
    def service(self, tmp_path: Path) -> AudienceFolder:
        return AudienceFolder(tmp_path)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("ann@example.com", "upsert", "subscribed", {"first_name": "Ann"}, tags=("vip",)),
            ContactChange("bo@example.com", "upsert", "unsubscribed", {}),
        ]

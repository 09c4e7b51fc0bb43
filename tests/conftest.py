"""Shared pieces for cross-package tests: a project folder and an in-memory destination."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from segsync import (
    Batch,
    Capability,
    Connector,
    ConnectorSettings,
    ContactChange,
    Outcome,
    Stream,
    WriteResult,
    hookimpl,
)
from segsync.config import load_config
from segsync.plugins import PluginHost
from segsync.sync.runner import RunOptions, Runner


class MemorySettings(ConnectorSettings):
    api_key: SecretStr
    reject: list[str] = []  # addresses this "system" refuses
    retry: list[str] = []  # addresses it answers "try again later" for
    fail: bool = False  # every write raises


class MemoryConnector(Connector):
    """A destination that keeps what it was told in a class-level dict, per connection."""

    type_name = "memory"
    capabilities = frozenset({Capability.WRITE_CONTACTS, Capability.WRITE_MEMBERSHIPS,
                              Capability.WRITE_CONSENT, Capability.DELETE_CONTACTS})
    Settings = MemorySettings
    max_batch_size = 2
    held: dict[str, dict[str, dict[str, Any]]] = {}
    calls: dict[str, int] = {}

    settings: MemorySettings

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        if self.settings.fail:
            raise ConnectionError("the service is down")
        audience = self.held.setdefault(self.connection, {})
        self.calls[self.connection] = self.calls.get(self.connection, 0) + 1
        outcomes = []
        for change in changes:
            if change.contact_key in self.settings.reject:
                outcomes.append(Outcome.rejected(change.contact_key, "Invalid Resource", "email"))
            elif change.contact_key in self.settings.retry:
                outcomes.append(Outcome.retryable(change.contact_key, "503 from the service"))
            elif change.op == "delete":
                audience.pop(change.contact_key, None)
                outcomes.append(Outcome.ok(change.contact_key))
            else:
                audience[change.contact_key] = {"status": change.status, "tags": list(change.tags),
                                                **dict(change.attributes)}
                outcomes.append(Outcome.ok(change.contact_key, external_id=f"m-{change.contact_key}"))
        return WriteResult(outcomes, calls=1)


class MemoryPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(MemoryConnector)


@pytest.fixture(autouse=True)
def _reset_memory():
    MemoryConnector.held.clear()
    MemoryConnector.calls.clear()


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)

    def write_config(self, text: str) -> None:
        (self.root / "segsync.toml").write_text(textwrap.dedent(text), encoding="utf-8")

    def write(self, name: str, text: str) -> Path:
        path = self.data / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def append(self, name: str, text: str) -> None:
        with (self.data / name).open("a", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(text).lstrip())

    def host(self, *plugins: Any) -> PluginHost:
        return PluginHost(extra_plugins=[MemoryPlugin(), *plugins])

    def run(self, *plugins: Any, **options: Any):
        return Runner(load_config(self.root / "segsync.toml"), self.host(*plugins)).run(RunOptions(**options))

    def audience(self, name: str = "out/audience") -> dict[str, dict]:
        path = self.root / f"{name}.jsonl"
        if not path.exists():
            return {}
        return {r["email"]: r for r in map(json.loads, path.read_text().splitlines())}


BASIC_CONFIG = """
    [store]
    path = "store.duckdb"

    [connections.shop]
    type = "files"
    contacts = "data/contacts.csv"
    consent = "data/consent.csv"
    events = "data/events.jsonl"

    [connections.upload]
    type = "files"
    output = "out/audience"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    # Only the plugins under test: other installed connectors must not change these runs.
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    p = Project(tmp_path)
    p.write_config(BASIC_CONFIG)
    p.write("contacts.csv", """
        email,first_name,tier
        ann@example.com,Ann,gold
        bo@example.com,Bo,
        cy@example.com,Cy,silver
    """)
    p.write("consent.csv", """
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
    """)
    p.write("events.jsonl", """
        {"email": "ann@example.com", "type": "email.opened", "timestamp": "2024-02-01T00:00:00Z", "id": "e1"}
    """)
    return p


__all__ = ["MemoryConnector", "Project", "Batch", "Stream"]

"""A fake connected system for consent scenarios: holds contacts, reports consent changes made
"in the system" (unsubscribes, bounces, complaints, stale subscribes), deletes, and fails on
request. Several connections of it stand for systems A, B and C."""

from __future__ import annotations

import pytest

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from segsync import (Batch, Capability, Connector, ConnectorSettings, ContactChange, Outcome, Stream,
                     WriteResult, hookimpl)


@dataclass
class System:
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    consent: list[dict[str, Any]] = field(default_factory=list)  # what a pull reports, in order
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (op, email, status)
    fail_deletes: bool = False

    def report(self, email: str, status: str, at: str, method: str) -> None:
        """Something happened in the system itself (the person clicked, the mail bounced…)."""
        self.consent.append({"email": email, "status": status, "timestamp": at, "method": method,
                             "evidence": f"{status} seen by the system"})
        # The system's own record changes with its opt-outs; an "opted_in" report stands for a
        # stale statement (an old export, a sync), not a change made there.
        held = {"opted_out": "unsubscribed", "bounced": "cleaned", "complained": "complained"}
        if email in self.contacts and status in held:
            self.contacts[email]["status"] = held[status]


SYSTEMS: dict[str, System] = {}


class SystemSettings(ConnectorSettings):
    can_delete: bool = True


class SystemConnector(Connector):
    type_name = "system"
    capabilities = frozenset({Capability.READ_CONSENT, Capability.WRITE_CONTACTS, Capability.WRITE_MEMBERSHIPS,
                              Capability.WRITE_CONSENT, Capability.DELETE_CONTACTS})
    Settings = SystemSettings
    settings: SystemSettings

    @property
    def system(self) -> System:
        return SYSTEMS.setdefault(self.connection, System())

    def enabled_capabilities(self):
        if self.settings.can_delete:
            return self.capabilities
        return self.capabilities - {Capability.DELETE_CONTACTS}

    def read(self, stream: Stream, cursor: Any | None):
        start = int(cursor or 0)
        rows = self.system.consent[start:]
        yield Batch(Stream.CONSENT, cursor=start + len(rows), rows=rows)

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        outcomes = []
        for change in changes:
            self.system.writes.append((change.op, change.contact_key, change.status))
            if change.op == "delete":
                if self.system.fail_deletes:
                    outcomes.append(Outcome.retryable(change.contact_key, "503 from the service"))
                    continue
                self.system.contacts.pop(change.contact_key, None)
                outcomes.append(Outcome.ok(change.contact_key))
            else:
                self.system.contacts[change.contact_key] = {
                    "status": change.status, "attributes": dict(change.attributes)}
                outcomes.append(Outcome.ok(change.contact_key, external_id=f"{self.connection}-{change.contact_key}"))
        return WriteResult(outcomes, calls=1 if changes else 0)


class SystemPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(SystemConnector)


CONFIG = """
    [store]
    path = "store.duckdb"

    [connections.shop]
    type = "files"
    contacts = "data/contacts.csv"
    consent = "data/consent.csv"
    events = "data/events.jsonl"

    [connections.a]
    type = "system"

    [connections.b]
    type = "system"

    [connections.c]
    type = "system"
"""


ANN, BO, CY = "ann@example.com", "bo@example.com", "cy@example.com"


@pytest.fixture(autouse=True)
def reset_systems():
    """Each test starts with empty systems (autouse in every module that imports it)."""
    SYSTEMS.clear()

"""An in-memory destination: a connector that keeps what it was told, for tests of the pipeline.

Register :class:`MemoryPlugin` (in the plugin host's ``extra_plugins``, or through
:meth:`segsync.testing.Project.run`, which always adds it) and configure a connection with
``type = "memory"``; the changes written to it are in ``MemoryConnector.held[connection]``
(contact key → status, tags and attributes) and the number of ``write`` calls in
``MemoryConnector.calls[connection]``. Both are class-level: call :func:`reset_memory` between
tests (the ``memory_destination`` fixture of the pytest plugin does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import SecretStr

from segsync import (
    Capability,
    Connector,
    ConnectorSettings,
    ContactChange,
    Outcome,
    WriteResult,
    hookimpl,
)


class MemorySettings(ConnectorSettings):
    """``api_key`` is required (from ``SEGSYNC_<CONNECTION>_API_KEY``), so tests exercise secret
    handling; ``reject``/``retry`` list the addresses this "system" refuses or defers, and
    ``fail`` makes every write raise."""

    api_key: SecretStr
    reject: list[str] = []  # addresses this "system" refuses
    retry: list[str] = []  # addresses it answers "try again later" for
    fail: bool = False  # every write raises


class MemoryConnector(Connector):
    """A destination that keeps what it was told in a class-level dict, per connection.

    Writes at most two changes a call (``max_batch_size``), so batching shows in tests.
    """

    type_name = "memory"
    capabilities = frozenset({Capability.WRITE_CONTACTS, Capability.WRITE_MEMBERSHIPS,
                              Capability.WRITE_CONSENT, Capability.DELETE_CONTACTS})
    Settings = MemorySettings
    max_batch_size = 2
    held: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    calls: ClassVar[dict[str, int]] = {}

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
    """The plugin that registers :class:`MemoryConnector`."""

    @hookimpl
    def segsync_register_connectors(self, register):
        register(MemoryConnector)


def reset_memory() -> None:
    """Forget what every memory connection holds and how often it was written."""
    MemoryConnector.held.clear()
    MemoryConnector.calls.clear()

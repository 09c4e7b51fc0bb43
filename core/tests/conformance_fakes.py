"""A small in-memory service, a connector that gets it right, and connectors that each get one
thing wrong: what test_conformance_kit.py runs the conformance kit on.

The service speaks in requests (method, path) that it logs, may fail on request (429 with a
retry hint, 5xx) and carries out only when they do not fail. Like many CRMs it has no unique key:
``create`` always adds a record, so a client must look a contact up before creating it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr

from segsync.connector import (
    Batch,
    Capability,
    Connector,
    ConnectorSettings,
    ContactChange,
    Outcome,
    Stream,
    WriteResult,
)
from segsync.testing.service import OPTED_OUT, SUBSCRIBED, Exchange, RemoteContact, ServiceAdapter

log = logging.getLogger("fake_crm")
T = TypeVar("T")
PAGE = 5


class HttpError(Exception):
    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


@dataclass
class Record:
    email: str
    status: str
    tags: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


class FakeService:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.log: list[Exchange] = []
        self.faults: list[tuple[int, float | None]] = []
        self._seq = itertools.count(1)

    def request(self, method: str, path: str, apply: Callable[[], T]) -> T:
        if self.faults:
            status, retry_after = self.faults.pop(0)
            self.log.append(Exchange(method, path, status, time.monotonic()))
            raise HttpError(status, retry_after)
        self.log.append(Exchange(method, path, 200, time.monotonic()))
        return apply()

    # -- what the requests do ----------------------------------------------------------------
    def find(self, email: str) -> list[Record]:
        return [r for r in self.records if r.email == email]

    def create(self, email: str, status: str, tags: set[str], attributes: dict[str, Any]) -> None:
        if "refused" in email:
            raise HttpError(400)
        self.records.append(Record(email, status, set(tags), dict(attributes), next(self._seq)))

    def update(self, record: Record, status: str, add: Sequence[str], remove: Sequence[str],
               attributes: dict[str, Any]) -> None:
        record.status = status
        record.tags = (record.tags | set(add)) - set(remove)
        record.attributes.update(attributes)
        record.seq = next(self._seq)

    def delete(self, email: str) -> None:
        self.records = [r for r in self.records if r.email != email]

    def page(self, after: int) -> list[Record]:
        return sorted((r for r in self.records if r.seq > after), key=lambda r: r.seq)[:PAGE]


SERVICES: dict[str, FakeService] = {}


class FakeSettings(ConnectorSettings):
    service: str
    api_key: SecretStr
    max_attempts: int = 3


class FakeCrm(Connector):
    """Gets everything right: the reference the broken ones below differ from."""

    type_name = "fake_crm"
    capabilities = frozenset(Capability)
    Settings = FakeSettings
    settings: FakeSettings

    def __init__(self, connection: str, settings: ConnectorSettings, project_dir: Path) -> None:
        super().__init__(connection, settings, project_dir)
        self.service = SERVICES[self.settings.service]
        self.calls = 0

    # -- HTTP with retries ---------------------------------------------------------------------
    def wait(self, error: HttpError, attempt: int) -> float:
        if error.status == 429 and error.retry_after is not None:
            return error.retry_after
        return 0.01 * attempt

    def call(self, method: str, path: str, apply: Callable[[], T]) -> T:
        for attempt in range(1, self.settings.max_attempts + 1):
            self.calls += 1
            try:
                return self.service.request(method, path, apply)
            except HttpError as error:
                if error.status < 429 or attempt == self.settings.max_attempts:
                    raise
                time.sleep(self.wait(error, attempt))
        raise AssertionError("unreachable")

    # -- write ---------------------------------------------------------------------------------
    def lookup(self, changes: Sequence[ContactChange]) -> dict[str, bool]:
        return self.call("GET", "/contacts", lambda: {c.contact_key: bool(self.service.find(c.contact_key))
                                                      for c in changes})

    def apply(self, change: ContactChange, exists: bool) -> None:
        key = change.contact_key
        if change.op == "delete":
            self.call("DELETE", f"/contacts/{key}", lambda: self.service.delete(key))
        elif exists:
            for record in self.service.find(key):
                self.call("PATCH", f"/contacts/{key}", lambda: self.service.update(
                    record, change.status, change.tags_add, change.tags_remove, dict(change.attributes)))
        elif change.status in ("subscribed", "unsubscribed"):
            self.call("POST", "/contacts", lambda: self.service.create(
                key, change.status, set(change.tags), dict(change.attributes)))

    def answer(self, change: ContactChange, exists: bool) -> Outcome:
        if not exists and change.op == "upsert" and change.status not in ("subscribed", "unsubscribed"):
            return Outcome.rejected(change.contact_key, "no consent: not created", "status")
        try:
            self.apply(change, exists)
        except HttpError as error:
            if error.status >= 429:
                return Outcome.retryable(change.contact_key, str(error))
            return Outcome.rejected(change.contact_key, str(error))
        return Outcome.ok(change.contact_key)

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        if not changes:
            return WriteResult([], 0)
        self.calls = 0
        try:
            exists = self.lookup(changes)
        except HttpError as error:
            return WriteResult([Outcome.retryable(c.contact_key, str(error)) for c in changes], self.calls)
        return WriteResult(self.send(changes, exists), self.calls)

    def send(self, changes: Sequence[ContactChange], exists: dict[str, bool]) -> list[Outcome]:
        return [self.answer(change, exists[change.contact_key]) for change in changes]

    # -- read ----------------------------------------------------------------------------------
    def pages(self, after: int) -> Iterator[list[Record]]:
        while page := self.call("GET", "/contacts", lambda: self.service.page(after)):
            yield page
            after = page[-1].seq

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        if stream is not Stream.CONTACTS:
            return
        after = (cursor or {}).get("after", 0)
        for page in self.pages(after):
            after = page[-1].seq
            yield Batch(stream, {"after": after}, rows=[{"email": r.email, **r.attributes} for r in page])

    def enabled_capabilities(self) -> frozenset[Capability]:
        return self.capabilities - {Capability.READ_EVENTS, Capability.READ_CONSENT}


class SkipsAPage(FakeCrm):
    def pages(self, after: int) -> Iterator[list[Record]]:
        for number, page in enumerate(super().pages(after)):
            if number != 1:
                yield page


class AppliesBatchesTwice(FakeCrm):
    """Sends each batch twice on one lookup (a resend of a batch whose answers were lost)."""

    def send(self, changes: Sequence[ContactChange], exists: dict[str, bool]) -> list[Outcome]:
        super().send(changes, exists)
        return super().send(changes, exists)


class IgnoresRetryAfter(FakeCrm):
    def wait(self, error: HttpError, attempt: int) -> float:
        return 0.01 * attempt


class LogsItsKey(FakeCrm):
    def call(self, method: str, path: str, apply: Callable[[], T]) -> T:
        log.debug("%s %s with key %s", method, path, self.settings.api_key.get_secret_value())
        return super().call(method, path, apply)


class AnswersForTheWrongKey(FakeCrm):
    """Answers the last change of a batch under the first change's key."""

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        result = super().write(changes)
        if len(result.outcomes) > 1:
            last = result.outcomes[-1]
            result.outcomes[-1] = Outcome(changes[0].contact_key, last.status, last.reason)
        return result


class FakeServiceAdapter(ServiceAdapter):
    page_size = PAGE

    def __init__(self, service: FakeService) -> None:
        self.service = service

    def contact(self, key: str) -> RemoteContact | None:
        records = self.service.find(key)
        if not records:
            return None
        first = records[0]
        return RemoteContact(SUBSCRIBED if first.status == "subscribed" else OPTED_OUT,
                             frozenset(first.tags), dict(first.attributes), copies=len(records))

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        self.service.faults.extend([(status, retry_after)] * count)

    def exchanges(self) -> Sequence[Exchange]:
        return list(self.service.log)

    def add_contacts(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.service.create(key, "subscribed", set(), {})

    def refused_changes(self) -> Sequence[ContactChange]:
        return [ContactChange("conformance.refused@example.com", "upsert", "subscribed", {})]


class OptsOutWithATag(FakeCrm):
    """Marks an unsubscribe with a tag and leaves the contact subscribed (mailable)."""

    def apply(self, change: ContactChange, exists: bool) -> None:
        if change.status == "unsubscribed":
            change = replace(change, status="subscribed", tags=(*change.tags, "unsubscribed"),
                             tags_add=(*change.tags_add, "unsubscribed"))
        super().apply(change, exists)


class SubscribesEveryone(FakeCrm):
    """Creates a contact without consent as subscribed."""

    def answer(self, change: ContactChange, exists: bool) -> Outcome:
        if change.op == "upsert" and change.status in ("none", "pending"):
            change = replace(change, status="subscribed")
        return super().answer(change, exists)


class NeverRetries(FakeCrm):
    def call(self, method: str, path: str, apply: Callable[[], T]) -> T:
        self.calls += 1
        return self.service.request(method, path, apply)


class RetriesPastItsLimit(FakeCrm):
    def call(self, method: str, path: str, apply: Callable[[], T]) -> T:
        while True:
            self.calls += 1
            try:
                return self.service.request(method, path, apply)
            except HttpError as error:
                if error.status < 429:
                    raise
                time.sleep(self.wait(error, 1))


class AcceptsEverything(FakeCrm):
    """Answers ok for a record the service refused."""

    def answer(self, change: ContactChange, exists: bool) -> Outcome:
        outcome = super().answer(change, exists)
        return Outcome.ok(change.contact_key) if outcome.status == "rejected" else outcome

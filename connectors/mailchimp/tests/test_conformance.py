"""The Mailchimp connector passes the standard connector tests and the behaviour scenarios
against the emulator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance
from segsync.testing.service import (
    NOT_SUBSCRIBED,
    OPTED_OUT,
    PENDING,
    SUBSCRIBED,
    Exchange,
    RemoteContact,
    ServiceAdapter,
)
from segsync_mailchimp.emulator import MailchimpEmulator
from segsync_mailchimp.reader import PAGE

from .conftest import LIST_ID, MERGE_FIELDS

STATUSES = {"subscribed": SUBSCRIBED, "pending": PENDING, "unsubscribed": OPTED_OUT, "cleaned": OPTED_OUT,
            "transactional": NOT_SUBSCRIBED, "archived": NOT_SUBSCRIBED}


class SteppedClock:
    """The emulator's clock and the reader's "now": moved forward by the adapter, never slept on
    (the reader leaves members changed in the current second to the next pull)."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)

    def __call__(self) -> datetime:
        return self.now

    def step(self) -> datetime:
        self.now += timedelta(seconds=2)
        return self.now


class MailchimpAudience(ServiceAdapter):
    def __init__(self, emulator: MailchimpEmulator, clock: SteppedClock, page_size: int = PAGE) -> None:
        self.emulator, self.clock = emulator, clock
        self.page_size = page_size  # the reader's page (the API's maximum unless a test lowers it)

    def contact(self, key: str) -> RemoteContact | None:
        member = self.emulator.state.member(LIST_ID, key)
        if member is None:
            return None
        attribute_of = {tag: name for name, tag in MERGE_FIELDS.items()}
        return RemoteContact(
            status=STATUSES[member.status],
            tags=frozenset(self.emulator.state.tag_names(LIST_ID, member)),
            attributes={attribute_of[tag]: value for tag, value in member.merge_fields.items()
                        if tag in attribute_of and value not in ("", None)},
        )

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        self.emulator.inject("status", count, status=status, retry_after=retry_after)

    def exchanges(self) -> Sequence[Exchange]:
        return [Exchange(r.method, r.path, r.status, r.started) for r in list(self.emulator.log)]

    def refused_changes(self) -> Sequence[ContactChange]:
        # SIZE is a number merge field: Mailchimp refuses text in it (batch-subscribe errors[]).
        return [ContactChange("conformance.refused@example.com", "upsert", "subscribed",
                              {"company_size": "a few"}, consent_method="form")]

    def add_contacts(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.emulator.state.seed_member(LIST_ID, key, "subscribed", last_changed=self.clock.step())
        self.clock.step()


def audience_with_stepped_clock(emulator: MailchimpEmulator, monkeypatch: pytest.MonkeyPatch,
                                page_size: int = PAGE) -> MailchimpAudience:
    clock = SteppedClock()
    emulator.state.clock = clock
    monkeypatch.setattr("segsync_mailchimp.reader.now_utc", clock)
    return MailchimpAudience(emulator, clock, page_size)


def seed(emulator: MailchimpEmulator) -> None:
    now = emulator.state.clock()
    emulator.state.seed_member(LIST_ID, "ann@example.com", "subscribed", merge_fields={"FNAME": "Ann"},
                               last_changed=now - timedelta(days=2))
    emulator.state.seed_member(LIST_ID, "bo@example.com", "unsubscribed", last_changed=now - timedelta(days=2))
    emulator.state.seed_campaign(LIST_ID, "c1", now - timedelta(days=1), ["ann@example.com"])
    emulator.state.record_activity("c1", "ann@example.com", "open", now - timedelta(hours=20))


class TestMailchimpConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator) -> None:
        seed(emulator)

    @pytest.fixture
    def service(self, emulator: MailchimpEmulator, monkeypatch: pytest.MonkeyPatch) -> MailchimpAudience:
        return audience_with_stepped_clock(emulator, monkeypatch)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("cy@example.com", "upsert", "subscribed", {"first_name": "Cy"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]

"""The Brevo connector passes the standard connector tests and the behaviour scenarios against
the emulator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance
from segsync.testing.service import OPTED_OUT, SUBSCRIBED, Exchange, RemoteContact, ServiceAdapter
from segsync_brevo import BrevoConnector
from segsync_brevo.emulator import BrevoEmulator
from segsync_brevo.limits import CONTACTS_PAGE_MAX
from segsync_brevo.settings import DEFAULT_ATTRIBUTES


class BrevoAccount(ServiceAdapter):
    page_size = CONTACTS_PAGE_MAX

    def __init__(self, emulator: BrevoEmulator, audience_list: str) -> None:
        self.emulator, self.audience_list = emulator, audience_list

    def contact(self, key: str) -> RemoteContact | None:
        contact = self.emulator.state.contact(key)
        if contact is None:
            return None
        lists = self.emulator.state.lists
        attribute_of = {brevo: name for name, brevo in DEFAULT_ATTRIBUTES.items()}
        return RemoteContact(
            # Brevo has no subscription status: a contact is mailed unless blocklisted.
            status=OPTED_OUT if contact.email_blacklisted else SUBSCRIBED,
            tags=frozenset(lists[i].name for i in contact.list_ids if i in lists) - {self.audience_list},
            attributes={attribute_of[k]: v for k, v in contact.attributes.items()
                        if k in attribute_of and v not in ("", None)},
        )

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        # Brevo's 429 says when to come back in x-sib-ratelimit-reset (seconds).
        self.emulator.add_fault(kind="status", status=status, times=count, reset=retry_after or 1.0)

    def exchanges(self) -> Sequence[Exchange]:
        return [Exchange(e.method, e.path, e.status, e.started) for e in self.emulator.requests()]

    def refused_changes(self) -> Sequence[ContactChange]:
        # An address Brevo cannot hold.
        return [ContactChange("conformance.refused@@example.com", "upsert", "subscribed", {"first_name": "X"},
                              consent_method="form")]

    def add_contacts(self, keys: Sequence[str]) -> None:
        for key in keys:  # the emulator's clock gives each a later modifiedAt
            self.emulator.state.seed_contact(key)


class TestBrevoConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator, make_connector) -> None:
        make_connector().fix()  # what `segsync check --fix` does once per account
        now = emulator.state.clock.now()
        emulator.state.seed_contact("ann@example.com", attributes={"FIRSTNAME": "Ann"},
                                    modified_at=now - timedelta(days=2))
        emulator.state.seed_contact("bo@example.com", blacklisted=True, modified_at=now - timedelta(days=2))
        emulator.state.add_blocked("cy@example.com", "hardBounce", now - timedelta(days=1))

    @pytest.fixture
    def connector(self, make_connector) -> BrevoConnector:
        # Three tries keep the retry scenarios' back-off short (Brevo's waits double from 0.25 s).
        return make_connector(max_attempts=3)

    @pytest.fixture
    def service(self, emulator: BrevoEmulator, connector: BrevoConnector) -> BrevoAccount:
        return BrevoAccount(emulator, connector.settings.audience_list)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("dee@example.com", "upsert", "subscribed", {"first_name": "Dee"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]

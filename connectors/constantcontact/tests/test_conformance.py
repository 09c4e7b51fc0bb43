"""The Constant Contact connector passes the standard connector tests and the behaviour
scenarios against the emulator."""

from __future__ import annotations

from collections.abc import Sequence

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
from segsync_constantcontact import ConstantContactConnector
from segsync_constantcontact.emulator import ConstantContactEmulator
from segsync_constantcontact.limits import CONTACTS_PAGE_MAX
from segsync_constantcontact.settings import DEFAULT_ATTRIBUTES

STATUS = {"explicit": SUBSCRIBED, "implicit": SUBSCRIBED, "pending_confirmation": PENDING,
          "unsubscribed": OPTED_OUT, "not_set": NOT_SUBSCRIBED, "temp_hold": NOT_SUBSCRIBED}


class ConstantContactAccount(ServiceAdapter):
    page_size = CONTACTS_PAGE_MAX

    def __init__(self, emulator: ConstantContactEmulator) -> None:
        self.emulator = emulator

    def contact(self, key: str) -> RemoteContact | None:
        state = self.emulator.state
        with state.lock:
            state.advance()
            found = [c for c in state.contacts.values()
                     if c["email_address"]["address"].lower() == key and not c.get("deleted_at")]
            if not found:
                return None
            contact = found[0]
            attribute_of = {column: name for name, column in DEFAULT_ATTRIBUTES.items()}
            return RemoteContact(
                status=STATUS[contact["email_address"]["permission_to_send"]],
                # Segments are tags (the connector's default segment_mode).
                tags=frozenset(state.tags[t]["name"] for t in contact["taggings"] if t in state.tags),
                attributes={attribute_of[k]: v for k, v in contact.items()
                            if k in attribute_of and v not in ("", None)},
                copies=len(found),
            )

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        self.emulator.inject("status", count, status=status, retry_after=retry_after)

    def exchanges(self) -> Sequence[Exchange]:
        return [Exchange(e.method, e.path, e.status, e.started) for e in self.emulator.calls()]

    def refused_changes(self) -> Sequence[ContactChange]:
        return [
            # Longer than the 50 characters Constant Contact takes in a last name.
            ContactChange("conformance.long@example.com", "upsert", "subscribed", {"last_name": "x" * 51},
                          consent_method="form"),
            # An address the import refuses (a non-ASCII local part, see the README).
            ContactChange("conformance.chloé@example.com", "upsert", "subscribed", {}, consent_method="form"),
        ]

    def add_contacts(self, keys: Sequence[str]) -> None:
        for key in keys:  # the emulator's clock gives each a later updated_at
            self.emulator.state.seed_contact(key)


class TestConstantContactConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator) -> None:
        emulator.state.seed_contact("ann@example.com", permission="explicit", opt_in_source="Contact",
                                    first_name="Ann")
        emulator.state.seed_contact("bo@example.com", permission="unsubscribed", opt_out_source="Contact")
        emulator.state.seed_contact("cy@example.com", permission="implicit", lists=("newsletter",), tags=("vip",))

    @pytest.fixture
    def connector(self, make_connector) -> ConstantContactConnector:
        # Three tries with short waits keep the retry scenarios quick.
        return make_connector(max_attempts=3, retry_wait_initial=0.05)

    @pytest.fixture
    def service(self, emulator: ConstantContactEmulator) -> ConstantContactAccount:
        return ConstantContactAccount(emulator)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("dee@example.com", "upsert", "subscribed", {"first_name": "Dee"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]

"""The HubSpot connector passes the standard connector tests and the behaviour scenarios against
the emulator."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance
from segsync.testing.service import NOT_SUBSCRIBED, OPTED_OUT, SUBSCRIBED, Exchange, RemoteContact, ServiceAdapter
from segsync_hubspot import HubSpotConnector
from segsync_hubspot.emulator import HubSpotEmulator
from segsync_hubspot.mapping import LIFECYCLE_FROM_HUBSPOT
from segsync_hubspot.settings import HubSpotSettings

SUBSCRIPTION = 1


class HubSpotAccount(ServiceAdapter):
    def __init__(self, emulator: HubSpotEmulator, settings: HubSpotSettings) -> None:
        self.emulator, self.settings = emulator, settings
        self.page_size = settings.page_size

    def contact(self, key: str) -> RemoteContact | None:
        state = self.emulator.state
        found = state.contact_by_email(key)
        if found is None:
            return None
        # Opted out of all email is HubSpot's own opt-out; subscribed means subscribed to the
        # subscription type the connection names; anything else has no marketing permission.
        held = state.statuses.get(key, {}).get(str(SUBSCRIPTION))
        status = OPTED_OUT if key in state.opted_out_of_all else \
            SUBSCRIBED if held is not None and held.status == "SUBSCRIBED" else NOT_SUBSCRIBED
        tags = {lst.name for lst in state.lists.values() if found.id in lst.members}
        attribute_of = {hubspot: name for name, hubspot in self.settings.hubspot_properties().items()}
        attributes = {attribute_of[k]: LIFECYCLE_FROM_HUBSPOT.get(v, v) for k, v in found.properties.items()
                      if k in attribute_of and v}
        return RemoteContact(status, frozenset(tags), attributes)

    def fail_next(self, count: int, status: int, retry_after: float | None = None) -> None:
        # HubSpot's 429 says when to come back by its window (X-HubSpot-RateLimit-Interval-Milliseconds).
        self.emulator.add_fault(status=status, times=count, retry_after=retry_after)

    def exchanges(self) -> Sequence[Exchange]:
        return [Exchange(e.method, e.path, e.status, e.at) for e in self.emulator.requests()]

    def add_contacts(self, keys: Sequence[str]) -> None:
        for key in keys:  # every write moves the account's clock on
            self.emulator.state.add_contact(key)
            self.emulator.state.set_status(key, str(SUBSCRIPTION), "SUBSCRIBED")

    def refused_changes(self) -> Sequence[ContactChange]:
        # A value the account's property does not allow, and an address HubSpot refuses.
        return [ContactChange("conformance.stage@example.com", "upsert", "subscribed", {"lifecycle_stage": "champion"},
                              consent_method="form"),
                ContactChange("conformance.refused@localhost", "upsert", "subscribed", {"first_name": "X"},
                              consent_method="form")]


class TestHubSpotConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator) -> None:
        emulator.state.add_contact("ann@example.com", {"firstname": "Ann", "lifecyclestage": "customer"})
        emulator.state.add_contact("bo@example.com", {"hs_lead_status": "NEW"})
        emulator.state.unsubscribe_all("bo@example.com")

    @pytest.fixture
    def connector(self, make_connector) -> HubSpotConnector:
        # Small pages so the read scenarios page; three tries keep the retry scenarios short.
        return make_connector(subscription_id=SUBSCRIPTION, page_size=5, max_attempts=3)

    @pytest.fixture
    def service(self, emulator: HubSpotEmulator, connector: HubSpotConnector) -> HubSpotAccount:
        return HubSpotAccount(emulator, connector.settings)

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
            ContactChange("dee@example.com", "upsert", "subscribed", {"first_name": "Dee", "lifecycle_stage": "lead"},
                          tags=("vip",), tags_add=("vip",), consent_method="form"),
        ]

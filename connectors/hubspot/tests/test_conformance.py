"""The HubSpot connector passes the standard connector tests against the emulator."""

from __future__ import annotations

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance


class TestHubSpotConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator) -> None:
        emulator.state.add_contact("ann@example.com", {"firstname": "Ann", "lifecyclestage": "customer"})
        emulator.state.add_contact("bo@example.com", {"hs_lead_status": "NEW"})
        emulator.state.unsubscribe_all("bo@example.com")

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
            ContactChange("dee@example.com", "upsert", "subscribed", {"first_name": "Dee", "lifecycle_stage": "lead"},
                          tags=("vip",), tags_add=("vip",)),
        ]

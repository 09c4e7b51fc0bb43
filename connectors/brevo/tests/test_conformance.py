"""The Brevo connector passes the standard connector tests against the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance


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
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("dee@example.com", "upsert", "subscribed", {"first_name": "Dee"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]

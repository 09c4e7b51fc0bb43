"""The Constant Contact connector passes the standard connector tests against the emulator."""

from __future__ import annotations

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance


class TestConstantContactConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator) -> None:
        emulator.state.seed_contact("ann@example.com", permission="explicit", opt_in_source="Contact",
                                    first_name="Ann")
        emulator.state.seed_contact("bo@example.com", permission="unsubscribed", opt_out_source="Contact")
        emulator.state.seed_contact("cy@example.com", permission="implicit", lists=("newsletter",), tags=("vip",))

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("dee@example.com", "upsert", "subscribed", {"first_name": "Dee"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]

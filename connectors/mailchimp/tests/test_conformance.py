"""The Mailchimp connector passes the standard connector tests against the emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segsync import ContactChange
from segsync.testing.conformance import ConnectorConformance

from .conftest import LIST_ID


class TestMailchimpConformance(ConnectorConformance):
    @pytest.fixture(autouse=True)
    def _seed(self, emulator) -> None:
        now = emulator.state.clock()
        emulator.state.seed_member(LIST_ID, "ann@example.com", "subscribed", merge_fields={"FNAME": "Ann"},
                                   last_changed=now - timedelta(days=2))
        emulator.state.seed_member(LIST_ID, "bo@example.com", "unsubscribed", last_changed=now - timedelta(days=2))
        campaign = emulator.state.seed_campaign(LIST_ID, "c1", now - timedelta(days=1), ["ann@example.com"])
        emulator.state.record_activity(campaign.campaign_id if hasattr(campaign, "campaign_id") else "c1",
                                       "ann@example.com", "open", now - timedelta(hours=20))

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("cy@example.com", "upsert", "subscribed", {"first_name": "Cy"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]

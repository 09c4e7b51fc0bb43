"""The conformance kit on recorded exchanges: what a connector author's CI runs without an
account. Replayed by default; `SEGSYNC_RECORD=1` records them again against the emulator
(docs/testing-connectors.md, "Recorded exchanges")."""

from __future__ import annotations

from pathlib import Path

import pytest

from segsync import ContactChange, Connector
from segsync.testing.recording import BASE_URL, RecordedConformance, replaying
from segsync.testing.service import ServiceAdapter
from segsync_mailchimp import MailchimpConnector, MailchimpSettings

from .conftest import API_KEY, LIST_ID, MERGE_FIELDS
from .test_conformance import audience_with_stepped_clock, seed

# Pages of 5 keep the recorded read scenarios small (three pages of 13 members, not of 2,003).
SMALL_PAGE = 5


class TestMailchimpRecorded(RecordedConformance):
    recordings = Path(__file__).parent / "recordings" / "conformance"

    @pytest.fixture(autouse=True)
    def _small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("segsync_mailchimp.reader.PAGE", SMALL_PAGE)

    def live(self, request: pytest.FixtureRequest) -> tuple[Connector, ServiceAdapter, str]:
        emulator = request.getfixturevalue("emulator")
        seed(emulator)
        service = audience_with_stepped_clock(emulator, request.getfixturevalue("monkeypatch"), SMALL_PAGE)
        connector = request.getfixturevalue("make_connector")()
        return connector, service, f"http://127.0.0.1:{emulator.port}"

    def offline(self, request: pytest.FixtureRequest, base_url: str) -> Connector:
        settings = MailchimpSettings(api_key=API_KEY, list_id=LIST_ID, host=f"{base_url}/3.0", timeout=5.0,
                                     retry_wait_initial=0.01, retry_wait_max=0.5, merge_fields=MERGE_FIELDS)
        return MailchimpConnector("mailchimp_test", settings, request.getfixturevalue("tmp_path"))

    @pytest.fixture
    def sample_changes(self) -> list[ContactChange]:
        return [
            ContactChange("cy@example.com", "upsert", "subscribed", {"first_name": "Cy"}, tags_add=("vip",), tags=("vip",)),
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
        ]


def test_replay_notices_a_change_in_what_the_connector_sends(tmp_path: Path) -> None:
    """A connector that now sends something else (here: first_name to another merge field) fails
    offline, naming the request the recording does not hold."""
    recorded = TestMailchimpRecorded.recordings / "test_create_lands_a_subscribed_contact_with_its_attributes.yaml"
    settings = MailchimpSettings(api_key=API_KEY, list_id=LIST_ID, host=f"{BASE_URL}/3.0", timeout=5.0,
                                 max_attempts=2, retry_wait_initial=0.01, merge_fields={"first_name": "LNAME"})
    connector = MailchimpConnector("mailchimp_test", settings, tmp_path)
    with pytest.raises(AssertionError) as failed:
        with replaying(recorded, secrets=[API_KEY]):
            result = connector.write([ContactChange("conformance.create@example.com", "upsert", "subscribed",
                                                    {"first_name": "Ada"}, consent_method="form")])
    connector.close()
    assert [o.status for o in result.outcomes] == ["retryable"]
    assert str(failed.value).startswith(
        "requests the recording does not hold: ['POST /3.0/lists/aud0001?exclude_fields=new_members,updated_members,_links "
        '{"members":[{"email_address":"conformance.create@example.com","merge_fields":{"LNAME":"Ada"}')

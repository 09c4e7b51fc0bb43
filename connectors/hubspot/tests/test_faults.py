"""Failures the way HubSpot fails: 429s from either limit, server errors, timeouts, resets,
a refused token. Retried within the settings' bounds; what still fails is retryable, named."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from segsync import ContactChange, Stream
from segsync_hubspot import HubSpotConnector, HubSpotSettings
from segsync_hubspot.emulator import HubSpotEmulator
from segsync_hubspot.writer import AccessRefused

UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def _change(email: str = "ann@example.com") -> ContactChange:
    return ContactChange(email, "upsert", "subscribed", {"first_name": "Ann"})


@pytest.mark.parametrize("fault", [
    {"status": 429}, {"status": 500}, {"status": 502}, {"kind": "reset"}, {"kind": "timeout", "delay": 1.5},
])
def test_a_failed_upsert_is_retried_and_written_once(emulator, connector, fault) -> None:
    emulator.add_fault(path=UPSERT, **fault)
    result = connector.write([_change()])
    assert result.outcomes[0].status == "ok"
    while emulator.in_flight:  # a timed-out request is logged when the emulator has done it
        time.sleep(0.05)
    attempts = emulator.requests("POST", UPSERT)
    assert len(attempts) == 2 and attempts[0].fault == fault.get("kind", str(fault.get("status")))
    assert result.calls == 3  # the property read and two upsert attempts
    # A timed-out upsert was applied anyway; the retry updates the same contact.
    assert [c.properties["email"] for c in emulator.state.contacts.values()] == ["ann@example.com"]


def test_failures_past_the_attempts_leave_changes_retryable_with_hubspots_answer(emulator, make_connector) -> None:
    connector = make_connector(max_attempts=2)
    emulator.add_fault(path=UPSERT, status=503, times=2)
    result = connector.write([_change(), _change("bo@example.com")])
    assert [(o.status, o.reason) for o in result.outcomes] == [
        ("retryable", "HTTP 503: injected HTTP 503")] * 2
    emulator.add_fault(path="unsubscribe-all", status=500, times=2)
    opt_out = connector.write([ContactChange("ann@example.com", "upsert", "unsubscribed", {},
                                             previous_status="subscribed")])
    assert (opt_out.outcomes[0].status, opt_out.outcomes[0].reason) == (
        "retryable", "HubSpot unsubscribe from all email failed for a***@e***.com: HTTP 500: injected HTTP 500")


def test_the_ten_second_window_is_paced_from_hubspots_headers_without_429s(token, tmp_path) -> None:
    with HubSpotEmulator(access_token=token, ten_secondly=3, window_ms=300) as emulator:
        connector = HubSpotConnector("hubspot", HubSpotSettings(access_token=SecretStr(token), host=emulator.url),
                                     tmp_path)
        for i in range(7):
            assert connector.write([_change(f"p{i}@example.com")]).outcomes[0].status == "ok"
        connector.close()
        answers = [e.status for e in emulator.log]
    assert answers.count(429) == 0 and len(answers) == 8
    assert connector.api.session.pacer.waits >= 2


def test_searches_over_hubspots_per_second_limit_are_retried(token, tmp_path) -> None:
    with HubSpotEmulator(access_token=token, search_per_second=1) as emulator:
        for i in range(5):
            emulator.state.add_contact(f"p{i}@example.com")
        settings = HubSpotSettings(access_token=SecretStr(token), host=emulator.url, page_size=3,
                                   search_requests_per_second=100, retry_wait_initial=0.3)
        connector = HubSpotConnector("hubspot", settings, tmp_path)
        rows = [r for b in connector.read(Stream.CONTACTS, None) for r in b.rows]
        connector.close()
        limited = [e for e in emulator.log if e.status == 429]
    assert [r["email"] for r in rows] == [f"p{i}@example.com" for i in range(5)]
    # HubSpot's search 429: its own policy, and no rate-limit headers to pace by.
    assert limited and {e.path for e in limited} == {"/crm/v3/objects/contacts/search"}


def test_a_refused_token_is_reported_without_the_token(emulator, make_connector, token) -> None:
    wrong = "pat-na1-00000000-dead-beef-0000-000000000000"
    connector = make_connector(access_token=SecretStr(wrong))
    (problem,) = connector.check()
    assert problem == (f"HubSpot at {emulator.url} is not usable: HTTP 401: Authentication credentials not found. "
                       "This API supports OAuth 2.0 authentication.")
    with pytest.raises(AccessRefused) as refused:
        connector.write([_change()])
    assert wrong not in str(refused.value) and token not in str(refused.value)
    assert all(e.status == 401 for e in emulator.log)

"""Documented limits: the emulator enforces them, the connector keeps to them and retries 429s."""

from __future__ import annotations

import requests

from segsync import ContactChange
from segsync_constantcontact.api import SteadyPacer
from segsync_constantcontact.emulator import ConstantContactEmulator


def test_the_emulator_answers_429_past_four_requests_a_second_and_the_daily_quota() -> None:
    with ConstantContactEmulator(rate_limits={"other": ((4, 1.0), (6, 86_400.0))}) as emu:
        headers = {"Authorization": f"Bearer {emu.access_token}"}
        statuses = [requests.get(f"{emu.url}/contact_tags", headers=headers, timeout=5).status_code for _ in range(5)]
        assert statuses[:4] == [200] * 4 and statuses[4] == 429
        answer = requests.get(f"{emu.url}/contact_tags", headers=headers, timeout=5)
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
        assert answer.json() == [{"error_key": "too_many_requests", "error_message": "Too many requests."}]


def test_requests_are_spaced_to_the_limit_with_a_margin() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = SteadyPacer(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.before("/v3/contacts")
    assert [round(s, 3) for s in slept] == [0.275, 0.275, 0.275, 0.275]


def test_a_connector_at_the_documented_rate_never_earns_a_429(tmp_path) -> None:
    from pydantic import SecretStr

    from segsync_constantcontact import ConstantContactConnector, ConstantContactSettings

    with ConstantContactEmulator(activity_delay=0.01) as emu:
        connector = ConstantContactConnector("cc", ConstantContactSettings(
            access_token=SecretStr(emu.access_token), host=emu.url, activity_poll_seconds=0.01), tmp_path)
        result = connector.write([ContactChange(f"p{n}@example.com", "upsert", "subscribed", {},
                                                tags_add=("vip",)) for n in range(3)])
        connector.close()
        assert {o.status for o in result.outcomes} == {"ok"}
        assert [e for e in emu.calls() if e.status == 429] == []
        assert result.calls >= 7  # more than 4 a second would have earned a 429


def test_a_429_is_retried_after_its_retry_after(emulator, connector) -> None:
    emulator.inject("status", path="/v3/activities/contacts_json_import", status=429, retry_after=0.05)
    result = connector.write([ContactChange("ann@example.com", "upsert", "subscribed", {})])
    assert result.outcomes[0].status == "ok"
    assert [e.status for e in emulator.calls("POST", "/v3/activities/contacts_json_import")] == [429, 201]


def test_dropped_connections_and_server_errors_are_retried(emulator, make_connector) -> None:
    connector = make_connector(retry_wait_initial=0.01)
    emulator.state.seed_contact("ann@example.com")
    emulator.inject("reset", path="/v3/contacts$")
    emulator.inject("status", path="/v3/contacts/", method="PUT", status=500)
    result = connector.write([ContactChange("ann@example.com", "upsert", "unsubscribed", {})])
    assert result.outcomes[0].status == "ok"
    assert [e.status for e in emulator.calls("PUT")] == [500, 200]
    assert emulator.state.by_email("ann@example.com")["email_address"]["permission_to_send"] == "unsubscribed"


def test_activities_are_asynchronous_and_polled_until_done(emulator, connector) -> None:
    emulator.state.activity_delay = 0.2
    connector.write([ContactChange("ann@example.com", "upsert", "subscribed", {})])
    polls = emulator.calls("GET", "/v3/activities/")
    assert len(polls) >= 2
    assert emulator.state.by_email("ann@example.com") is not None


def test_a_connection_that_keeps_dropping_leaves_the_changes_retryable(emulator, make_connector) -> None:
    connector = make_connector(max_attempts=2, retry_wait_initial=0.01)
    emulator.inject("reset", 2, path="/v3/activities/contacts_json_import")
    [outcome] = connector.write([ContactChange("ann@example.com", "upsert", "subscribed", {})]).outcomes
    assert outcome.status == "retryable"
    assert outcome.reason.startswith("Constant Contact API POST /activities/contacts_json_import: ")
    assert emulator.state.by_email("ann@example.com") is None


def test_under_random_faults_every_change_lands_or_is_retried_and_a_rerun_finishes(tmp_path) -> None:
    from pydantic import SecretStr
    from segsync.testing.faults import RandomFaults

    from segsync_constantcontact import ConstantContactConnector, ConstantContactSettings

    faults = RandomFaults(0.3, kinds=("429", "5xx", "reset"), seed=7, retry_after=0.01)
    with ConstantContactEmulator(activity_delay=0.01, rate_limits=None,
                                 random_faults=faults) as emu:
        connector = ConstantContactConnector("cc", ConstantContactSettings(
            access_token=SecretStr(emu.access_token), host=emu.url, requests_per_second=1000,
            activity_poll_seconds=0.01, retry_wait_initial=0.01, retry_wait_max=0.05), tmp_path)
        changes = [ContactChange(f"p{n}@example.com", "upsert", "subscribed", {"first_name": f"P{n}"},
                                 tags_add=("vip",) if n % 2 else ()) for n in range(20)]
        pending = changes
        for _ in range(3):
            outcomes = connector.write(pending).outcomes
            assert {o.status for o in outcomes} <= {"ok", "retryable"}
            retry = {o.contact_key for o in outcomes if o.status == "retryable"}
            pending = [c for c in pending if c.contact_key in retry]
            if not pending:
                break
        connector.close()
        assert pending == [] and sum(faults.injected.values()) > 0
        vip = next(t for t, tag in emu.state.tags.items() if tag["name"] == "vip")
        for n in range(20):
            contact = emu.state.by_email(f"p{n}@example.com")
            assert contact["first_name"] == f"P{n}"
            assert contact["taggings"] == ([vip] if n % 2 else [])
        assert len(emu.state.contacts) == 20 and len(emu.state.tags) == 1

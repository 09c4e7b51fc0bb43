from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from segsync_brevo.api import BrevoApi, BrevoApiError
from segsync_brevo.emulator import BrevoEmulator


@pytest.fixture
def tight():
    emu = BrevoEmulator(api_key="k", rate_limits={"contacts": ((4, 1.0),), "other": ((100, 3600.0),)})
    emu.start()
    yield emu
    emu.stop()


def test_pacing_from_headers_avoids_429(tight):
    api = BrevoApi(SecretStr("k"), tight.url)
    started = time.monotonic()
    for _ in range(10):
        api.get_contacts(limit=10, offset=0, modified_since=None)
    elapsed = time.monotonic() - started
    assert [e.status for e in tight.requests()] == [200] * 10
    assert api.calls == 10 and api.pacer.waits == 2
    assert elapsed >= 1.9  # three windows of four requests a second


def test_429_backs_off_using_reset_header(emulator):
    emulator.add_fault(kind="status", status=429, path="/contacts/lists", times=2, reset=0.2)
    api = BrevoApi(SecretStr("test-key"), emulator.url)
    started = time.monotonic()
    assert api.get_lists(50, 0)["count"] == 0
    assert time.monotonic() - started >= 0.4
    assert [e.status for e in emulator.requests()] == [429, 429, 200]
    assert api.calls == 3 and api.retries == 2


@pytest.mark.parametrize("kind", ["status", "drop", "timeout"])
def test_recovers_from_5xx_drops_and_timeouts(emulator, kind):
    emulator.add_fault(kind=kind, status=503, path="/contacts/folders", times=2, delay=1.0)
    api = BrevoApi(SecretStr("test-key"), emulator.url, timeout=0.3)
    assert api.get_folders(50, 0)["count"] == 1
    assert api.calls == 3
    deadline = time.monotonic() + 5
    while len(emulator.requests()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # timed-out requests are logged when the server finishes them
    by_start = sorted(emulator.requests(), key=lambda e: e.started)
    assert [e.fault for e in by_start] == [kind, kind, None]


def test_errors_surface_code_and_message(emulator):
    api = BrevoApi(SecretStr("test-key"), emulator.url, max_attempts=2)
    with pytest.raises(BrevoApiError) as info:
        api.create_list("x", 999)
    assert info.value.status == 404 and info.value.code == "document_not_found"
    assert "Folder ID does not exist" in str(info.value)
    bad = BrevoApi(SecretStr("wrong"), emulator.url)
    with pytest.raises(BrevoApiError) as info:
        bad.get_lists(10, 0)
    assert (info.value.status, info.value.code) == (401, "unauthorized")
    assert "wrong" not in repr(bad.__dict__.get("_timeout"))


def test_persistent_5xx_becomes_retryable_outcome(emulator, make_connector):
    from segsync import ContactChange

    emulator.state.seed_contact("a@example.com")
    connector = make_connector(max_attempts=2)
    emulator.add_fault(kind="status", status=500, path="/contacts/batch", times=5)
    result = connector.write([ContactChange("a@example.com", "upsert", "unsubscribed", previous_status="subscribed")])
    assert result.outcomes[0].status == "retryable"
    assert emulator.state.contact("a@example.com").email_blacklisted is False


def _peak_overlap(entries) -> int:
    edges = sorted([(e.started, 1) for e in entries] + [(e.finished, -1) for e in entries])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_connections_on_one_account_share_its_request_budget(emulator):
    # Two clients of one account (as two connections or processes would be), each allowed 2:
    # together they still never have more than 2 requests at Brevo.
    import threading

    emulator.latency = 0.05
    apis = [BrevoApi(SecretStr("test-key"), emulator.url, max_connections=2) for _ in range(2)]
    threads = [threading.Thread(target=lambda a=a: [a.get_folders(50, 0) for _ in range(4)])
               for a in apis for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # (16 answered; the 10-a-second rate limit may add a 429 and its retry)
    assert sum(e.status == 200 for e in emulator.requests("GET", "/v3/contacts/folders")) == 16
    assert _peak_overlap(emulator.requests()) == 2

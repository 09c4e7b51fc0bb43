from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from segsync.http import RatePacer

from segsync_brevo.api import RATE_LIMIT_HEADERS, BrevoApi, BrevoApiError
from segsync_brevo.emulator import BrevoEmulator
from segsync_brevo.limits import bucket_for


@pytest.fixture
def tight():
    emu = BrevoEmulator(api_key="k", rate_limits={"contacts": ((4, 1.0),), "other": ((100, 3600.0),)})
    emu.start()
    yield emu
    emu.stop()


class FakeClock:
    """Seconds that pass only when someone sleeps: shared by the emulator's rate limiter and
    the client's pacer, so pacing is checked exactly, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacing_from_headers_avoids_429(tight):
    clock = FakeClock()
    tight.limiter.clock = clock
    pacer = RatePacer(RATE_LIMIT_HEADERS, bucket=bucket_for, clock=clock, sleep=clock.sleep)
    api = BrevoApi(SecretStr("k"), tight.url, pacer=pacer, sleep=clock.sleep)
    for _ in range(10):
        api.get_contacts(limit=10, offset=0, modified_since=None)
    assert [e.status for e in tight.requests()] == [200] * 10
    assert api.calls == 10 and api.pacer.waits == 2
    # three windows of four requests a second: the pacer waited out two whole windows
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]
    assert clock.now - 1000.0 == pytest.approx(2.0)


def test_429_backs_off_using_reset_header(emulator):
    emulator.add_fault(kind="status", status=429, path="/contacts/lists", times=2, reset=0.2)
    sleeps: list[float] = []
    api = BrevoApi(SecretStr("test-key"), emulator.url, sleep=sleeps.append)
    assert api.get_lists(50, 0)["count"] == 0
    # each retry waited for the window the 429 reported (0.2 s) and a hair more, not a guess
    assert sleeps == [pytest.approx(0.21), pytest.approx(0.21)]
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

"""segsync.testing's helpers do what their docstrings promise (the fake clock, record builders,
the scratch store, the in-memory destination, the pytest fixtures)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from segsync import ContactChange, OutcomeStatus, Stream, WriteResult
from segsync.testing import (
    FakeClock,
    MemoryConnector,
    MemorySettings,
    ScratchStore,
    batch,
    change,
    consent,
    contact,
    event,
    reset_memory,
)

UTC = timezone.utc


def test_importing_segsync_testing_imports_nothing_until_a_helper_is_used() -> None:
    program = (
        "import json, sys, segsync.testing\n"
        "before = sorted(m for m in sys.modules if m.startswith(('segsync', 'pydantic', 'duckdb', 'pytest')))\n"
        "segsync.testing.FakeClock\n"
        "after = sorted(m for m in sys.modules if m.startswith('segsync.testing.'))\n"
        "print(json.dumps([before, after]))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [
        ["segsync", "segsync.hookspecs", "segsync.lazy", "segsync.testing"], ["segsync.testing.clock"]]


def test_the_fake_clock_stands_still_until_moved() -> None:
    clock = FakeClock("2025-03-01T12:00:00+02:00")
    assert clock() == clock.now() == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert clock().tzinfo is UTC
    assert clock.advance(days=1, hours=2) == datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
    assert clock.advance(timedelta(minutes=5)) == datetime(2025, 3, 2, 12, 5, tzinfo=UTC)
    assert clock() == datetime(2025, 3, 2, 12, 5, tzinfo=UTC)
    assert clock.set(datetime(2024, 1, 1, tzinfo=UTC)) == datetime(2024, 1, 1, tzinfo=UTC)
    assert repr(clock) == "FakeClock('2024-01-01T00:00:00+00:00')"
    assert FakeClock()() == datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"^a clock does not go back \(-1 day, 0:00:00\)$"):
        clock.advance(days=-1)
    with pytest.raises(ValueError, match="needs a time with a zone"):
        FakeClock("2025-01-01T00:00:00")
    assert clock() == datetime(2024, 1, 1, tzinfo=UTC)  # a refused step changed nothing


def test_record_builders_make_rows_the_store_takes_as_they_are() -> None:
    rows = {
        Stream.CONTACTS: [contact("Ann@Example.com", first_name="Ann", country="de", tier="gold", company=None)],
        Stream.CONSENT: [consent("ann@example.com", "opted_out", datetime(2024, 5, 1, tzinfo=UTC), "email_link")],
        Stream.EVENTS: [event("ann@example.com", "order.completed", "2024-05-02T10:00:00Z", value=30, currency="EUR"),
                        event("ann@example.com", properties={"campaign_id": "c1"})],
    }
    assert rows[Stream.CONTACTS][0] == {"email": "Ann@Example.com", "first_name": "Ann", "country": "de",
                                        "tier": "gold"}
    assert rows[Stream.CONSENT][0] == {"email": "ann@example.com", "channel": "email", "purpose": "marketing",
                                       "status": "opted_out", "timestamp": "2024-05-01T00:00:00+00:00",
                                       "method": "email_link"}
    assert rows[Stream.EVENTS][1] == {"email": "ann@example.com", "type": "email.opened",
                                      "timestamp": "2024-01-01T00:00:00Z",
                                      "id": "email.opened:ann@example.com:2024-01-01T00:00:00Z",
                                      "properties": {"campaign_id": "c1"}}
    with ScratchStore("shop") as store:
        for stream in (Stream.CONTACTS, Stream.CONSENT, Stream.EVENTS):
            result = store.ingest(batch(stream, *rows[stream], cursor={"page": 1}))
            assert (result.loaded, result.rejected, result.errors) == (len(rows[stream]), 0, []), stream
        assert store.query("SELECT contact_key, first_name, country FROM contacts") == [
            ("ann@example.com", "Ann", "DE")]
        assert store.query("SELECT status, method FROM consent_ledger") == [("opted_out", "email_link")]
        assert store.query("SELECT type, value FROM events ORDER BY type") == [
            ("email.opened", None), ("order.completed", 30.0)]
        # The same event built twice is one event (its default id is made of what it is).
        assert store.ingest(batch(Stream.EVENTS, event("ann@example.com", properties={"campaign_id": "c1"}))).loaded == 0
        assert store.query("SELECT count(*) FROM events") == [(2,)]


def test_the_scratch_store_reports_bad_records_by_record_and_field() -> None:
    with ScratchStore("crm", event_types={"webinar.attended": "Attended a webinar"}) as store:
        result = store.ingest(batch(Stream.EVENTS, event("ann@example.com", "webinar.attended"),
                                    event("bo@example.com", "email.opened", "2024-01-01T00:00:00")))
        assert (result.rows, result.loaded, result.rejected) == (2, 1, 1)
        assert store.query("SELECT connection, record, field FROM record_errors") == [("crm", "crm record 2", "timestamp")]
    with pytest.raises(ValueError, match="has no time zone"):
        event(timestamp=datetime(2024, 1, 1))


def test_change_builds_what_the_push_stage_hands_a_destination() -> None:
    first = change("ann@example.com", tags=("vip", "new"), attributes={"first_name": "Ann"})
    assert first == ContactChange("ann@example.com", "upsert", "subscribed", {"first_name": "Ann"},
                                  ("vip", "new"), ("vip", "new"), (), None, None, "form")
    later = change("ann@example.com", status="unsubscribed", tags=("vip",), tags_add=(), tags_remove=("new",),
                   previous_status="subscribed", external_id="x-1", consent_method=None)
    assert (later.tags, later.tags_add, later.tags_remove, later.previous_status, later.external_id,
            later.consent_method) == (("vip",), (), ("new",), "subscribed", "x-1", None)
    assert change(op="delete", status="none").op == "delete"


def test_the_memory_connector_answers_as_its_settings_say(tmp_path) -> None:
    reset_memory()
    settings = MemorySettings(api_key=SecretStr("k"), reject=["bo@example.com"], retry=["cy@example.com"])
    connector = MemoryConnector("mem", settings, tmp_path)
    result = connector.write([change("ann@example.com", tags=("vip",), attributes={"first_name": "Ann"}),
                              change("bo@example.com"), change("cy@example.com")])
    assert isinstance(result, WriteResult) and result.calls == 1
    assert [(o.contact_key, o.status, o.reason, o.field, o.external_id) for o in result.outcomes] == [
        ("ann@example.com", OutcomeStatus.OK, None, None, "m-ann@example.com"),
        ("bo@example.com", OutcomeStatus.REJECTED, "Invalid Resource", "email", None),
        ("cy@example.com", OutcomeStatus.RETRYABLE, "503 from the service", None, None)]
    assert MemoryConnector.held == {"mem": {"ann@example.com": {"status": "subscribed", "tags": ["vip"],
                                                                "first_name": "Ann"}}}
    connector.write([change("ann@example.com", op="delete", status="none")])
    assert (MemoryConnector.held, MemoryConnector.calls) == ({"mem": {}}, {"mem": 2})
    down = MemoryConnector("down", MemorySettings(api_key=SecretStr("k"), fail=True), tmp_path)
    with pytest.raises(ConnectionError, match="^the service is down$"):
        down.write([change()])
    reset_memory()
    assert (MemoryConnector.held, MemoryConnector.calls) == ({}, {})


def test_the_pytest_plugin_offers_a_fake_clock_and_an_empty_memory_destination(
    fake_clock, memory_destination, segsync_project
) -> None:
    assert fake_clock() == datetime(2025, 1, 1, tzinfo=UTC)
    assert memory_destination is MemoryConnector
    assert (memory_destination.held, memory_destination.calls) == ({}, {})
    assert (segsync_project / "segsync.toml").read_text() == '[store]\npath = "segsync.duckdb"\n'

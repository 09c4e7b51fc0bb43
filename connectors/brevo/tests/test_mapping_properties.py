"""Property tests of the contact, blocklist and event mapping: any payload becomes rows, nothing,
or a PayloadError naming the field; a well-formed payload becomes rows the store takes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from segsync import Batch, Stream
from segsync.payload import PayloadError
from segsync.testing import ScratchStore
from segsync.testing.payloads import json_values, not_text, with_field

from segsync_brevo import mapping

REVERSE = {"FIRSTNAME": "first_name", "LASTNAME": "last_name"}
LIST_NAMES = {1: "segsync", 2: "vip"}
CONTACT_KEYS = ["id", "email", "attributes", "listIds", "emailBlacklisted", "createdAt", "modifiedAt"]

times = st.datetimes(timezones=st.just(timezone.utc)).map(
    lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
addresses = st.builds("{}@example.com".format, st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True))
attribute_values = st.text(max_size=40) | st.integers(-10**6, 10**6) | st.booleans() | st.none()


@st.composite
def contacts(draw) -> dict:
    return {
        "id": draw(st.integers(1, 10**9)),
        "email": draw(addresses),
        "emailBlacklisted": draw(st.booleans()),
        "smsBlacklisted": False,
        "attributes": draw(st.dictionaries(st.sampled_from(["FIRSTNAME", "LASTNAME", "COMPANY", "PLAN"]),
                                           attribute_values, max_size=4)),
        "listIds": draw(st.lists(st.integers(1, 5), max_size=3, unique=True)),
        "createdAt": draw(times),
        "modifiedAt": draw(times),
    }


@pytest.fixture(scope="module")
def store() -> Iterator[ScratchStore]:
    with ScratchStore("brevo") as store:
        yield store


def _rows(contact):
    return mapping.contact_row(contact, REVERSE, LIST_NAMES), mapping.blocklist_consent_row(contact)


@settings(max_examples=15)
@given(batch=st.lists(contacts(), min_size=1, max_size=25))
def test_well_formed_contacts_map_to_rows_the_store_takes(store, batch) -> None:
    rows, consents = [], []
    for contact in batch:
        row, consent = _rows(contact)
        assert row["email"] == contact["email"]
        assert row["external_id"] == str(contact["id"])
        assert row["external"]["email_blacklisted"] is contact["emailBlacklisted"]
        assert row["external"]["lists"] == sorted(LIST_NAMES.get(i, str(i)) for i in contact["listIds"])
        # Only a blocklisted contact says anything about consent (an opt-out); never an opt-in.
        if contact["emailBlacklisted"]:
            assert (consent["status"], consent["timestamp"], consent["method"]) == (
                "opted_out", contact["modifiedAt"], "sync")
            consents.append(consent)
        else:
            assert consent is None
        rows.append(row)
    for stream, batch_rows in ((Stream.CONTACTS, rows), (Stream.CONSENT, consents)):
        loaded = store.ingest(Batch(stream, None, rows=batch_rows))
        assert (loaded.rows, loaded.rejected, loaded.errors) == (len(batch_rows), 0, [])


@settings(max_examples=150)
@given(contact=json_values | st.dictionaries(st.sampled_from(CONTACT_KEYS) | st.text(max_size=12), json_values))
def test_any_contact_payload_maps_or_names_a_field(contact) -> None:
    try:
        _rows(contact)
    except PayloadError as exc:
        assert exc.field and exc.reason


@settings(max_examples=150)
@given(contact=contacts(), key=st.sampled_from(["email", "attributes", "listIds", "emailBlacklisted", "createdAt", "id"]),
       value=not_text())
def test_a_contact_field_of_the_wrong_type_is_named(contact, key, value) -> None:
    if key == "attributes" and isinstance(value, dict):
        value = [value]
    if key == "listIds" and isinstance(value, list) and all(type(v) is int for v in value):
        value = {"ids": value}
    if key == "emailBlacklisted" and isinstance(value, bool):
        value = [value]
    if key == "id" and type(value) is int:
        value = float(value) + 0.5
    with pytest.raises(PayloadError) as caught:
        mapping.contact_row(with_field(contact, key, value), REVERSE, LIST_NAMES)
    assert caught.value.field == key


@pytest.mark.parametrize(("contact", "field", "reason"), [
    ({"id": 1}, "email", "missing"),
    ({"email": "ann@example.com"}, "id", "missing"),
    ({"id": 1, "email": "ann@example.com", "listIds": [1, "two"]}, "listIds", "not a list of list ids: 'two'"),
    ({"id": 1, "email": "ann@example.com", "emailBlacklisted": "yes"}, "emailBlacklisted",
     "not true/false but text: 'yes'"),
])
def test_odd_contacts_are_named_exactly(contact, field, reason) -> None:
    with pytest.raises(PayloadError) as caught:
        mapping.contact_row(contact, REVERSE, LIST_NAMES)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_blocklisted_contact_without_a_readable_modification_time_is_named() -> None:
    with pytest.raises(PayloadError) as caught:
        mapping.blocklist_consent_row({"id": 1, "email": "ann@example.com", "emailBlacklisted": True,
                                       "modifiedAt": "last week"})
    assert (caught.value.field, caught.value.reason) == ("modifiedAt", "not an ISO 8601 date-time: 'last week'")


@settings(max_examples=100)
@given(item=json_values | st.fixed_dictionaries(
    {"email": json_values, "blockedAt": json_values, "senderEmail": json_values,
     "reason": json_values | st.fixed_dictionaries({"code": json_values, "message": json_values})}))
def test_any_blocked_contact_payload_maps_or_names_a_field(item) -> None:
    try:
        row = mapping.blocked_consent_row(item)
    except PayloadError as exc:
        assert exc.field and exc.reason
    else:
        assert row["status"] in ("opted_out", "bounced", "complained")


@pytest.mark.parametrize(("code", "status", "method"), [
    ("hardBounce", "bounced", "bounce"), ("contactFlaggedAsSpam", "complained", "complaint"),
    ("unsubscribedViaEmail", "opted_out", "email_link"), ("somethingNew", "opted_out", "sync"),
])
def test_a_blocked_contact_maps_its_reason(store, code, status, method) -> None:
    item = {"email": "ann@example.com", "senderEmail": "shop@example.com", "blockedAt": "2024-03-01T10:00:00.000Z",
            "reason": {"code": code, "message": "why"}}
    row = mapping.blocked_consent_row(item)
    assert (row["status"], row["method"], row["timestamp"]) == (status, method, "2024-03-01T10:00:00.000Z")
    loaded = store.ingest(
        Batch(Stream.CONSENT, None, rows=[row]))
    assert (loaded.rows, loaded.rejected) == (1, 0)


def test_a_blocked_contact_without_a_reason_code_is_named() -> None:
    with pytest.raises(PayloadError) as caught:
        mapping.blocked_consent_row({"email": "ann@example.com", "blockedAt": "2024-03-01T10:00:00Z", "reason": {}})
    assert (caught.value.field, caught.value.reason) == ("reason.code", "missing")


@settings(max_examples=100)
@given(event=json_values | st.fixed_dictionaries(
    {"email": json_values, "date": json_values, "event": st.sampled_from(list(mapping.EVENT_TYPES)) | json_values,
     "messageId": json_values, "link": json_values}))
def test_any_event_payload_maps_or_names_a_field(event) -> None:
    try:
        row = mapping.event_row(event)
    except PayloadError as exc:
        assert exc.field and exc.reason
    else:
        assert row is None or row["type"] in {t for t, _ in mapping.EVENT_TYPES.values()}


@settings(max_examples=10)
@given(batch=st.lists(st.tuples(addresses, times, st.sampled_from(list(mapping.EVENT_TYPES)), st.text(max_size=30)),
                      min_size=1, max_size=25))
def test_well_formed_events_map_to_rows_the_store_takes(store, batch) -> None:
    rows = []
    for number, (email, date, kind, subject) in enumerate(batch):
        event = {"email": email, "date": date, "event": kind, "messageId": f"<m{number}@example.com>", "subject": subject}
        row = mapping.event_row(event)
        assert (row["email"], row["timestamp"], row["type"]) == (email, date, mapping.EVENT_TYPES[kind][0])
        assert row["id"] == mapping.event_id(event)
        rows.append(row)
    loaded = store.ingest(
        Batch(Stream.EVENTS, None, rows=rows))
    assert (loaded.rows, loaded.rejected, loaded.errors) == (len(rows), 0, [])

"""Property tests of the member and activity mapping: any payload becomes rows, nothing, or a
PayloadError naming the field; a well-formed member becomes rows the store takes as they are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from segsync import CONSENT_METHODS, Batch, Stream
from segsync.payload import PayloadError
from segsync.testing import ScratchStore
from segsync.testing.payloads import json_values, not_text, with_field

from segsync_mailchimp import mapping

LIST_ID = "aud0001"
TAG_TO_ATTRIBUTE = {"FNAME": "first_name", "LNAME": "last_name"}
STATUSES = ["subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"]
SOURCES = ["Hosted Signup Form", "Embedded Form", "API - Generic", "API - Zapier", "Admin Add",
           "Import", "", "Something new"]

times = st.datetimes(timezones=st.just(timezone.utc)).map(lambda t: t.replace(microsecond=0).isoformat())
addresses = st.builds(
    "{}@{}".format,
    st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,20}[a-z0-9])?", fullmatch=True).filter(lambda s: ".." not in s),
    st.sampled_from(["example.com", "mail.example.org", "example.co.uk"]),
)
merge_values = st.text(max_size=40) | st.integers(-10**6, 10**6) | st.fixed_dictionaries(
    {"addr1": st.text(max_size=20), "city": st.text(max_size=20), "zip": st.text(max_size=8)})


@st.composite
def members(draw) -> dict:
    email = draw(addresses)
    return {
        "id": mapping.subscriber_hash(email),
        "email_address": email,
        "status": draw(st.sampled_from(STATUSES)),
        "merge_fields": draw(st.dictionaries(st.sampled_from(["FNAME", "LNAME", "COMPANY", "ADDRESS", "BIRTHDAY"]),
                                             merge_values, max_size=4)),
        "timestamp_signup": draw(st.just("") | times),
        "timestamp_opt": draw(st.just("") | times),
        "last_changed": draw(times),
        "source": draw(st.sampled_from(SOURCES)),
        "ip_opt": draw(st.sampled_from(["", "198.51.100.7"])),
        "unsubscribe_reason": draw(st.sampled_from(["", "N/A (Unsubscribed via the unsubscribe link)", "spam"])),
        "tags": [{"id": i, "name": n} for i, n in enumerate(draw(st.lists(st.text(min_size=1, max_size=20), max_size=3)))],
    }


MEMBER_KEYS = ["id", "email_address", "status", "merge_fields", "timestamp_signup", "timestamp_opt",
               "last_changed", "source", "ip_opt", "unsubscribe_reason", "tags"]


def _map(member):
    """Both mappings of one member; anything but a PayloadError fails the test."""
    return (mapping.contact_row(member, TAG_TO_ATTRIBUTE, None), mapping.consent_row(member, LIST_ID))


@pytest.fixture(scope="module")
def store() -> Iterator[ScratchStore]:
    with ScratchStore("mc") as store:
        yield store


@settings(max_examples=15)
@given(batch=st.lists(members(), min_size=1, max_size=25))
def test_well_formed_members_map_to_rows_the_store_takes(store, batch) -> None:
    contacts, consents = [], []
    for member in batch:
        contact, consent = _map(member)
        assert contact["email"] == member["email_address"]
        assert contact["external_id"] == member["id"]
        assert contact["external"]["status"] == member["status"]
        assert contact["external"]["tags"] == sorted(t["name"] for t in member["tags"])
        contacts.append(contact)
        if member["status"] in ("transactional", "archived"):
            assert consent is None
            continue
        assert consent["status"] == mapping.CONSENT_STATUS[member["status"]]
        assert consent["method"] in CONSENT_METHODS
        assert consent["timestamp"] in (member["timestamp_opt"], member["timestamp_signup"], member["last_changed"])
        # Only a form's own sign-up stands for the person's consent; API writes never do.
        if member["source"].startswith("API"):
            assert consent["method"] in ("api", "bounce", "sync", "email_link")
        consents.append(consent)
    # One batch per stream: the store takes every row as it is.
    for stream, rows in ((Stream.CONTACTS, contacts), (Stream.CONSENT, consents)):
        loaded = store.ingest(Batch(stream, None, rows=rows))
        assert (loaded.rows, loaded.rejected, loaded.errors) == (len(rows), 0, [])


@settings(max_examples=150)
@given(member=json_values | st.dictionaries(st.sampled_from(MEMBER_KEYS) | st.text(max_size=12), json_values))
def test_any_payload_maps_or_names_a_field(member) -> None:
    try:
        _map(member)
    except PayloadError as exc:
        assert exc.field and exc.reason


# Fields every member's mapping reads; one of the wrong type is named.
ALWAYS_READ = ["email_address", "status", "merge_fields", "tags", "id", "timestamp_signup"]


@settings(max_examples=150)
@given(member=members(), key=st.sampled_from(ALWAYS_READ), value=not_text())
def test_a_field_of_the_wrong_type_is_named(member, key, value) -> None:
    if key in ("merge_fields",) and isinstance(value, dict):
        value = [value]  # an object is the right type there
    if key == "tags" and isinstance(value, list) and all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in value):
        value = 7
    with pytest.raises(PayloadError) as caught:
        _map(with_field(member, key, value))
    assert caught.value.field == key


@settings(max_examples=100)
@given(member=members().filter(lambda m: m["status"] not in ("transactional", "archived")),
       key=st.sampled_from(["timestamp_signup", "timestamp_opt", "source", "ip_opt", "unsubscribe_reason"]),
       value=not_text() | st.text(min_size=1).filter(lambda t: not t[:1].isdigit()))
def test_a_consent_field_of_the_wrong_shape_is_named(member, key, value) -> None:
    if isinstance(value, str) and not key.startswith("timestamp"):
        value = 12345  # any text is a fine source, address or reason
    with pytest.raises(PayloadError) as caught:
        mapping.consent_row(with_field(member, key, value), LIST_ID)
    assert caught.value.field == key


@pytest.mark.parametrize(("key", "value", "field", "reason"), [
    ("email_address", ..., "email_address", "missing"),
    ("email_address", None, "email_address", "missing"),
    ("status", "zombie", "status", "unknown Mailchimp member status 'zombie'; one of archived, cleaned, "
                                   "pending, subscribed, transactional, unsubscribed"),
    ("status", 3, "status", "not text but a number: 3"),
    ("timestamp_opt", "yesterday", "timestamp_opt", "not an ISO 8601 date-time: 'yesterday'"),
    ("last_changed", ..., "last_changed", "missing"),
])
def test_odd_members_are_named_exactly(key, value, field, reason) -> None:
    member = {"id": "h1", "email_address": "ann@example.com", "status": "unsubscribed",
              "timestamp_opt": "2024-01-01T00:00:00+00:00", "last_changed": "2024-02-01T00:00:00+00:00"}
    with pytest.raises(PayloadError) as caught:
        mapping.consent_row(with_field(member, key, value), LIST_ID)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_huge_merge_field_is_left_to_the_store_to_bound() -> None:
    member = {"email_address": "ann@example.com", "merge_fields": {"FNAME": "é" * 3_000_000}}
    row = mapping.contact_row(member, TAG_TO_ATTRIBUTE, None)
    assert len(row["first_name"]) == 3_000_000


@settings(max_examples=100)
@given(row=json_values | st.fixed_dictionaries(
    {"email_address": json_values, "email_id": json_values, "activity": json_values}))
def test_any_activity_payload_maps_or_names_a_field(row) -> None:
    campaign = {"id": "c1", "list_id": LIST_ID}
    for mapper in (lambda r: mapping.activity_events(r, campaign), lambda r: mapping.unsubscribe_event(r, campaign)):
        try:
            mapper(row)
        except PayloadError as exc:
            assert exc.field and exc.reason

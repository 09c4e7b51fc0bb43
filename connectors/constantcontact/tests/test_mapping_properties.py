"""Property tests of the contact and consent mapping: any payload becomes a row, nothing, or a
PayloadError naming the field; a well-formed contact becomes rows the store takes."""

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

from segsync_constantcontact import mapping

REVERSE = {"company_name": "company", "cf:plan": "plan"}
FIELDS = {"f-1": "plan", "f-2": "size"}
LISTS = {"l-1": "segsync"}
TAGS = {"t-1": "vip"}
KEYS = ["contact_id", "email_address", "first_name", "custom_fields", "list_memberships", "taggings",
        "updated_at", "created_at"]

times = st.datetimes(timezones=st.just(timezone.utc)).map(
    lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
addresses = st.builds("{}@example.com".format, st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True))


@st.composite
def contacts(draw) -> dict:
    permission = draw(st.sampled_from(sorted(mapping.HELD_STATUS)))
    email = {"address": draw(addresses), "permission_to_send": permission,
             "opt_in_source": draw(st.sampled_from(["Contact", "Account"])),
             "confirm_status": draw(st.sampled_from(["confirmed", "pending", "off"])),
             "created_at": draw(times)}
    if permission in ("explicit", "implicit"):
        email["opt_in_date"] = draw(times)
    if permission == "unsubscribed":
        email.update(opt_out_source=draw(st.sampled_from(["Contact", "Account"])), opt_out_date=draw(times))
    return {
        "contact_id": draw(st.uuids()).hex, "email_address": email,
        "first_name": draw(st.text(max_size=20) | st.none()), "company_name": draw(st.text(max_size=20) | st.none()),
        "custom_fields": [{"custom_field_id": f, "value": draw(st.text(max_size=10))}
                          for f in draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True))],
        "list_memberships": draw(st.lists(st.sampled_from(["l-1", "l-2"]), unique=True)),
        "taggings": draw(st.lists(st.sampled_from(["t-1", "t-2"]), unique=True)),
        "created_at": draw(times), "updated_at": draw(times),
    }


@pytest.fixture(scope="module")
def store() -> Iterator[ScratchStore]:
    with ScratchStore("constantcontact") as store:
        yield store


@settings(max_examples=8)
@given(batch=st.lists(contacts(), min_size=1, max_size=25, unique_by=lambda c: c["email_address"]["address"]))
def test_well_formed_contacts_map_to_rows_the_store_takes(store, batch) -> None:
    rows, consents = [], []
    for contact in batch:
        row = mapping.contact_row(contact, REVERSE, FIELDS, LISTS, TAGS)
        assert (row["email"], row["external_id"]) == (contact["email_address"]["address"], contact["contact_id"])
        assert row["external"]["status"] == mapping.HELD_STATUS[contact["email_address"]["permission_to_send"]]
        assert row["external"]["lists"] == sorted(LISTS.get(i, i) for i in contact["list_memberships"])
        rows.append(row)
        consent = mapping.consent_row(contact)
        if contact["email_address"]["permission_to_send"] in mapping.NO_CONSENT:
            assert consent is None
        else:
            # Only the contact's own opt-in carries a method that lifts an opt-out.
            if consent["method"] in ("form", "double_opt_in") and consent["status"] == "opted_in":
                assert contact["email_address"]["opt_in_source"] == "Contact"
            consents.append(consent)
    for stream, batch_rows in ((Stream.CONTACTS, rows), (Stream.CONSENT, consents)):
        loaded = store.ingest(Batch(stream, None, rows=batch_rows))
        assert (loaded.rows, loaded.rejected, loaded.errors) == (len(batch_rows), 0, [])


@settings(max_examples=150)
@given(contact=json_values | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), json_values))
def test_any_contact_payload_maps_or_names_a_field(contact) -> None:
    for to_row in (lambda c: mapping.contact_row(c, REVERSE, FIELDS, LISTS, TAGS), mapping.consent_row):
        try:
            to_row(contact)
        except PayloadError as exc:
            assert exc.field and exc.reason


@settings(max_examples=100)
@given(contact=contacts(), key=st.sampled_from(["contact_id", "first_name", "custom_fields", "taggings"]),
       value=not_text())
def test_a_contact_field_of_the_wrong_type_is_named(contact, key, value) -> None:
    if key in ("custom_fields", "taggings") and isinstance(value, list):
        value = {"items": value}
    with pytest.raises(PayloadError) as caught:
        mapping.contact_row(with_field(contact, key, value), REVERSE, FIELDS, LISTS, TAGS)
    assert caught.value.field == key

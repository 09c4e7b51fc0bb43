"""Pulling contacts and their permission to send: rows, paging, resuming, odd payloads."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from segsync import Stream
from segsync_constantcontact.mapping import consent_row


def _read(connector, stream, cursor=None):
    return list(connector.read(stream, cursor))


def test_contact_rows_carry_attributes_custom_fields_and_the_systems_view(emulator, make_connector) -> None:
    field = emulator.state.add_custom_field("plan")
    other = emulator.state.add_custom_field("shoe size")
    contact = emulator.state.seed_contact("Ann@Example.com", permission="explicit", opt_in_source="Contact",
                                          lists=("newsletter",), tags=("vip", "b2b"), first_name="Ann",
                                          last_name="Lee", job_title="CTO", company_name="Acme")
    contact["custom_fields"] = [{"custom_field_id": field["custom_field_id"], "value": "gold"},
                                {"custom_field_id": other["custom_field_id"], "value": "42"}]
    connector = make_connector(attribute_mapping={"plan": "cf:plan"})
    [batch] = _read(connector, Stream.CONTACTS)
    assert batch.rows == [{
        "email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee", "job_title": "CTO",
        "company": "Acme", "plan": "gold", "constantcontact_shoe_size": "42",
        "external_id": contact["contact_id"],
        "external": {"status": "subscribed", "permission_to_send": "explicit", "lists": ["newsletter"],
                     "tags": ["b2b", "vip"]},
    }]
    assert batch.record_ids == [f"contact {contact['contact_id']}"]
    assert batch.cursor == {"updated_after": batch.cursor["updated_after"]}


def test_pages_follow_next_links_and_the_mark_is_stored_with_the_last_page(emulator, make_connector) -> None:
    for n in range(1203):
        emulator.state.seed_contact(f"p{n}@example.com")
    connector = make_connector()
    batches = _read(connector, Stream.CONTACTS)
    assert [len(b.rows) for b in batches] == [500, 500, 203]
    assert {r["email"] for b in batches for r in b.rows} == {f"p{n}@example.com" for n in range(1203)}
    first, second, last = (b.cursor for b in batches)
    assert first["updated_after"] is None and first["next"].startswith("/v3/contacts?cursor=")
    assert second["updated_after"] is None and second["next"] != first["next"]
    assert set(last) == {"updated_after"}
    times = [datetime.fromisoformat(c["updated_at"]) for c in emulator.state.contacts.values()]
    assert datetime.fromisoformat(second["high_water"]) == max(times[:1000])
    assert datetime.fromisoformat(last["updated_after"]) == max(times)
    queries = [e.query_string for e in emulator.calls("GET", "/v3/contacts$")]
    assert "limit=500" in queries[0] and "include=custom_fields%2Clist_memberships%2Ctaggings" in queries[0]


def test_a_pull_stopped_after_a_page_resumes_without_gaps_or_duplicates(emulator, make_connector) -> None:
    for n in range(1100):
        emulator.state.seed_contact(f"p{n}@example.com")
    connector = make_connector()
    first = next(iter(connector.read(Stream.CONTACTS, None)))
    # The process dies here; the next run starts from the stored cursor.
    rest = _read(connector, Stream.CONTACTS, json.loads(json.dumps(first.cursor)))
    emails = [r["email"] for b in [first, *rest] for r in b.rows]
    assert len(emails) == len(set(emails)) == 1100
    assert _read(connector, Stream.CONTACTS, rest[-1].cursor)[0].rows == []


def test_an_expired_next_link_walks_the_window_again(emulator, make_connector) -> None:
    for n in range(3):
        emulator.state.seed_contact(f"p{n}@example.com")
    connector = make_connector()
    batches = _read(connector, Stream.CONTACTS, {"updated_after": None, "next": "/v3/contacts?cursor=gone",
                                                  "high_water": None})
    assert [r["email"] for b in batches for r in b.rows] == ["p0@example.com", "p1@example.com", "p2@example.com"]


def test_only_contacts_updated_after_the_cursor_are_read(emulator, make_connector) -> None:
    emulator.state.seed_contact("old@example.com", first_name="Old")
    connector = make_connector()
    [done] = _read(connector, Stream.CONTACTS)
    emulator.state.seed_contact("new@example.com", first_name="New")
    old = emulator.state.by_email("old@example.com")
    emulator.state.put_contact(old["contact_id"], {"update_source": "Account", "first_name": "Older"})
    again = _read(connector, Stream.CONTACTS, done.cursor)
    assert sorted((r["email"], r["first_name"]) for b in again for r in b.rows) == [
        ("new@example.com", "New"), ("old@example.com", "Older")]
    assert "updated_after=" in emulator.calls("GET", "/v3/contacts$")[-1].query_string


CONTACT = {"contact_id": "c-1", "updated_at": "2025-03-01T10:00:00Z",
           "created_at": "2025-01-01T09:00:00Z"}


@pytest.mark.parametrize(("email", "expected"), [
    ({"permission_to_send": "explicit", "opt_in_source": "Contact", "confirm_status": "confirmed",
      "opt_in_date": "2025-02-01T08:00:00Z"}, ("opted_in", "double_opt_in", "2025-02-01T08:00:00Z")),
    ({"permission_to_send": "explicit", "opt_in_source": "Contact", "confirm_status": "off",
      "opt_in_date": "2025-02-01T08:00:00Z"}, ("opted_in", "form", "2025-02-01T08:00:00Z")),
    ({"permission_to_send": "explicit", "opt_in_source": "Account", "opt_in_date": "2025-02-01T08:00:00Z"},
     ("opted_in", "api", "2025-02-01T08:00:00Z")),
    ({"permission_to_send": "implicit", "opt_in_source": "Contact", "created_at": "2025-01-01T09:00:00Z"},
     ("opted_in", "import", "2025-01-01T09:00:00Z")),
    ({"permission_to_send": "pending_confirmation", "opt_in_source": "Contact",
      "created_at": "2025-01-01T09:00:00Z"}, ("pending", "double_opt_in", "2025-01-01T09:00:00Z")),
    ({"permission_to_send": "pending_confirmation", "opt_in_source": "Account"},
     ("pending", "api", "2025-03-01T10:00:00Z")),
    ({"permission_to_send": "unsubscribed", "opt_out_source": "Contact", "opt_out_date": "2025-02-02T00:00:00Z"},
     ("opted_out", "email_link", "2025-02-02T00:00:00Z")),
    ({"permission_to_send": "unsubscribed", "opt_out_source": "Account", "opt_out_date": "2025-02-02T00:00:00Z"},
     ("opted_out", "admin", "2025-02-02T00:00:00Z")),
])
def test_permission_to_send_maps_to_consent_and_only_the_contacts_own_opt_in_can_lift(email, expected) -> None:
    row = consent_row({**CONTACT, "email_address": {"address": "ann@example.com", **email}})
    assert (row["status"], row["method"], row["timestamp"]) == expected
    assert row["email"] == "ann@example.com" and row["channel"] == "email" and row["purpose"] == "marketing"
    assert row["evidence"].startswith(f"constantcontact contact c-1; permission_to_send {email['permission_to_send']}")


@pytest.mark.parametrize("permission", ["not_set", "temp_hold"])
def test_permissions_that_state_no_consent_give_no_record(permission) -> None:
    assert consent_row({**CONTACT, "email_address": {"address": "a@example.com",
                                                     "permission_to_send": permission}}) is None


def test_an_odd_contact_is_a_record_error_naming_it_and_the_field_and_the_page_still_loads(
        emulator, make_connector) -> None:
    good = emulator.state.seed_contact("good@example.com")
    bad = emulator.state.seed_contact("bad@example.com")
    bad["email_address"]["permission_to_send"] = "maybe"
    odd = emulator.state.seed_contact("odd@example.com")
    odd["taggings"] = [{"id": 1}]
    connector = make_connector()
    [contacts] = _read(connector, Stream.CONTACTS)
    [consent] = _read(connector, Stream.CONSENT)
    assert [r["email"] for r in contacts.rows] == ["good@example.com"]
    assert [(p.record, p.field) for p in contacts.problems] == [
        (f"contact {bad['contact_id']}", "email_address.permission_to_send"),
        (f"contact {odd['contact_id']}", "taggings")]
    assert "unknown permission 'maybe'" in contacts.problems[0].reason
    assert [r["email"] for r in consent.rows] == ["good@example.com", "odd@example.com"]
    assert [(p.record, p.field) for p in consent.problems] == [
        (f"contact {bad['contact_id']}", "email_address.permission_to_send")]
    assert good["contact_id"] in contacts.record_ids[0]

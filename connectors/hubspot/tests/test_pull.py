"""Pulling contacts and consent from HubSpot: the search by last modification, its 10,000-result
cap, resuming from cursors, and the mapping of properties and subscription statuses."""

from __future__ import annotations

import json

import pytest

from segsync import Stream
from segsync_hubspot.limits import SEARCH_RESULTS_MAX
from segsync_hubspot.reader import SearchCapExceeded

SEARCH = "/crm/v3/objects/contacts/search"


def _rows(connector, stream, cursor=None):
    batches = list(connector.read(stream, cursor))
    return [r for b in batches for r in b.rows], batches


def test_contacts_map_hubspot_properties_to_canonical_attributes(emulator, connector) -> None:
    emulator.state.add_contact("ann@example.com", {
        "firstname": "Ann", "lastname": "Lee", "company": "Acme", "jobtitle": "CTO", "industry": "Retail",
        "country": "DE", "lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "IN_PROGRESS", "phone": "123"})
    emulator.state.add_contact("bo@example.com", {"country": "Germany", "lifecyclestage": "customer", "firstname": ""})
    rows, batches = _rows(connector, Stream.CONTACTS)
    ann, bo = rows
    assert ann == {"email": "ann@example.com", "external_id": ann["external_id"], "first_name": "Ann",
                   "last_name": "Lee", "company": "Acme", "job_title": "CTO", "industry": "Retail", "country": "DE",
                   "lifecycle_stage": "mql", "lead_status": "IN_PROGRESS"}
    # A country name is kept as a custom attribute (segsync's country is an ISO code); an empty
    # property is no value, and unmapped properties (phone) are not read.
    assert bo == {"email": "bo@example.com", "external_id": bo["external_id"], "country_name": "Germany",
                  "lifecycle_stage": "customer"}
    assert batches[0].record_ids == [f"contact {ann['external_id']}", f"contact {bo['external_id']}"]


def test_pages_are_read_oldest_first_and_a_cursor_resumes_without_gaps_or_repeats(emulator, make_connector) -> None:
    connector = make_connector(page_size=3)
    for i in range(7):
        emulator.state.add_contact(f"c{i}@example.com")
    rows, batches = _rows(connector, Stream.CONTACTS)
    assert [r["email"] for r in rows] == [f"c{i}@example.com" for i in range(7)]
    assert [len(b.rows) for b in batches] == [3, 3, 1]
    # Resume after the second page: only the rest, then what changed since.
    middle = json.loads(json.dumps(batches[1].cursor))
    rest, _ = _rows(connector, Stream.CONTACTS, middle)
    assert [r["email"] for r in rest] == ["c6@example.com"]
    emulator.state.touch(emulator.state.contact_by_email("c2@example.com"), {"firstname": "Cy"})
    emulator.state.add_contact("new@example.com")
    later, _ = _rows(connector, Stream.CONTACTS, batches[-1].cursor)
    assert [(r["email"], r.get("first_name")) for r in later] == [("c2@example.com", "Cy"), ("new@example.com", None)]
    assert _rows(connector, Stream.CONTACTS, list(connector.read(Stream.CONTACTS, batches[-1].cursor))[-1].cursor)[0] == []


def test_contacts_modified_at_the_same_millisecond_are_neither_lost_nor_repeated(emulator, make_connector) -> None:
    connector = make_connector(page_size=2)
    for i in range(5):
        emulator.state.add_contact(f"t{i}@example.com", at=1_700_000_000_000)
    emulator.state.add_contact("late@example.com", at=1_700_000_000_001)
    rows, batches = _rows(connector, Stream.CONTACTS)
    assert sorted(r["email"] for r in rows) == sorted([f"t{i}@example.com" for i in range(5)] + ["late@example.com"])
    # Every page's cursor holds the time read up to and who was read at it.
    first = batches[0].cursor
    assert first["since"] == 1_700_000_000_000 and len(first["seen"]) == 2
    resumed, _ = _rows(connector, Stream.CONTACTS, first)
    assert len(resumed) == 4 and not {r["email"] for r in resumed} & {r["email"] for r in batches[0].rows}


def test_more_than_10000_contacts_are_read_by_re_anchoring_the_search(emulator, make_connector) -> None:
    """HubSpot answers 400 to a page past 10,000 results; the reader starts a new search from the
    newest time read instead, and nobody is lost or read twice."""
    connector = make_connector()
    total = SEARCH_RESULTS_MAX + 250
    base = 1_700_000_000_000
    for i in range(total):
        emulator.state.add_contact(f"p{i:05d}@example.com", at=base + i // 3)  # three per millisecond
    rows, _ = _rows(connector, Stream.CONTACTS)
    assert len(rows) == total and len({r["email"] for r in rows}) == total
    searches = [json.loads(json.dumps(e.body)) for e in emulator.requests("POST", SEARCH)]
    assert all(e.status == 200 for e in emulator.requests("POST", SEARCH))
    assert max(int(s.get("after", 0)) for s in searches) == SEARCH_RESULTS_MAX - 200
    anchors = [s["filterGroups"][0]["filters"][0]["value"] for s in searches if "filterGroups" in s]
    assert anchors == [str(base + (SEARCH_RESULTS_MAX - 1) // 3)] * len(anchors) and len(anchors) == 2


def test_a_search_cap_full_of_one_millisecond_fails_with_a_clear_error(emulator, make_connector, monkeypatch) -> None:
    monkeypatch.setattr("segsync_hubspot.reader.SEARCH_RESULTS_MAX", 4)
    monkeypatch.setattr("segsync_hubspot.emulator.routes.SEARCH_RESULTS_MAX", 4)
    connector = make_connector(page_size=2)
    for i in range(6):
        emulator.state.add_contact(f"s{i}@example.com", at=1_700_000_000_000)
    with pytest.raises(SearchCapExceeded, match="more than 4 HubSpot contacts have lastmodifieddate 1700000000000"):
        list(connector.read(Stream.CONTACTS, None))


def test_a_contact_payload_of_the_wrong_shape_is_one_record_error(emulator, connector, monkeypatch) -> None:
    emulator.state.add_contact("ann@example.com", {"firstname": "Ann"})
    emulator.state.add_contact("bo@example.com")
    original = emulator.state.contacts[emulator.state.contact_by_email("bo@example.com").id].view

    def odd_view(names):
        view = original(names)
        view["properties"]["firstname"] = 42  # not text
        return view

    monkeypatch.setattr(emulator.state.contact_by_email("bo@example.com"), "view", odd_view)
    rows, batches = _rows(connector, Stream.CONTACTS)
    assert [r["email"] for r in rows] == ["ann@example.com"]
    (problem,) = batches[0].problems
    bo_id = emulator.state.contact_by_email("bo@example.com").id
    assert (problem.record, problem.field) == (f"contact {bo_id}", "properties.firstname")
    assert problem.reason == "not text but a number: 42"
    # With HubSpot's specs at hand the emulator notices it answered off them (the teardown checks
    # there is nothing else); without them (not shipped, see the README) it checks nothing.
    expected = [] if emulator.validator is None else [
        "results.1.properties.firstname: response 200 of POST "
        "/crm/v3/objects/contacts/search: 42 is not of type 'string'"]
    assert emulator.violations == expected
    emulator.violations.clear()


def test_an_opt_out_is_dated_when_it_happened_not_when_the_record_last_changed(emulator, connector) -> None:
    emulator.state.add_contact("ann@example.com")
    emulator.state.add_contact("bo@example.com")
    wide = emulator.state.unsubscribe_all("ann@example.com")
    emulator.state.touch(emulator.state.contact_by_email("ann@example.com"), {"firstname": "Ann"}, at=wide.timestamp + 60_000)
    rows, _ = _rows(connector, Stream.CONSENT)
    assert rows == [{"email": "ann@example.com", "channel": "email", "purpose": "marketing", "status": "opted_out",
                     "timestamp": _iso(wide.timestamp), "method": "sync",
                     "evidence": "HubSpot: unsubscribed from all email"}]


def test_subscription_statuses_of_the_configured_type_are_read_and_never_lift_an_opt_out(emulator, make_connector) -> None:
    connector = make_connector(subscription_id=1)
    for email in ("ann@example.com", "bo@example.com", "cy@example.com"):
        emulator.state.add_contact(email)
    subscribed = emulator.state.set_status("ann@example.com", "1", "SUBSCRIBED", source="Self Service Resubscription")
    left = emulator.state.set_status("bo@example.com", "1", "UNSUBSCRIBED")
    rows, _ = _rows(connector, Stream.CONSENT)
    assert rows == [
        {"email": "ann@example.com", "channel": "email", "purpose": "marketing", "status": "opted_in",
         "timestamp": _iso(subscribed.timestamp), "method": "sync",
         "evidence": "HubSpot subscription 1: Self Service Resubscription"},
        {"email": "bo@example.com", "channel": "email", "purpose": "marketing", "status": "opted_out",
         "timestamp": _iso(left.timestamp), "method": "sync", "evidence": "HubSpot subscription 1: Public API"},
    ]  # cy: NOT_SPECIFIED carries no consent


def test_without_a_subscription_type_only_opt_outs_are_read(emulator, connector) -> None:
    emulator.state.add_contact("ann@example.com")
    emulator.state.set_status("ann@example.com", "1", "SUBSCRIBED")
    assert _rows(connector, Stream.CONSENT)[0] == []
    assert emulator.requests(path="communication-preferences") == []


def _iso(ms: int) -> str:
    from segsync_hubspot.emulator.state import iso

    return iso(ms)

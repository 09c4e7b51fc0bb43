from __future__ import annotations

from datetime import datetime, timedelta, timezone

from segsync import RecordProblem, Stream



def rows(batches):
    return [row for batch in batches for row in batch.rows]


def test_full_pull_maps_attributes_lists_and_cursor(emulator, connector):
    vip = emulator.state.add_list("vip")
    emulator.state.add_attribute("COMPANY")
    emulator.state.add_attribute("PLAN")
    emulator.state.seed_contact(
        "ann@example.com", attributes={"FIRSTNAME": "Ann", "COMPANY": "Acme", "PLAN": "gold"}, list_ids=[vip]
    )
    emulator.state.seed_contact("bob@example.com", blacklisted=True)
    batches = list(connector.read(Stream.CONTACTS, None))
    got = {r["email"]: r for r in rows(batches)}
    assert set(got) == {"owner@example.com", "ann@example.com", "bob@example.com"}
    ann = got["ann@example.com"]
    assert ann["first_name"] == "Ann" and ann["company"] == "Acme" and ann["plan"] == "gold"
    assert ann["external"] == {"status": "subscribed", "lists": ["vip"], "email_blacklisted": False,
                               "created_at": emulator.state.contact("ann@example.com").to_json()["createdAt"]}
    assert "created_at" not in ann  # Brevo's record time is not the person's created_at
    assert ann["external_id"] == str(emulator.state.contact("ann@example.com").id)
    assert got["bob@example.com"]["external"]["email_blacklisted"] is True
    newest = max(emulator.state.contacts.values(), key=lambda c: c.modified_at)
    assert batches[-1].cursor == {"modified_since": newest.to_json()["modifiedAt"]}
    contact_gets = [e for e in emulator.requests("GET", "/v3/contacts") if e.path == "/v3/contacts"]
    assert len(contact_gets) == 1 and "limit=1000" in contact_gets[0].query_string


def test_incremental_pull_returns_only_modified(emulator, connector):
    emulator.state.seed_contact("ann@example.com")
    emulator.state.seed_contact("bob@example.com")
    cursor = list(connector.read(Stream.CONTACTS, None))[-1].cursor
    assert rows(connector.read(Stream.CONTACTS, cursor)) == []
    emulator.state.seed_contact("bob@example.com", attributes={"LASTNAME": "Lee"})
    again = list(connector.read(Stream.CONTACTS, cursor))
    assert [r["email"] for r in rows(again)] == ["bob@example.com"]
    assert "modifiedSince=" in emulator.requests("GET", "/v3/contacts")[-1].query_string


def test_paging_at_the_api_maximum(emulator, connector):
    for n in range(2499):
        emulator.state.seed_contact(f"user{n}@example.com")
    emulator.clear_log()
    batches = list(connector.read(Stream.CONTACTS, None))
    assert [len(b.rows) for b in batches] == [1000, 1000, 500]
    queries = [e.query_string for e in emulator.requests("GET", "/v3/contacts") if e.path == "/v3/contacts"]
    assert [q for q in queries] == [
        "limit=1000&offset=0&sort=asc",
        "limit=1000&offset=1000&sort=asc",
        "limit=1000&offset=2000&sort=asc",
    ]
    # Only the last page may advance the high-water mark; earlier ones resume by offset.
    assert batches[0].cursor["offset"] == 1000 and batches[0].cursor["modified_since"] is None
    assert set(batches[-1].cursor) == {"modified_since"}
    resumed = list(connector.read(Stream.CONTACTS, batches[1].cursor))
    assert [len(b.rows) for b in resumed] == [500]


def test_consent_from_blacklist_and_transactional_blocklist(emulator, connector):
    emulator.state.seed_contact("out@example.com", blacklisted=True)
    emulator.state.seed_contact("in@example.com")
    past = datetime.now(timezone.utc) - timedelta(days=2)
    for n, reason in enumerate(
        ["hardBounce", "contactFlaggedAsSpam", "unsubscribedViaEmail", "adminBlocked"]
    ):
        emulator.state.add_blocked(f"{reason.lower()}@example.com", reason, past + timedelta(minutes=n))
    batches = list(connector.read(Stream.CONSENT, None))
    got = {(r["email"], r["status"], r["method"]) for r in rows(batches)}
    assert got == {
        ("out@example.com", "opted_out", "sync"),
        ("hardbounce@example.com", "bounced", "bounce"),
        ("contactflaggedasspam@example.com", "complained", "complaint"),
        ("unsubscribedviaemail@example.com", "opted_out", "email_link"),
        ("adminblocked@example.com", "opted_out", "admin"),
    }
    cursor = batches[-1].cursor
    assert rows(connector.read(Stream.CONSENT, cursor)) == []
    emulator.state.add_blocked("late@example.com", "unsubscribedViaApi")
    assert [(r["email"], r["status"]) for r in rows(connector.read(Stream.CONSENT, cursor))] == [
        ("late@example.com", "opted_out")
    ]


def test_events_have_stable_ids_and_canonical_types(emulator, connector):
    when = datetime.now(timezone.utc) - timedelta(hours=3)
    emulator.state.add_event("ann@example.com", "delivered", when, message_id="<m1>")
    emulator.state.add_event("ann@example.com", "opened", when + timedelta(minutes=1), message_id="<m1>")
    emulator.state.add_event("ann@example.com", "clicks", when + timedelta(minutes=2), message_id="<m1>", link="https://x.test/a")
    emulator.state.add_event("ann@example.com", "hardBounces", when + timedelta(minutes=3), message_id="<m2>")
    emulator.state.add_event("ann@example.com", "deferred", when + timedelta(minutes=4), message_id="<m3>")
    first = rows(connector.read(Stream.EVENTS, None))
    assert [r["type"] for r in first] == ["email.delivered", "email.opened", "email.clicked", "email.bounced"]
    assert first[2]["properties"]["url"] == "https://x.test/a"
    assert first[3]["properties"]["bounce_type"] == "hard"
    again = rows(connector.read(Stream.EVENTS, None))
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert len({r["id"] for r in first}) == 4


def test_a_malformed_contact_is_a_record_problem_and_the_rest_of_its_page_loads(emulator, connector, monkeypatch):
    for email in ("ann@example.com", "bob@example.com", "cy@example.com"):
        emulator.state.seed_contact(email, blacklisted=email != "cy@example.com")
    bob = emulator.state.contact("bob@example.com").id
    real = connector.api.get_contacts

    def with_bob_garbled(**query):
        page = real(**query)
        for contact in page["contacts"]:
            if contact["email"] == "bob@example.com":
                contact["listIds"], contact["modifiedAt"] = "oops", "soon"
        return page

    monkeypatch.setattr(connector.api, "get_contacts", with_bob_garbled)
    contacts = list(connector.read(Stream.CONTACTS, None))
    assert sorted(r["email"] for r in rows(contacts)) == ["ann@example.com", "cy@example.com", "owner@example.com"]
    assert [p for b in contacts for p in b.problems] == [
        RecordProblem(f"contact {bob}", "listIds", "not a list but text: 'oops'")]
    assert [n for b in contacts for n in b.record_ids] == [
        f"contact {emulator.state.contact(r['email']).id}" for r in rows(contacts)]
    # The cursor still moves, to the newest readable modification time.
    newest = max((c for c in emulator.state.contacts.values() if c.email != "bob@example.com"),
                 key=lambda c: c.modified_at)
    assert contacts[-1].cursor == {"modified_since": newest.to_json()["modifiedAt"]}
    consent = [b for b in connector.read(Stream.CONSENT, None)]
    assert [(r["email"], r["status"]) for r in rows(consent)] == [("ann@example.com", "opted_out")]
    assert [p for b in consent for p in b.problems] == [
        RecordProblem(f"contact {bob}", "modifiedAt", "not an ISO 8601 date-time: 'soon'")]

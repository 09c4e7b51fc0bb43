"""Faults over real HTTP: lost answers to creates, and batches naming contacts that are gone."""

from __future__ import annotations

import time

from segsync import ContactChange


def flip(email, status="unsubscribed", previous="subscribed", add=(), remove=()):
    return ContactChange(contact_key=email, op="upsert", status=status, previous_status=previous,
                         tags=tuple(add), tags_add=tuple(add), tags_remove=tuple(remove))


def settled(emulator, path):
    """Wait (at most 5 s) until the emulator has answered the request it held on ``path``: the
    create the client gave up on lands only then."""
    deadline = time.monotonic() + 5
    while not any(e.fault == "timeout" for e in emulator.requests("POST", path)):
        assert time.monotonic() < deadline, f"the held request to {path} never finished"
        time.sleep(0.05)


def calls(emulator, method=None, path=None):
    return [(e.method, e.path, e.status, e.fault) for e in sorted(emulator.requests(method, path), key=lambda e: e.started)]


# -- non-idempotent creates whose answer is lost -----------------------------------------------


def test_a_list_created_but_whose_answer_was_lost_is_found_not_created_twice(emulator, connector):
    emulator.state.seed_contact("ann@example.com")
    emulator.add_fault(kind="lost", method="POST", path=r"^/v3/contacts/lists$")
    result = connector.write([flip("ann@example.com", status="subscribed", previous="subscribed", add=("vip",))])
    assert [o.status for o in result.outcomes] == ["ok"]
    assert sorted(l.name for l in emulator.state.lists.values()) == ["vip"]
    vip = next(l for l in emulator.state.lists.values() if l.name == "vip")
    assert emulator.state.contact("ann@example.com").list_ids == {vip.id}
    # The create went through once; its answer was lost; a lookup found the list.
    assert calls(emulator, "POST", "/v3/contacts/lists")[0] == ("POST", "/v3/contacts/lists", 201, "lost")
    assert len(emulator.requests("POST", "/v3/contacts/lists")) == 2  # the create + the list add
    assert [e.path for e in emulator.requests("POST")] == [
        "/v3/contacts/folders", "/v3/contacts/lists", f"/v3/contacts/lists/{vip.id}/contacts/add"]


def test_a_folder_created_but_whose_answer_was_lost_is_found_not_created_twice(emulator, connector):
    emulator.add_fault(kind="lost", method="POST", path=r"^/v3/contacts/folders$")
    result = connector.write([flip("ann@example.com", status="subscribed", previous=None, add=("vip",))])
    assert [o.status for o in result.outcomes] == ["ok"]
    assert sorted(emulator.state.folders.values()) == ["Your first folder", "segsync"]
    assert calls(emulator, "POST", "/v3/contacts/folders") == [("POST", "/v3/contacts/folders", 201, "lost")]
    segsync_folder = next(i for i, n in emulator.state.folders.items() if n == "segsync")
    assert {l.name: l.folder_id for l in emulator.state.lists.values()} == {"segsync": segsync_folder, "vip": segsync_folder}


def test_a_list_create_that_lands_after_the_client_gave_up_is_found_not_created_twice(emulator, make_connector):
    # Slow, not lost: the emulator holds the create 1.3 s, past the client's 1 s timeout, and
    # only then applies it, so a look-up right after the timeout finds nothing yet.
    connector = make_connector(timeout_seconds=1.0)
    emulator.state.seed_contact("ann@example.com")
    emulator.add_fault(kind="timeout", method="POST", path=r"^/v3/contacts/lists$", delay=1.3)
    result = connector.write([flip("ann@example.com", status="subscribed", previous="subscribed", add=("vip",))])
    settled(emulator, "/v3/contacts/lists")
    assert [o.status for o in result.outcomes] == ["ok"]
    assert sorted(l.name for l in emulator.state.lists.values()) == ["vip"]
    vip = next(l for l in emulator.state.lists.values() if l.name == "vip")
    assert emulator.state.contact("ann@example.com").list_ids == {vip.id}
    assert [c for c in calls(emulator, "POST", "/v3/contacts/lists") if c[1] == "/v3/contacts/lists"] == [
        ("POST", "/v3/contacts/lists", 201, "timeout")]


def test_a_folder_create_that_lands_after_the_client_gave_up_is_found_not_created_twice(emulator, make_connector):
    connector = make_connector(timeout_seconds=1.0)
    emulator.add_fault(kind="timeout", method="POST", path=r"^/v3/contacts/folders$", delay=1.3)
    result = connector.write([flip("ann@example.com", status="subscribed", previous=None, add=("vip",))])
    settled(emulator, "/v3/contacts/folders")
    assert [o.status for o in result.outcomes] == ["ok"]
    assert sorted(emulator.state.folders.values()) == ["Your first folder", "segsync"]
    assert calls(emulator, "POST", "/v3/contacts/folders") == [("POST", "/v3/contacts/folders", 201, "timeout")]


def test_an_attribute_create_that_lands_after_the_client_gave_up_counts_as_created(emulator, make_connector):
    connector = make_connector(timeout_seconds=1.0)
    emulator.add_fault(kind="timeout", method="POST", path=r"^/v3/contacts/attributes/normal/COMPANY$", delay=1.3)
    assert "created Brevo contact attribute COMPANY" in connector.fix()
    settled(emulator, "/v3/contacts/attributes/normal/COMPANY")
    assert connector.check() == []
    # Found by a look-up, not sent again (a second create would be answered 400 duplicate_parameter).
    assert [(s, f) for _m, p, s, f in calls(emulator, "POST") if p == "/v3/contacts/attributes/normal/COMPANY"] == [
        (201, "timeout")]


def test_an_attribute_created_but_whose_answer_was_lost_counts_as_created(emulator, connector):
    emulator.add_fault(kind="lost", method="POST", path=r"^/v3/contacts/attributes/normal/COMPANY$")
    done = connector.fix()
    assert "created Brevo contact attribute COMPANY" in done
    assert connector.check() == []
    # One create, whose answer was lost; the retry found the attribute instead of creating it.
    assert [(s, f) for _m, p, s, f in calls(emulator, "POST") if p == "/v3/contacts/attributes/normal/COMPANY"] == [
        (201, "lost")]


def test_a_duplicate_parameter_answer_to_an_attribute_create_is_success(emulator, connector):
    # Created between our look-up and our create (another process, or a retried request):
    # Brevo answers 400 duplicate_parameter; the attribute exists, which is what was asked.
    assert "COMPANY" in connector.directory.missing_attributes()
    emulator.state.add_attribute("COMPANY")
    connector.directory.create_attribute("COMPANY")
    answers = [(m, s) for m, p, s, _f in calls(emulator, "POST") if p == "/v3/contacts/attributes/normal/COMPANY"]
    assert answers == [("POST", 400)]
    assert "COMPANY" in connector.directory.attributes()


# -- a batch naming contacts that no longer exist -------------------------------------------------


def test_the_emulator_answers_a_batch_with_missing_contacts_as_brevo_does(emulator):
    import requests

    emulator.state.seed_contact("a@example.com")
    emulator.state.seed_contact("d@example.com")
    body = {"contacts": [{"email": "a@example.com", "emailBlacklisted": True},
                         {"email": "gone1@example.com", "emailBlacklisted": True},
                         {"email": "gone2@example.com", "emailBlacklisted": True},
                         {"email": "d@example.com", "emailBlacklisted": True}]}
    answer = requests.post(f"{emulator.url}/contacts/batch", json=body, headers={"api-key": "test-key"}, timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"code": "document_not_found", "message": "No contact found for indexes 1,2"}
    # Nothing of the batch was applied.
    assert not emulator.state.contact("a@example.com").email_blacklisted


def test_opt_outs_in_a_batch_are_not_held_back_by_a_contact_deleted_in_brevo(emulator, make_connector):
    connector = make_connector(batch_size=100)
    for email in ("a@example.com", "c@example.com", "d@example.com"):
        emulator.state.seed_contact(email)
    emulator.clear_log()
    changes = [flip("a@example.com"), flip("gone@example.com"), flip("c@example.com"),
               flip("d@example.com", status="complained")]
    result = connector.write(changes)
    assert [(o.contact_key, o.status) for o in result.outcomes] == [
        ("a@example.com", "ok"), ("gone@example.com", "ok"), ("c@example.com", "ok"), ("d@example.com", "ok")]
    for email in ("a@example.com", "c@example.com", "d@example.com"):
        assert emulator.state.contact(email).email_blacklisted, email
    # The missing contact is re-created blocklisted: no later import by another tool can make
    # the address mailable in Brevo again.
    gone = emulator.state.contact("gone@example.com")
    assert gone is not None and gone.email_blacklisted
    writes = [(m, p, s) for m, p, s, _f in calls(emulator, "POST")]
    # The first answer names index 1; the other three go at once; the suspect alone is then
    # confirmed gone and re-created by one import (after the audience list is made).
    assert [w for w in writes if w[1] == "/v3/contacts/batch"] == [
        ("POST", "/v3/contacts/batch", 404), ("POST", "/v3/contacts/batch", 204), ("POST", "/v3/contacts/batch", 404)]
    assert [w for w in writes if w[1] == "/v3/contacts/import"] == [("POST", "/v3/contacts/import", 202)]


def test_a_resubscribe_of_a_contact_deleted_in_brevo_re_creates_it_mailable(emulator, make_connector):
    connector = make_connector()
    emulator.state.seed_contact("a@example.com", blacklisted=True)
    vip = emulator.state.add_list("vip")
    result = connector.write([flip("a@example.com", status="subscribed", previous="unsubscribed"),
                              flip("gone@example.com", status="subscribed", previous="unsubscribed", add=("vip",))])
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    assert not emulator.state.contact("a@example.com").email_blacklisted
    gone = emulator.state.contact("gone@example.com")
    assert gone is not None and not gone.email_blacklisted
    assert vip in gone.list_ids


def test_a_batch_404_without_usable_indexes_is_bisected(emulator, make_connector):
    connector = make_connector()
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        emulator.state.seed_contact(email)
    # An answer naming nothing usable (as a proxy or a future API version might): halve.
    emulator.add_fault(kind="status", status=404, method="POST", path=r"^/v3/contacts/batch$")
    result = connector.write([flip("a@example.com"), flip("b@example.com"), flip("c@example.com")])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "ok"]
    assert all(emulator.state.contact(e).email_blacklisted for e in ("a@example.com", "b@example.com", "c@example.com"))


# -- an opted-out contact deleted in Brevo, then updated ------------------------------------------


def test_an_attribute_update_of_an_opted_out_contact_deleted_in_brevo_re_creates_it_blocklisted(emulator, connector):
    # Ann opted out long ago (acknowledged unsubscribed); someone deleted her in Brevo since.
    # Her first name changes: the update goes by import, which creates contacts that do not
    # exist. She must come back blocklisted, never mailable.
    change = ContactChange(contact_key="ann@example.com", op="upsert", status="unsubscribed",
                           previous_status="unsubscribed", attributes={"first_name": "Ann"})
    result = connector.write([change])
    assert [(o.contact_key, o.status) for o in result.outcomes] == [("ann@example.com", "ok")]
    ann = emulator.state.contact("ann@example.com")
    assert ann is not None and ann.email_blacklisted
    assert ann.attributes == {"FIRSTNAME": "Ann"}


def test_an_attribute_update_of_a_blocklisted_contact_keeps_it_blocklisted(emulator, connector):
    emulator.state.seed_contact("ann@example.com", blacklisted=True)
    change = ContactChange(contact_key="ann@example.com", op="upsert", status="complained",
                           previous_status="complained", attributes={"first_name": "Ann"})
    assert [o.status for o in connector.write([change]).outcomes] == ["ok"]
    ann = emulator.state.contact("ann@example.com")
    assert ann.email_blacklisted and ann.attributes["FIRSTNAME"] == "Ann"

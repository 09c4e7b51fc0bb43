"""What each service's webhook request means: the exact rows queued, or the exact reason refused."""

from __future__ import annotations

import json
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from segsync import Stream
from segsync_serve.receivers import Delivery, Malformed, Unauthorized, receiver_for
from segsync_serve.receivers.mailchimp import member_id

SECRET = "receiver-secret-0123456789"
ANN = "ann@example.com"
MAILCHIMP = SimpleNamespace(settings=SimpleNamespace(list_id="aud1", attribute_mapping={
    "first_name": "FNAME", "last_name": "LNAME"}))
BREVO = SimpleNamespace(settings=SimpleNamespace())


def _form(**fields: str) -> Delivery:
    body = urlencode({"fired_at": "2026-01-02 03:04:05", "data[list_id]": "aud1", **fields}).encode()
    return Delivery("POST", {"secret": SECRET}, {"content-type": "application/x-www-form-urlencoded"}, body)


def _json(document: object, token: str = SECRET) -> Delivery:
    return Delivery("POST", {}, {"content-type": "application/json", "authorization": f"Bearer {token}"},
                    json.dumps(document).encode())


def _rows(received) -> list[tuple[str, dict, str]]:
    return [(b.stream.value, row, name) for b in received.batches for row, name in zip(b.rows, b.record_ids)]


# -- Mailchimp -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "status", "method"), [
    ({"data[action]": "unsub", "data[reason]": "manual"}, "opted_out", "email_link"),
    ({"data[action]": "unsub", "data[reason]": "abuse"}, "complained", "complaint"),
    ({"data[action]": "delete", "data[reason]": "manual"}, "opted_out", "admin"),
])
def test_a_mailchimp_unsubscribe_is_one_consent_record(fields: dict, status: str, method: str) -> None:
    received = receiver_for("mailchimp").parse(_form(type="unsubscribe", **{"data[email]": ANN}, **fields), MAILCHIMP)
    hashed = member_id(ANN)
    assert _rows(received) == [("consent", {
        "email": ANN, "channel": "email", "purpose": "marketing", "status": status,
        "timestamp": "2026-01-02T03:04:05+00:00", "method": method,
        "evidence": f"mailchimp webhook unsubscribe list aud1 member {hashed} fired 2026-01-02T03:04:05+00:00; "
                    f"reason {fields['data[reason]']}"},
        f"mailchimp webhook unsubscribe member {hashed}")]
    assert received.ignored == []


def test_mailchimp_cleaned_subscribe_profile_and_upemail() -> None:
    mc = receiver_for("mailchimp")
    cleaned = mc.parse(_form(type="cleaned", **{"data[email]": ANN, "data[reason]": "hard"}), MAILCHIMP)
    assert [(r["status"], r["method"]) for _, r, _ in _rows(cleaned)] == [("bounced", "bounce")]
    # Who subscribed the person is not in the request: a method that never lifts an opt-out.
    subscribed = mc.parse(_form(type="subscribe", **{"data[email]": ANN}), MAILCHIMP)
    assert [(r["status"], r["method"]) for _, r, _ in _rows(subscribed)] == [("opted_in", "sync")]
    profile = mc.parse(_form(type="profile", **{"data[email]": ANN, "data[merges][FNAME]": "Ann",
                                                "data[merges][LNAME]": "", "data[merges][SHOE]": "42"}), MAILCHIMP)
    assert _rows(profile) == [("contacts", {"email": ANN, "first_name": "Ann"},
                               f"mailchimp webhook profile member {member_id(ANN)}")]
    moved = mc.parse(_form(type="upemail", **{"data[old_email]": ANN, "data[new_email]": "ann@new.example"}),
                     MAILCHIMP)
    assert [(s, r) for s, r, _ in _rows(moved)] == [("contacts", {"email": "ann@new.example"})]
    campaign = mc.parse(_form(type="campaign", **{"data[id]": "c1"}), MAILCHIMP)
    assert (campaign.batches, campaign.ignored) == ([], ["campaign"])
    assert {b.stream for b in cleaned.batches} == {Stream.CONSENT}


@pytest.mark.parametrize(("delivery", "reason"), [
    (Delivery("POST", {"secret": SECRET}, {"content-type": "application/json"}, b"{}"),
     "content type 'application/json'; Mailchimp sends application/x-www-form-urlencoded"),
    (_form(**{"data[email]": ANN}), "type: missing"),
    (_form(type="unsubscribe"), "data[email]: missing"),
    (_form(type="unsubscribe", fired_at="2026-01-02T03:04:05Z", **{"data[email]": ANN}),
     "fired_at: '2026-01-02T03:04:05Z' is not YYYY-MM-DD HH:MM:SS"),
    (_form(type="unsubscribe", **{"data[email]": ANN, "data[list_id]": "other"}),
     "data[list_id]: 'other' is not this connection's audience 'aud1'"),
    (_form(type="merge", **{"data[email]": ANN}),
     "type: 'merge' is not a Mailchimp webhook type (subscribe, unsubscribe, profile, cleaned, upemail, campaign)"),
    (Delivery("POST", {}, {"content-type": "application/x-www-form-urlencoded"}, b"\xff\xfe"),
     "the body is not a form: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
])
def test_a_malformed_mailchimp_request_names_what_is_wrong(delivery: Delivery, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        receiver_for("mailchimp").parse(delivery, MAILCHIMP)
    assert str(caught.value) == reason


def test_mailchimp_takes_the_secret_from_the_url_only() -> None:
    mc = receiver_for("mailchimp")
    mc.authenticate(_form(), SECRET)
    for query in ({}, {"secret": SECRET[:-1]}, {"secret": SECRET + "x"}):
        with pytest.raises(Unauthorized):
            mc.authenticate(Delivery("POST", query, {}, b""), SECRET)
    assert mc.url("https://hooks.example/", "mc", "a b") == "https://hooks.example/webhooks/mc?secret=a%20b"


# -- Brevo ---------------------------------------------------------------------------------


def test_brevo_consent_events_become_consent_records_and_the_others_are_acknowledged() -> None:
    events = [
        {"event": "unsubscribe", "email": ANN, "ts_event": 1767323045, "camp_id": 7, "id": 1},
        {"event": "hard_bounce", "email": "bo@example.com", "ts_event": 1767323046, "reason": "no mailbox"},
        {"event": "spam", "email": "cy@example.com", "ts": 1767323047},
        {"event": "opened", "email": ANN, "ts_event": 1767323048},
        {"event": "contact_deleted", "email": ANN, "ts": 1767323049},
    ]
    received = receiver_for("brevo").parse(_json(events), BREVO)
    assert [(r["email"], r["status"], r["method"], r["timestamp"], r["evidence"], name)
            for _, r, name in _rows(received)] == [
        (ANN, "opted_out", "email_link", "2026-01-02T03:04:05+00:00", "brevo webhook unsubscribe campaign 7",
         "brevo webhook unsubscribe a***@e***.com"),
        ("bo@example.com", "bounced", "bounce", "2026-01-02T03:04:06+00:00",
         "brevo webhook hard_bounce; reason no mailbox", "brevo webhook hard_bounce b***@e***.com"),
        ("cy@example.com", "complained", "complaint", "2026-01-02T03:04:07+00:00", "brevo webhook spam",
         "brevo webhook spam c***@e***.com"),
    ]
    assert received.ignored == ["opened", "contact_deleted"]
    single = receiver_for("brevo").parse(_json(events[0]), BREVO)
    assert received.batches[0].rows[0] == single.batches[0].rows[0]


@pytest.mark.parametrize(("document", "reason"), [
    ([], "expected 1 to 1000 events, got 0"),
    ("unsubscribe", "not a JSON object"),
    ({"email": ANN, "ts_event": 1}, "event: missing"),
    ({"event": "spam", "ts_event": 1}, "email: missing"),
    ({"event": "spam", "email": ANN}, "ts_event: missing"),
    ({"event": "spam", "email": ANN, "ts_event": "yesterday"}, "ts_event: 'yesterday' is not a timestamp in seconds"),
    ([{"event": "spam", "email": ANN, "ts_event": 1}, 3], "event 2: not a JSON object"),
])
def test_a_malformed_brevo_request_names_what_is_wrong_and_nothing_of_it_is_kept(document: object, reason: str) -> None:
    with pytest.raises(Malformed) as caught:
        receiver_for("brevo").parse(_json(document), BREVO)
    assert str(caught.value) == reason


def test_brevo_takes_the_bearer_token_only() -> None:
    brevo = receiver_for("brevo")
    brevo.authenticate(_json({}), SECRET)
    for headers in ({}, {"authorization": SECRET}, {"authorization": f"Basic {SECRET}"},
                    {"authorization": f"Bearer {SECRET}x"}):
        with pytest.raises(Unauthorized):
            brevo.authenticate(Delivery("POST", {}, headers, b""), SECRET)
    assert receiver_for("hubspot") is None

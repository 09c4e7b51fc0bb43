"""Pulling members (contacts, consent) and campaign activity (events) through the real SDK."""

from __future__ import annotations

from segsync import Stream

from segsync_mailchimp.emulator import subscriber_hash
from segsync_mailchimp.mapping import event_id

from .conftest import LIST_ID, ts


def _rows(batches):
    return [row for batch in batches for row in batch.rows]


def test_full_pull_pages_at_the_maximum_and_ends_with_the_next_window(emulator, connector):
    for i in range(2500):
        emulator.state.seed_member(LIST_ID, f"m{i:04d}@example.com",
                                   merge_fields={"FNAME": f"F{i}", "COMPANY": "Acme"},
                                   last_changed=ts("2024-01-01T00:00:00"))
    emulator.state.seed_member(LIST_ID, "gone@example.com", "archived", last_changed=ts("2024-01-02T00:00:00"))

    batches = list(connector.read(Stream.CONTACTS, None))

    member_calls = emulator.calls("GET", r"/members$")
    assert [c.query["count"] for c in member_calls] == [["1000"]] * 4
    assert [c.query["offset"] for c in member_calls] == [["0"], ["1000"], ["2000"], ["0"]]
    assert [c.query.get("status") for c in member_calls] == [None, None, None, ["archived"]]
    assert [len(b.rows) for b in batches] == [1000, 1000, 500, 1]
    rows = _rows(batches)
    assert len({r["email"] for r in rows}) == 2501
    assert rows[0] == {
        "email": "m0000@example.com", "first_name": "F0", "company": "Acme",
        "external_id": subscriber_hash("m0000@example.com"),
        "external": {"status": "subscribed", "tags": [],
                     "timestamp_signup": rows[0]["external"]["timestamp_signup"]},
    }
    assert rows[-1]["external"]["status"] == "archived"
    # every batch but the last resumes inside the window; the last opens the next window
    assert batches[0].cursor["offset"] == 1000 and batches[0].cursor["before"]
    assert set(batches[-1].cursor) == {"since"}


def test_incremental_pull_returns_only_members_changed_since_the_cursor(emulator, connector):
    for i in range(5):
        emulator.state.seed_member(LIST_ID, f"m{i}@example.com", last_changed=ts("2024-01-01T00:00:00"))
    first = list(connector.read(Stream.CONTACTS, None))
    cursor = first[-1].cursor

    member = emulator.state.member(LIST_ID, "m3@example.com")
    member.merge_fields["FNAME"], member.last_changed = "Changed", ts("2024-06-01T00:00:00")
    second = list(connector.read(Stream.CONTACTS, {"since": "2024-03-01T00:00:00+00:00"}))
    assert [r["email"] for r in _rows(second)] == ["m3@example.com"]
    assert _rows(second)[0]["first_name"] == "Changed"
    assert list(connector.read(Stream.CONTACTS, cursor))[-1].rows == []


def test_resuming_from_a_batch_cursor_continues_where_it_stopped(emulator, connector):
    for i in range(1500):
        emulator.state.seed_member(LIST_ID, f"m{i:04d}@example.com", last_changed=ts("2024-01-01T00:00:00"))
    first_batch = next(iter(connector.read(Stream.CONTACTS, None)))
    rest = list(connector.read(Stream.CONTACTS, first_batch.cursor))
    emails = [r["email"] for r in first_batch.rows] + [r["email"] for r in _rows(rest)]
    assert sorted(emails) == [f"m{i:04d}@example.com" for i in range(1500)]


def test_a_member_leaving_the_window_mid_pull_does_not_hide_another(emulator, connector):
    for i in range(1500):
        emulator.state.seed_member(LIST_ID, f"m{i:04d}@example.com", last_changed=ts("2024-01-01T00:00:00"))
    pages = connector.read(Stream.CONTACTS, None)
    first = next(pages)
    # an already-read member changes now: it leaves the window and every later row moves up
    emulator.state.member(LIST_ID, first.rows[0]["email"]).last_changed = ts("2099-01-01T00:00:00")
    later = [r["email"] for r in _rows(pages)]
    assert set(later) >= {f"m{i:04d}@example.com" for i in range(1000, 1500)}


def test_consent_records_follow_member_status(emulator, connector):
    s = emulator.state
    s.seed_member(LIST_ID, "form@example.com", "subscribed", timestamp_signup=ts("2024-01-01T10:00:00"),
                  timestamp_opt=ts("2024-01-01T10:00:00"), last_changed=ts("2024-01-01T10:00:00"))
    s.seed_member(LIST_ID, "dbl@example.com", "subscribed", timestamp_signup=ts("2024-01-01T10:00:00"),
                  timestamp_opt=ts("2024-01-01T10:05:00"), ip_opt="192.0.2.7",
                  last_changed=ts("2024-01-01T10:05:00"))
    s.seed_member(LIST_ID, "imp@example.com", "subscribed", source="Import",
                  timestamp_opt=ts("2024-01-02T00:00:00"), last_changed=ts("2024-01-02T00:00:00"))
    s.seed_member(LIST_ID, "out@example.com", "unsubscribed", unsubscribe_reason="N/A (Unsubscribe link)",
                  last_changed=ts("2024-02-01T00:00:00"))
    s.seed_member(LIST_ID, "bounce@example.com", "cleaned", last_changed=ts("2024-02-02T00:00:00"))
    s.seed_member(LIST_ID, "wait@example.com", "pending", timestamp_signup=ts("2024-02-03T00:00:00"),
                  last_changed=ts("2024-02-03T00:00:00"))
    s.seed_member(LIST_ID, "tx@example.com", "transactional", last_changed=ts("2024-02-04T00:00:00"))
    s.seed_member(LIST_ID, "arch@example.com", "archived", last_changed=ts("2024-02-05T00:00:00"))

    rows = {r["email"]: r for r in _rows(connector.read(Stream.CONSENT, None))}

    assert set(rows) == {"form@example.com", "dbl@example.com", "imp@example.com", "out@example.com",
                         "bounce@example.com", "wait@example.com"}
    assert {e: (r["status"], r["method"], r["timestamp"]) for e, r in rows.items()} == {
        "form@example.com": ("opted_in", "form", "2024-01-01T10:00:00+00:00"),
        "dbl@example.com": ("opted_in", "double_opt_in", "2024-01-01T10:05:00+00:00"),
        "imp@example.com": ("opted_in", "import", "2024-01-02T00:00:00+00:00"),
        "out@example.com": ("opted_out", "email_link", "2024-02-01T00:00:00+00:00"),
        "bounce@example.com": ("bounced", "bounce", "2024-02-02T00:00:00+00:00"),
        "wait@example.com": ("pending", "double_opt_in", "2024-02-03T00:00:00+00:00"),
    }
    assert all(r["channel"] == "email" and r["purpose"] == "marketing" for r in rows.values())
    assert "opt-in IP 192.0.2.7" in rows["dbl@example.com"]["evidence"]


def test_only_mailchimp_forms_map_to_a_method_that_lifts_an_opt_out(emulator, connector):
    """API writes, admin adds and imports are not the person's own consent, even when the writer
    sent a confirmation IP and time; a form sign-up is, and its confirmation is a double opt-in."""
    s = emulator.state
    signup, later = ts("2024-01-01T10:00:00"), ts("2024-01-01T10:05:00")
    sources = {
        "api@example.com": "API - Generic", "shopify@example.com": "API - Shopify",
        "admin@example.com": "Admin Add", "imp@example.com": "Import", "odd@example.com": "Mobile App",
        "embedded@example.com": "Embedded Form", "hosted@example.com": "Hosted Signup Form",
    }
    for email, source in sources.items():
        s.seed_member(LIST_ID, email, "subscribed", source=source, timestamp_signup=signup,
                      timestamp_opt=later, ip_opt="192.0.2.7", last_changed=later)
    s.seed_member(LIST_ID, "apiwait@example.com", "pending", source="API - Generic", timestamp_signup=signup,
                  last_changed=signup)
    s.seed_member(LIST_ID, "formwait@example.com", "pending", source="Embedded Form", timestamp_signup=signup,
                  last_changed=signup)

    rows = {r["email"]: (r["status"], r["method"]) for r in _rows(connector.read(Stream.CONSENT, None))}

    assert rows == {
        "api@example.com": ("opted_in", "api"), "shopify@example.com": ("opted_in", "api"),
        "admin@example.com": ("opted_in", "admin"), "imp@example.com": ("opted_in", "import"),
        "odd@example.com": ("opted_in", "sync"),
        "embedded@example.com": ("opted_in", "double_opt_in"), "hosted@example.com": ("opted_in", "double_opt_in"),
        "apiwait@example.com": ("pending", "api"), "formwait@example.com": ("pending", "double_opt_in"),
    }


def _seed_campaigns(s):
    for who in ("a", "b", "c"):
        s.seed_member(LIST_ID, f"{who}@example.com", last_changed=ts("2024-01-01T00:00:00"))
    s.seed_campaign(LIST_ID, "camp1", ts("2024-03-01T09:00:00"), ["a@example.com", "b@example.com", "c@example.com"])
    s.record_activity("camp1", "a@example.com", "open", ts("2024-03-01T10:00:00"))
    s.record_activity("camp1", "a@example.com", "click", ts("2024-03-01T10:01:00"), url="https://shop.example/x")
    s.record_activity("camp1", "b@example.com", "bounce", ts("2024-03-01T09:01:00"), bounce_type="hard")
    s.record_unsubscribe("camp1", "c@example.com", ts("2024-03-02T08:00:00"))
    s.seed_campaign("aud0001", "camp2", ts("2024-03-05T09:00:00"), ["a@example.com"])
    s.record_activity("camp2", "a@example.com", "open", ts("2024-03-05T11:00:00"))


def test_events_from_campaign_reports_with_stable_ids(emulator, connector):
    _seed_campaigns(emulator.state)
    batches = list(connector.read(Stream.EVENTS, None))
    rows = _rows(batches)
    assert sorted((r["email"], r["type"], r["timestamp"]) for r in rows) == [
        ("a@example.com", "email.clicked", "2024-03-01T10:01:00+00:00"),
        ("a@example.com", "email.opened", "2024-03-01T10:00:00+00:00"),
        ("a@example.com", "email.opened", "2024-03-05T11:00:00+00:00"),
        ("b@example.com", "email.bounced", "2024-03-01T09:01:00+00:00"),
        ("c@example.com", "email.unsubscribed", "2024-03-02T08:00:00+00:00"),
    ]
    click = next(r for r in rows if r["type"] == "email.clicked")
    assert click["properties"] == {"campaign_id": "camp1", "list_id": LIST_ID, "url": "https://shop.example/x"}
    assert click["id"] == event_id("camp1", subscriber_hash("a@example.com"), "click",
                                   "2024-03-01T10:01:00+00:00", "https://shop.example/x")
    bounce = next(r for r in rows if r["type"] == "email.bounced")
    assert bounce["properties"]["bounce_type"] == "hard"
    # a hard bounce cleaned the member, which the consent stream reports as bounced
    assert emulator.state.member(LIST_ID, "b@example.com").status == "cleaned"
    # re-reading yields the same ids (the store deduplicates on them)
    assert sorted(r["id"] for r in _rows(connector.read(Stream.EVENTS, None))) == sorted(r["id"] for r in rows)


def test_events_incremental_by_activity_time_and_campaign_send_time(emulator, connector):
    _seed_campaigns(emulator.state)
    cursor = {"since": "2024-03-03T00:00:00+00:00"}
    emulator.state.seed_campaign(LIST_ID, "old", ts("2023-01-01T00:00:00"), ["a@example.com"])
    emulator.state.record_activity("old", "a@example.com", "open", ts("2024-03-04T00:00:00"))
    emulator.reset_log()

    rows = _rows(connector.read(Stream.EVENTS, cursor))

    assert [(r["email"], r["type"], r["properties"]["campaign_id"]) for r in rows] == [
        ("a@example.com", "email.opened", "camp2")]
    reports_call = emulator.calls("GET", r"^/reports$")[0]
    assert reports_call.query["since_send_time"] == ["2024-02-02T00:00:00+00:00"]  # 30-day window
    assert [c.query["since"] for c in emulator.calls("GET", "email-activity")] == [[cursor["since"]]] * 2

"""Segment-entry triggers against the Mailchimp and Brevo emulators over real HTTP: a member
event and a tag that start Mailchimp automations, a Brevo custom event, the consent gate in
front of them, and a delivery in doubt (the process died before its outcome was recorded)
looked up instead of sent twice."""

from __future__ import annotations

from segsync.statuses import PartStatus, RunStatus
from segsync.store import Store

from .esp_fixtures import LIST_ID, brevo, esp, mailchimp  # noqa: F401 - fixtures

TRIGGERS = """
    [[segments]]
    name = "vip"
    rule = 'attr.tier == "gold"'

    [[triggers]]
    name = "mc-welcome"
    segment = "vip"
    action = "event"
    connection = "mc"
    event = "vip_welcome"
    properties = { journey = "vip" }

    [[triggers]]
    name = "mc-tag"
    segment = "vip"
    action = "tag"
    connection = "mc"
    tag = "journey-vip"

    [[triggers]]
    name = "brevo-welcome"
    segment = "vip"
    action = "event"
    connection = "brevo"
    event = "vip_welcome"
"""
CONTACTS = """
    email,first_name,tier
    ann@example.com,Ann,gold
    bo@example.com,Bo,{bo}
    cy@example.com,Cy,{cy}
    dee@example.com,Dee,{dee}
"""
# Ann and Bo opted in; Cy has no consent; Dee opted out after opting in.
CONSENT = """
    email,status,timestamp,method
    ann@example.com,opted_in,2024-01-01T00:00:00Z,form
    bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
    dee@example.com,opted_in,2024-01-01T00:00:00Z,form
    dee@example.com,opted_out,2024-02-01T00:00:00Z,form
"""


def contacts(esp, bo: str = "", cy: str = "", dee: str = "") -> None:
    esp.write("contacts.csv", CONTACTS.format(bo=bo, cy=cy, dee=dee))


def reports(summary) -> dict[str, tuple]:
    return {t.name: (t.status, t.queued, t.delivered, t.blocked, t.rejected, t.failed) for t in summary.triggers}


def mc_events(esp, email: str) -> list[dict]:
    with esp.mc.state.lock:
        return [dict(e) for e in esp.mc.state.member(LIST_ID, email).events]


def brevo_events(esp) -> list[tuple[str, str, str]]:
    state = esp.brevo.state
    with state.lock:
        return [(state.contacts[e["contact_id"]].email, e["event_name"], e["event_properties"]["change"])
                for e in state.custom_events]


def test_an_entry_starts_mailchimp_and_brevo_automations_once(esp):
    esp.write_config(TRIGGERS)
    esp.write("consent.csv", CONSENT)
    contacts(esp, bo="silver")
    first = esp.sync()
    assert first.summary.status == RunStatus.SUCCEEDED
    assert esp.mc.state.automation_starts == [] and esp.brevo.state.automation_starts == []  # the baseline

    contacts(esp, bo="gold")
    second = esp.sync()
    assert second.summary.status == RunStatus.SUCCEEDED, second.summary.errors
    assert reports(second.summary) == {
        "mc-welcome": (PartStatus.OK, 1, 1, 0, 0, 0),
        "mc-tag": (PartStatus.OK, 1, 1, 0, 0, 0),
        "brevo-welcome": (PartStatus.OK, 1, 1, 0, 0, 0),
    }
    assert esp.mc.state.automation_starts == [("event", "vip_welcome", LIST_ID, "bo@example.com"),
                                              ("tag", "journey-vip", LIST_ID, "bo@example.com")]
    [event] = mc_events(esp, "bo@example.com")
    key = event["properties"].pop("segsync_key")
    assert (event["name"], event["is_syncing"], event["properties"]) == (
        "vip_welcome", False, {"journey": "vip", "segment": "vip", "change": "enter"})
    assert esp.brevo.state.automation_starts == [("event", "vip_welcome", "bo@example.com")]
    assert brevo_events(esp) == [("bo@example.com", "vip_welcome", "enter")]
    with Store(esp.root / "store.duckdb", read_only=True) as store:
        keys = dict(store.con.execute("SELECT trigger, idempotency_key FROM trigger_outbox").fetchall())
    assert keys["mc-welcome"] == key
    assert ("POST", f"/lists/{LIST_ID}/members/{_hash('bo@example.com')}/events") in second.mc_writes
    assert ("POST", "/v3/events") in second.brevo_writes

    third = esp.sync()  # nothing changed: nothing sent
    assert [w for w in third.mc_writes if "/events" in w[1] or "/tags" in w[1]] == []
    assert ("POST", "/v3/events") not in third.brevo_writes
    assert len(esp.mc.state.automation_starts) == 2 and len(esp.brevo.state.automation_starts) == 1


def test_the_consent_gate_blocks_events_and_tags_for_people_who_may_not_be_mailed(esp):
    esp.write_config(TRIGGERS)
    esp.write("consent.csv", CONSENT)
    contacts(esp)
    esp.sync()
    contacts(esp, cy="gold", dee="gold")  # Cy: no consent; Dee: opted out
    run = esp.sync()
    assert run.summary.status == RunStatus.WITH_REJECTIONS
    assert reports(run.summary) == {
        name: (PartStatus.WITH_REJECTIONS, 2, 0, 2, 0, 0) for name in ("mc-welcome", "mc-tag", "brevo-welcome")}
    assert esp.mc.state.automation_starts == [] and esp.brevo.state.automation_starts == []
    assert [w for w in run.mc_writes if "/events" in w[1] or "/tags" in w[1]] == []
    assert ("POST", "/v3/events") not in run.brevo_writes
    with Store(esp.root / "store.duckdb", read_only=True) as store:
        reasons = store.con.execute(
            "SELECT record, reason FROM record_errors WHERE run_id = ? AND connection = 'mc-welcome' ORDER BY 1",
            [run.summary.run_id]).fetchall()
        states = store.con.execute("SELECT DISTINCT status FROM trigger_outbox").fetchall()
    assert reasons == [("c***@e***.com", "consent gate: none under policy 'default'; no event sent"),
                       ("d***@e***.com", "consent gate: unsubscribed under policy 'default'; no event sent")]
    assert states == [("blocked",)]
    again = esp.sync()  # blocked stays blocked: not retried
    assert all(t.status == PartStatus.OK and t.blocked == 0 for t in again.summary.triggers)


def test_a_delivery_in_doubt_is_looked_up_in_the_esp_not_sent_twice(esp):
    esp.write_config(TRIGGERS)
    esp.write("consent.csv", CONSENT)
    contacts(esp)
    esp.sync()
    contacts(esp, bo="gold")
    esp.sync()
    with Store(esp.root / "store.duckdb") as store:  # what a crash after the hand-over leaves
        store.con.execute("UPDATE trigger_outbox SET status = 'sending'")
    run = esp.sync()
    assert {n: r[2] for n, r in reports(run.summary).items()} == {"mc-welcome": 1, "mc-tag": 1, "brevo-welcome": 1}
    assert len(mc_events(esp, "bo@example.com")) == 1
    assert brevo_events(esp) == [("bo@example.com", "vip_welcome", "enter")]
    assert ("GET", f"/lists/{LIST_ID}/members/{_hash('bo@example.com')}/events") in [
        (r.method, r.path) for r in esp.mc.calls()]
    assert [w for w in run.mc_writes if "/events" in w[1]] == []
    assert ("POST", "/v3/events") not in run.brevo_writes
    # The tag is simply added again: a tag the member has is a no-op, no second automation.
    assert esp.mc.state.automation_starts.count(("tag", "journey-vip", LIST_ID, "bo@example.com")) == 1


def test_a_brevo_tag_trigger_is_refused_naming_the_event_action(esp):
    esp.write_config(TRIGGERS + """
    [[triggers]]
    name = "brevo-tag"
    segment = "vip"
    action = "tag"
    connection = "brevo"
    tag = "vip"
""")
    esp.write("consent.csv", CONSENT)
    contacts(esp)
    esp.sync()
    contacts(esp, bo="gold")
    run = esp.sync()
    report = next(t for t in run.summary.triggers if t.name == "brevo-tag")
    assert (report.status, report.rejected) == (PartStatus.WITH_REJECTIONS, 1)
    assert report.reasons == ['Brevo contacts have no tags: use action = "event" (an automation can start on a custom event)']


def _hash(email: str) -> str:
    import hashlib

    return hashlib.md5(email.encode()).hexdigest()  # noqa: S324 - Mailchimp's subscriber hash

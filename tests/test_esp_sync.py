"""`segsync sync` end to end against the Mailchimp and Brevo emulators over real HTTP.

Each test starts both emulators on 127.0.0.1 (fixtures in ``esp_fixtures``), writes a project
with a files source (contacts.csv + consent.csv) and both ESPs as sources *and* destinations,
and drives the real runner. Assertions read the emulators' own state and request logs.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

from segsync.consent import rules
from segsync_mailchimp.mapping import subscriber_hash

from .esp_fixtures import LIST_ID, EspProject, brevo, esp, mailchimp  # noqa: F401  (fixtures)

ANN, BO, CY, DEE = "ann@example.com", "bo@example.com", "cy@example.com", "dee@example.com"
BATCH_SUBSCRIBE = ("POST", f"/lists/{LIST_ID}")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _effective(esp: EspProject) -> dict[str, str]:
    with esp.store() as store:
        return dict(store.con.execute(
            f"SELECT contact_key, status FROM ({rules.effective_status_sql()})").fetchall())


def _acked(esp: EspProject, destination: str, *, owner: bool = False) -> dict[str, str]:
    """Acknowledged statuses; the Brevo owner's row is left out unless asked for (it is
    checked on its own in the first test, so that one finding does not mask the others)."""
    with esp.store() as store:
        acked = dict(store.con.execute(
            "SELECT contact_key, status FROM acknowledged WHERE destination = ?", [destination]
        ).fetchall())
    return acked if owner else {k: v for k, v in acked.items() if k != OWNER}


def _brevo(esp: EspProject) -> dict[str, dict]:
    return {k: v for k, v in esp.brevo_contacts().items() if k != OWNER}


def _history(esp: EspProject) -> list[tuple[int, str, dict[str, int]]]:
    with esp.store() as store:
        return [(r["id"], r["status"], {d["destination"]: d["write_calls"] for d in r["destinations"]})
                for r in store.runs()]


SUBSCRIBED_IN_MAILCHIMP = {
    ANN: {"status": "subscribed", "merge_fields": {"FNAME": "Ann", "LNAME": "Lee"}},
    BO: {"status": "subscribed", "merge_fields": {"FNAME": "Bo"}},
}
OWNER = "owner@example.com"  # a fresh Brevo account holds its owner's address (no consent)
SUBSCRIBED_IN_BREVO = {
    ANN: {"emailBlacklisted": False, "attributes": {"FIRSTNAME": "Ann", "LASTNAME": "Lee"}, "lists": ["segsync"]},
    BO: {"emailBlacklisted": False, "attributes": {"FIRSTNAME": "Bo"}, "lists": ["segsync"]},
}


# -- 1. full sync, and a re-run that writes nothing ------------------------------------------


def test_full_sync_lands_subscribed_contacts_in_both_esps(esp: EspProject) -> None:
    run = esp.sync()
    assert run.summary.status == "succeeded" and not run.summary.failed
    # Cy has no consent record: never added anywhere.
    assert esp.mc_members() == SUBSCRIBED_IN_MAILCHIMP
    assert _brevo(esp) == SUBSCRIBED_IN_BREVO
    assert _acked(esp, "mc") == _acked(esp, "brevo") == {ANN: "subscribed", BO: "subscribed"}
    # The Brevo owner was pulled (no consent anywhere): it must not be "added" to the audience.
    assert esp.brevo_contacts()[OWNER] == {"emailBlacklisted": False, "attributes": {}, "lists": []}
    assert _acked(esp, "brevo", owner=True) == {ANN: "subscribed", BO: "subscribed"}
    assert run.source("shop").loaded == {"contacts": 3, "consent": 2}
    mc, br = run.dest("mc"), run.dest("brevo")
    assert (mc.status, mc.planned, mc.records_written, mc.records_rejected, mc.records_retrying) == (
        "ok", {"add": 2}, 2, 0, 0)
    assert (br.status, br.planned, br.records_written, br.records_rejected, br.records_retrying) == (
        "ok", {"add": 2}, 2, 0, 0)
    # Mailchimp: one batch-subscribe call for both members.
    assert (mc.write_calls, run.mc_writes) == (1, [BATCH_SUBSCRIBE])
    # Brevo: the "segsync" audience list (and its folder) is created once, then one import.
    assert run.brevo_writes == [("POST", "/v3/contacts/folders"), ("POST", "/v3/contacts/lists"),
                                ("POST", "/v3/contacts/import")]


def test_a_second_run_with_no_new_input_writes_nothing(esp: EspProject) -> None:
    first = esp.sync()
    assert first.summary.status == "succeeded"
    again = esp.sync()
    assert again.source("shop").loaded == {"contacts": 0, "consent": 0}
    assert (again.dest("mc").planned, again.dest("brevo").planned) == ({}, {})
    assert (again.mc_writes, again.brevo_writes) == ([], [])
    assert [h[2] for h in _history(esp)] == [{"mc": 0, "brevo": 0}, {"mc": 1, "brevo": first.dest("brevo").write_calls}]


def test_repeated_runs_settle_and_leave_the_esps_as_the_first_run_did(esp: EspProject) -> None:
    runs = [esp.sync() for _ in range(3)]
    assert [r.summary.status for r in runs] == ["succeeded"] * 3
    last = runs[-1]
    assert (last.dest("mc").planned, last.dest("brevo").planned) == ({}, {})
    assert (last.mc_writes, last.brevo_writes) == ([], [])
    assert _history(esp)[0] == (3, "succeeded", {"mc": 0, "brevo": 0})
    assert esp.mc_members() == SUBSCRIBED_IN_MAILCHIMP
    assert _brevo(esp) == SUBSCRIBED_IN_BREVO


# -- 2. an opt-out in one ESP reaches the other, and stale "subscribed" does not undo it ------


def test_unsubscribe_in_mailchimp_blocklists_in_brevo_and_stays(esp: EspProject) -> None:
    esp.sync_until_quiet()
    # Ann clicks the unsubscribe link of a Mailchimp campaign.
    state = esp.mc.state
    unsubscribed_at = state.clock()
    state.seed_campaign(LIST_ID, "camp0001", unsubscribed_at, [ANN, BO])
    state.record_unsubscribe("camp0001", ANN, unsubscribed_at)

    run = esp.sync()
    assert run.summary.status == "succeeded"
    assert run.dest("brevo").planned == {"unsubscribe": 1}
    assert run.dest("brevo").records_written == 1
    assert _brevo(esp)[ANN]["emailBlacklisted"] is True
    assert _brevo(esp)[BO]["emailBlacklisted"] is False
    assert esp.mc_members()[ANN]["status"] == "unsubscribed"
    assert esp.mc_members()[BO]["status"] == "subscribed"
    assert _effective(esp)[ANN] == "unsubscribed"
    assert _acked(esp, "brevo") == _acked(esp, "mc") == {ANN: "unsubscribed", BO: "subscribed"}

    # Stale "subscribed" from both sides, each older than the opt-out: the files source re-sends
    # an opt-in of June 2024, and Mailchimp reports Ann subscribed with an opt-in time of then.
    esp.append("consent.csv", "ann@example.com,opted_in,2024-06-01T00:00:00Z,form\n")
    with state.lock:
        member = state.member(LIST_ID, ANN)
        member.status = "subscribed"
        member.timestamp_opt = datetime(2024, 6, 1, tzinfo=timezone.utc)
        member.last_changed = state.clock()
    stale = esp.sync()
    assert stale.source("shop").loaded == {"contacts": 0, "consent": 1}
    assert stale.source("mc").loaded["consent"] == 1
    esp.sync()
    assert _effective(esp)[ANN] == "unsubscribed"
    assert _brevo(esp)[ANN]["emailBlacklisted"] is True
    assert esp.mc_members()[BO]["status"] == "subscribed"
    assert _acked(esp, "brevo")[ANN] == _acked(esp, "mc")[ANN] == "unsubscribed"


def test_blocklist_in_brevo_unsubscribes_in_mailchimp_and_stays(esp: EspProject) -> None:
    esp.sync_until_quiet()
    # Bo unsubscribes from a Brevo email: Brevo blocklists the contact.
    esp.brevo.state.seed_contact(BO, blacklisted=True)

    run = esp.sync()
    assert run.summary.status == "succeeded"
    assert run.source("brevo").loaded["consent"] == 1
    assert run.dest("mc").planned == {"unsubscribe": 1}
    assert run.mc_writes == [BATCH_SUBSCRIBE]
    assert esp.mc_members()[BO]["status"] == "unsubscribed"
    assert esp.mc_members()[ANN]["status"] == "subscribed"
    assert _brevo(esp)[BO]["emailBlacklisted"] is True
    assert _effective(esp)[BO] == "unsubscribed"
    assert _acked(esp, "mc") == _acked(esp, "brevo") == {ANN: "subscribed", BO: "unsubscribed"}

    # A stale opt-in from the files source (older than the blocklisting) changes nothing.
    esp.append("consent.csv", "bo@example.com,opted_in,2024-06-01T00:00:00Z,double_opt_in\n")
    stale = esp.sync()
    assert stale.source("shop").loaded == {"contacts": 0, "consent": 1}
    esp.sync()
    assert _effective(esp)[BO] == "unsubscribed"
    assert esp.mc_members()[BO]["status"] == "unsubscribed"
    assert _brevo(esp)[BO]["emailBlacklisted"] is True
    assert _acked(esp, "mc")[BO] == _acked(esp, "brevo")[BO] == "unsubscribed"


def test_an_esp_showing_an_opted_out_contact_as_subscribed_again_is_corrected(esp: EspProject) -> None:
    esp.sync_until_quiet()
    esp.brevo.state.seed_contact(BO, blacklisted=True)
    esp.sync()
    assert esp.mc_members()[BO]["status"] == "unsubscribed"
    # Both ESPs now show Bo as mailable again, without a new opt-in: Brevo's flag is cleared
    # (newer modifiedAt, so the pull sees it) and Mailchimp shows "subscribed" with the old
    # opt-in time (so its consent record is older than the blocklisting).
    esp.brevo.state.update_batch({"contacts": [{"email": BO, "emailBlacklisted": False}]})
    with esp.mc.state.lock:
        member = esp.mc.state.member(LIST_ID, BO)
        opted_in_at = member.timestamp_opt
        member.status = "subscribed"
        member.last_changed = esp.mc.state.clock()
    assert opted_in_at is not None
    esp.sync()
    esp.sync()
    # The opt-out is not undone in the store or in what segsync acknowledges ...
    assert _effective(esp)[BO] == "unsubscribed"
    assert _acked(esp, "mc")[BO] == _acked(esp, "brevo")[BO] == "unsubscribed"
    # ... and nobody who opted out anywhere is mailed from anywhere: segsync restores it.
    assert (esp.mc_members()[BO]["status"], _brevo(esp)[BO]["emailBlacklisted"]) == ("unsubscribed", True)


def test_an_opt_out_older_than_the_esps_echo_of_the_opt_in_still_wins(esp: EspProject) -> None:
    """Ann opted in (2024-01-01) and out (2024-03-01) at the shop; the opt-out reaches segsync
    only after the first syncs, by which time Mailchimp reports her "subscribed" with the time
    segsync itself subscribed her (timestamp_opt = the push)."""
    esp.sync_until_quiet()
    esp.append("consent.csv", "ann@example.com,opted_out,2024-03-01T00:00:00Z,email_link\n")
    run = esp.sync()
    assert run.source("shop").loaded == {"contacts": 0, "consent": 1}
    esp.sync()
    assert _effective(esp)[ANN] == "unsubscribed"
    assert esp.mc_members()[ANN]["status"] == "unsubscribed"
    assert _brevo(esp)[ANN]["emailBlacklisted"] is True


# -- 3. opt-outs reach a destination before its other writes --------------------------------


def test_opt_outs_are_written_before_other_writes(esp: EspProject) -> None:
    esp.append("contacts.csv", "dee@example.com,,\n")
    esp.append("consent.csv", "dee@example.com,opted_in,2024-01-01T00:00:00Z,form\n")
    esp.sync_until_quiet()
    # Dee (no attributes) opts out while Ann's name changes, in the same run.
    esp.append("consent.csv", f"dee@example.com,opted_out,{_now_iso()},email_link\n")
    esp.append("contacts.csv", "ann@example.com,Annie,\n")
    run = esp.sync()
    assert run.summary.status == "succeeded"
    assert run.dest("brevo").planned == {"unsubscribe": 1, "update": 1}
    assert run.dest("mc").planned == {"unsubscribe": 1, "update": 1}
    assert _brevo(esp)[DEE]["emailBlacklisted"] is True
    assert _brevo(esp)[ANN]["attributes"]["FIRSTNAME"] == "Annie"
    assert esp.mc_members()[DEE]["status"] == "unsubscribed"
    assert esp.mc_members()[ANN]["merge_fields"]["FNAME"] == "Annie"
    # Mailchimp: one batch-subscribe carries both (the opt-out entry first, by the runner's order).
    assert run.mc_writes == [BATCH_SUBSCRIBE]
    # Brevo: Dee's blocklisting (a batch update) goes out before Ann's attribute import.
    assert run.brevo_writes == [("POST", "/v3/contacts/batch"), ("POST", "/v3/contacts/import")]


# -- 4. a failing destination ----------------------------------------------------------------


def _brevo_goes_down(esp: EspProject):
    esp.sync_until_quiet()
    esp.append("contacts.csv", "dee@example.com,Dee,\n")
    esp.append("consent.csv", f"dee@example.com,opted_in,{_now_iso()},form\n"
                              f"bo@example.com,opted_out,{_now_iso()},email_link\n")
    # Brevo answers every write with 503 for as long as the fault is on.
    esp.brevo.add_fault(kind="status", status=503, method="POST", times=1_000_000)
    return esp.sync()


def test_a_failing_brevo_leaves_mailchimp_correct_and_the_next_run_catches_up(esp: EspProject) -> None:
    down = _brevo_goes_down(esp)
    assert down.dest("mc").status == "ok"
    assert (down.dest("mc").planned, down.dest("mc").records_written) == ({"add": 1, "unsubscribe": 1}, 2)
    assert down.dest("brevo").records_written == 0
    assert esp.mc_members() == {
        **SUBSCRIBED_IN_MAILCHIMP,
        BO: {"status": "unsubscribed", "merge_fields": {"FNAME": "Bo"}},
        DEE: {"status": "subscribed", "merge_fields": {"FNAME": "Dee"}},
    }
    assert _acked(esp, "mc") == {ANN: "subscribed", BO: "unsubscribed", DEE: "subscribed"}
    # Nothing of Brevo's was acknowledged, and Brevo itself is unchanged.
    assert _acked(esp, "brevo") == {ANN: "subscribed", BO: "subscribed"}
    assert _brevo(esp) == SUBSCRIBED_IN_BREVO

    esp.brevo.faults.clear()
    up = esp.sync()
    assert up.summary.status == "succeeded" and not up.summary.failed
    assert up.dest("brevo").planned == {"add": 1, "unsubscribe": 1}
    assert (up.dest("brevo").records_written, up.dest("brevo").records_retrying) == (2, 0)
    assert _brevo(esp) == {
        **SUBSCRIBED_IN_BREVO,
        BO: {"emailBlacklisted": True, "attributes": {"FIRSTNAME": "Bo"}, "lists": ["segsync"]},
        DEE: {"emailBlacklisted": False, "attributes": {"FIRSTNAME": "Dee"}, "lists": ["segsync"]},
    }
    assert _acked(esp, "brevo") == {ANN: "subscribed", BO: "unsubscribed", DEE: "subscribed"}
    assert esp.mc_members()[BO]["status"] == "unsubscribed"
    assert esp.mc_members()[DEE]["status"] == "subscribed"


def test_a_destination_that_is_down_fails_the_run(esp: EspProject) -> None:
    down = _brevo_goes_down(esp)
    br = down.dest("brevo")
    assert (br.records_written, br.records_retrying) == (0, 2)
    assert br.status == "failed"
    assert down.summary.status == "partial"
    assert down.summary.failed  # `segsync sync` exits 1
    with esp.store() as store:
        history = store.runs()
    assert history[0]["status"] == "partial"
    assert {d["destination"]: d["status"] for d in history[0]["destinations"]} == {"mc": "ok", "brevo": "failed"}


# -- 5. what Mailchimp sends is not always well formed -----------------------------------------


GUS, HAL, IVY = "gus@example.com", "hal@example.com", "ivy@example.com"


def test_one_malformed_member_is_one_record_error_and_the_others_load(esp: EspProject) -> None:
    for email in (GUS, HAL, IVY):
        esp.mc.state.seed_member(LIST_ID, email, merge_fields={"FNAME": email[:3].title()})
    # Ivy's opt-in time is not a time: her consent cannot be read, the rest of her can.
    esp.mc.state.serve_member_as(LIST_ID, IVY, timestamp_opt="yesterday")
    run = esp.sync()
    mc = run.source("mc")
    assert (mc.status, mc.loaded, mc.rejected) == (
        "with-rejections", {"contacts": 3, "consent": 2, "events": 0}, {"contacts": 0, "consent": 1, "events": 0})
    assert mc.error == "1 record(s) rejected (see `segsync runs --errors`)"
    # Never reported as a clean success, though every destination did its job.
    assert run.summary.status == "with-rejections"
    assert (run.dest("mc").status, run.dest("brevo").status) == ("ok", "ok")
    with esp.store() as store:
        errors = store.con.execute(
            "SELECT connection, phase, record, field, reason FROM record_errors ORDER BY occurred_at").fetchall()
        ledger = store.con.execute(
            "SELECT contact_key, status, method FROM consent_ledger WHERE source = 'mc' ORDER BY contact_key").fetchall()
    assert errors == [("mc", "pull:consent", f"member {subscriber_hash(IVY)}", "timestamp_opt",
                       "not an ISO 8601 date-time: 'yesterday'")]
    assert ledger == [(GUS, "opted_in", "form"), (HAL, "opted_in", "form")]
    # The good members' opt-ins reached Brevo; Ivy, with no readable consent, was not added.
    assert {k: v["emailBlacklisted"] for k, v in _brevo(esp).items()} == {ANN: False, BO: False, GUS: False, HAL: False}


# -- 6. a generic API write to Mailchimp does not lift an opt-out ------------------------------


def test_a_mailchimp_resubscribe_through_the_api_does_not_lift_an_opt_out(esp: EspProject) -> None:
    esp.sync_until_quiet()
    esp.append("consent.csv", f"ann@example.com,opted_out,{_now_iso()},email_link\n")
    esp.sync()
    assert (esp.mc_members()[ANN]["status"], _brevo(esp)[ANN]["emailBlacklisted"]) == ("unsubscribed", True)
    # Another tool (or a plugin going around the gate) re-subscribes Ann through Mailchimp's
    # API, after her opt-out: Mailchimp records the source "API - Generic" and a new opt-in time.
    with esp.mc.state.lock:
        member = esp.mc.state.member(LIST_ID, ANN)
        member.status, member.source = "subscribed", "API - Generic"
        member.timestamp_opt = member.last_changed = esp.mc.state.clock()
    esp.wait_for_mailchimp_clock()
    sync = subprocess.run([sys.executable, "-m", "segsync", "sync"], cwd=esp.root, capture_output=True,
                          text=True, timeout=120)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    with esp.store() as store:
        pulled = store.con.execute(
            "SELECT status, method FROM consent_ledger WHERE source = 'mc' AND contact_key = ? "
            "ORDER BY recorded_at DESC LIMIT 1", [ANN]).fetchall()
    # The API opt-in was read and kept as evidence, as method api, which lifts nothing ...
    assert pulled == [("opted_in", "api")]
    assert _effective(esp)[ANN] == "unsubscribed"
    # ... so Ann stays blocklisted in Brevo, Mailchimp is set back to unsubscribed, and Bo is untouched.
    assert _brevo(esp)[ANN]["emailBlacklisted"] is True
    assert esp.mc_members()[ANN]["status"] == "unsubscribed"
    assert esp.mc_members()[BO]["status"] == "subscribed"
    assert _acked(esp, "mc")[ANN] == _acked(esp, "brevo")[ANN] == "unsubscribed"

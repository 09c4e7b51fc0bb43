"""Consent across systems: timelines through three connected systems (A, B, C) and a shop source.

Each system both reports what happens there (its consent stream) and is written to by segsync;
assertions read what each system holds, the store's audit and the record errors.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from segsync import hookimpl
from segsync.cli import cli
from segsync.store import Store

from .consent_systems import ANN, BO, CONFIG, CY, SYSTEMS, SystemPlugin, reset_systems  # noqa: F401


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _ago(**kw) -> str:
    return _iso(datetime.now(timezone.utc) - timedelta(**kw))


@pytest.fixture
def shop(project):
    project.write_config(CONFIG)
    project.write("consent.csv", """
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
    """)
    return project


def _run(project, *plugins, **options):
    return project.run(SystemPlugin(), *plugins, **options)


def _status(name: str) -> dict[str, str]:
    return {k: v["status"] for k, v in SYSTEMS[name].contacts.items()}


def _store(project) -> Store:
    return Store(project.root / "store.duckdb", read_only=True)


def _cli(project, *args, plugins=()):
    host = project.host(SystemPlugin(), *plugins)
    host.add_commands(cli)
    return CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), *args], obj=host)


def test_opt_out_in_a_reaches_b_and_c_on_the_next_run_and_is_audited(shop) -> None:
    first = _run(shop)
    assert first.status == "succeeded"
    for name in "abc":
        assert _status(name) == {ANN: "subscribed", BO: "subscribed"}
    SYSTEMS["a"].report(ANN, "opted_out", _ago(minutes=1), "email_link")

    run = _run(shop)
    assert run.status == "succeeded"
    for name in "abc":
        assert _status(name) == {ANN: "unsubscribed", BO: "subscribed"}
    # B and C got exactly one write for Ann: the unsubscribe.
    assert [w for w in SYSTEMS["b"].writes if w[1] == ANN] == [("upsert", ANN, "subscribed"), ("upsert", ANN, "unsubscribed")]
    with _store(shop) as store:
        ledger_id = store.scalar("SELECT id FROM consent_ledger WHERE source = 'a' AND status = 'opted_out'")
        audit = store.con.execute(
            "SELECT run_id, destination, before_status, after_status, ledger_id, outcome FROM status_changes "
            "WHERE contact_key = ? AND run_id = ? ORDER BY destination", [ANN, run.run_id]).fetchall()
    assert audit == [(run.run_id, d, "subscribed", "unsubscribed", ledger_id, "acknowledged") for d in "abc"]


def test_a_stale_subscribed_after_the_opt_out_does_not_resubscribe(shop) -> None:
    _run(shop)
    SYSTEMS["a"].report(ANN, "opted_out", _ago(hours=2), "email_link")
    _run(shop)
    # C says "subscribed" afterwards (a sync of its own, newer than the opt-out), and the shop
    # re-imports an old export saying the same: neither is an explicit opt-in.
    SYSTEMS["c"].report(ANN, "opted_in", _ago(minutes=30), "sync")
    shop.append("consent.csv", f"ann@example.com,opted_in,{_ago(minutes=20)},import\n")
    for _ in range(2):
        run = _run(shop)
        assert run.status == "succeeded"
    for name in "abc":
        # segsync's last word to every system is the unsubscribe (C changed its own record).
        assert [w[2] for w in SYSTEMS[name].writes if w[1] == ANN] == ["subscribed", "unsubscribed"], name
    assert _status("a")[ANN] == _status("b")[ANN] == "unsubscribed"
    with _store(shop) as store:
        assert store.scalar("SELECT count(*) FROM status_changes WHERE contact_key = ? AND after_status = "
                            "'subscribed' AND changed_at > (SELECT min(changed_at) FROM status_changes "
                            "WHERE after_status = 'unsubscribed')", [ANN]) == 0


def test_a_newer_explicit_opt_in_lifts_the_opt_out(shop) -> None:
    _run(shop)
    SYSTEMS["b"].report(BO, "opted_out", _ago(days=2), "email_link")
    _run(shop)
    assert all(_status(n)[BO] == "unsubscribed" for n in "abc")
    # An explicit opt-in *older* than the opt-out changes nothing; a newer one lifts it.
    shop.append("consent.csv", f"bo@example.com,opted_in,{_ago(days=3)},form\n")
    _run(shop)
    assert all(_status(n)[BO] == "unsubscribed" for n in "abc")
    shop.append("consent.csv", f"bo@example.com,opted_in,{_ago(days=1)},double_opt_in\n")
    run = _run(shop)
    assert all(_status(n)[BO] == "subscribed" for n in "abc")
    assert {d.name: d.planned for d in run.destinations} == {n: {"resubscribe": 1} for n in "abc"}


def test_a_hard_bounce_in_b_suppresses_in_a_and_c(shop) -> None:
    _run(shop)
    SYSTEMS["b"].report(ANN, "bounced", _ago(minutes=5), "bounce")
    _run(shop)
    assert {n: _status(n)[ANN] for n in "abc"} == {"a": "cleaned", "b": "cleaned", "c": "cleaned"}
    assert _status("a")[BO] == "subscribed"


def test_a_complaint_survives_every_later_import(shop) -> None:
    _run(shop)
    SYSTEMS["c"].report(BO, "complained", _ago(hours=1), "complaint")
    _run(shop)
    for minutes, method in ((50, "import"), (40, "sync"), (30, "admin"), (20, "purchase")):
        shop.append("consent.csv", f"bo@example.com,opted_in,{_ago(minutes=minutes)},{method}\n")
        SYSTEMS["a"].report(BO, "opted_in", _ago(minutes=minutes), "sync")
        run = _run(shop)
        assert run.status == "succeeded"
        assert {n: _status(n)[BO] for n in "abc"} == {n: "complained" for n in "abc"}, method


def test_an_explicit_opt_in_from_another_system_within_the_clock_skew_does_not_lift(shop) -> None:
    _run(shop)
    opted_out = datetime.now(timezone.utc) - timedelta(hours=1)
    SYSTEMS["a"].report(ANN, "opted_out", _iso(opted_out), "email_link")
    # Two minutes later by C's clock: inside the 5-minute allowance, so the opt-out stands.
    SYSTEMS["c"].report(ANN, "opted_in", _iso(opted_out + timedelta(minutes=2)), "form")
    _run(shop)
    assert _status("b")[ANN] == "unsubscribed"
    SYSTEMS["c"].report(ANN, "opted_in", _iso(opted_out + timedelta(minutes=10)), "form")
    _run(shop)
    assert _status("b")[ANN] == "subscribed"


def test_an_api_or_admin_opt_in_in_another_system_does_not_lift_an_opt_out(shop) -> None:
    """Only the person's own consent lifts an opt-out: another tool writing "subscribed" through a
    system's API (or an admin there, or a pending request from the API) is not that."""
    _run(shop)
    SYSTEMS["a"].report(ANN, "opted_out", _ago(hours=2), "email_link")
    _run(shop)
    for minutes, status, method in ((50, "opted_in", "api"), (40, "pending", "api"), (30, "opted_in", "admin")):
        SYSTEMS["c"].report(ANN, status, _ago(minutes=minutes), method)
        run = _run(shop)
        assert run.status == "succeeded", method
        assert {n: _status(n)[ANN] for n in "abc"} == {n: "unsubscribed" for n in "abc"}, method
    with _store(shop) as store:
        assert store.con.execute(
            "SELECT count(*) FROM status_changes WHERE contact_key = ? AND after_status = 'subscribed' "
            "AND changed_at > (SELECT min(changed_at) FROM status_changes WHERE after_status = 'unsubscribed')",
            [ANN]).fetchone() == (0,)
    # The person signs up again on a form: that lifts it.
    SYSTEMS["c"].report(ANN, "opted_in", _ago(minutes=10), "form")
    _run(shop)
    assert {n: _status(n)[ANN] for n in "abc"} == {n: "subscribed" for n in "abc"}


def test_a_future_dated_opt_in_is_capped_at_its_arrival(shop) -> None:
    _run(shop)
    # C's clock is a day ahead: its opt-in "tomorrow" must not outrank an opt-out made after it arrived.
    SYSTEMS["c"].report(ANN, "opted_in", _ago(days=-1), "form")
    _run(shop)
    SYSTEMS["a"].report(ANN, "opted_out", _ago(seconds=-1), "email_link")
    _run(shop)
    assert {n: _status(n)[ANN] for n in "abc"} == {n: "unsubscribed" for n in "abc"}


class Crash(BaseException):
    """Stands for the process dying (kill -9, power loss) in the middle of a run."""


def test_a_crash_between_propagation_writes_is_resumed_on_the_next_run(shop) -> None:
    _run(shop)
    SYSTEMS["a"].report(ANN, "opted_out", _ago(minutes=1), "email_link")

    class DieBeforeC:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "c":
                raise Crash()

    with pytest.raises(Crash):
        _run(shop, DieBeforeC())
    assert (_status("a")[ANN], _status("b")[ANN], _status("c")[ANN]) == ("unsubscribed", "unsubscribed", "subscribed")
    b_writes = len(SYSTEMS["b"].writes)
    run = _run(shop)
    assert run.status == "succeeded"
    assert _status("c")[ANN] == "unsubscribed"
    assert {d.name: d.planned for d in run.destinations} == {"a": {}, "b": {}, "c": {"unsubscribe": 1}}
    assert len(SYSTEMS["b"].writes) == b_writes  # nothing sent twice
    with _store(shop) as store:
        assert store.con.execute("SELECT status FROM runs ORDER BY id").fetchall() == [
            ("succeeded",), ("failed",), ("succeeded",)]


def test_suppression_list_is_global_and_sticky(shop) -> None:
    _run(shop)
    added = _cli(shop, "suppress", "add", "Bo@Example.com", "--reason", "legal", "--note", "ticket 42")
    assert added.exit_code == 0, added.output
    assert "suppressed: bo@example.com (email, legal" in added.output
    _run(shop)
    assert {n: _status(n)[BO] for n in "abc"} == {n: "unsubscribed" for n in "abc"}
    # Even a newer explicit opt-in does not lift a suppression; only `suppress remove` does.
    shop.append("consent.csv", f"bo@example.com,opted_in,{_ago(minutes=1)},form\n")
    _run(shop)
    assert _status("a")[BO] == "unsubscribed"
    listed = _cli(shop, "suppress", "list", "--json")
    entries = json.loads(listed.output)
    assert [(e["contact_key"], e["channel"], e["reason"], e["source"], e["note"]) for e in entries] == [
        (BO, "email", "legal", "cli", "ticket 42")]
    removed = _cli(shop, "suppress", "remove", BO, "--note", "re-subscribed on the web")
    assert "1 entry lifted" in removed.output
    _run(shop)
    assert _status("a")[BO] == "subscribed"
    assert json.loads(_cli(shop, "suppress", "list", "--json").output) == []
    assert json.loads(_cli(shop, "suppress", "list", "--all", "--json").output)[0]["removed_by"] == "cli"


def _every_text_cell(store: Store) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text-like cell in every table of the store."""
    cells = []
    tables = [r[0] for r in store.con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
    ).fetchall()]
    for table in tables:
        columns = [r[0] for r in store.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'",
            [table]).fetchall()]
        for column in columns:
            for (value,) in store.con.execute(f'SELECT "{column}"::VARCHAR FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall():
                cells.append((table, column, value))
    return cells


def test_erasure_removes_every_trace_but_the_hashed_suppression_and_blocks_a_reimport(shop) -> None:
    shop.append("events.jsonl", '{"email": "ann@example.com", "type": "order.completed", "timestamp": "2024-03-01T00:00:00Z", "id": "o1", "value": 20}\n')
    SYSTEMS.setdefault("a", __import__("tests.consent_systems", fromlist=["System"]).System())
    _run(shop)
    _cli(shop, "suppress", "add", ANN, "--reason", "complaint")
    _run(shop)
    assert ANN in SYSTEMS["a"].contacts

    result = _cli(shop, "forget", "--yes", "ANN@example.com")
    # The shop source still holds Ann (segsync cannot write there): something is left, exit 1.
    assert result.exit_code == 1, result.output
    assert "a***@e***.com: removed from the store" in result.output
    for name in "abc":
        assert f"  {name}" in result.output and "deleted" in result.output
        assert ANN not in SYSTEMS[name].contacts
        assert SYSTEMS[name].writes[-1] == ("delete", ANN, "none")
    assert "shop" in result.output and "by hand" in result.output  # a source segsync cannot write to
    assert result.output.splitlines()[-1] == "  left (still holding the person): shop"

    with _store(shop) as store:
        cells = _every_text_cell(store)
        leftovers = [c for c in cells if "ann@" in c[2].lower() or ANN.replace("@", "%40") in c[2]]
        assert leftovers == []
        salt = store.scalar("SELECT salt FROM consent_salt")
        import hashlib
        digest = hashlib.sha256((salt + ANN).encode()).hexdigest()
        assert [c[0] for c in cells if digest in c[2]] == ["erasures", "suppressions", "suppressions"]
        assert store.scalar("SELECT count(*) FROM erasures WHERE address IS NULL AND completed_at IS NOT NULL") == 1
        # Bo is untouched.
        assert store.scalar("SELECT count(*) FROM contacts WHERE contact_key = ?", [BO]) == 1

    # The shop exports Ann again (new rows): the pull is dropped and nothing is pushed for her.
    shop.append("contacts.csv", "ann@example.com,Ann,gold\n")
    shop.append("consent.csv", f"ann@example.com,opted_in,{_ago(minutes=1)},form\n")
    run = _run(shop)
    assert run.sources[0].loaded["consent"] == 1
    assert all(ANN not in SYSTEMS[n].contacts for n in "abc")
    with _store(shop) as store:
        assert [c for c in _every_text_cell(store) if "ann@" in c[2].lower()] == []
        errors = store.con.execute("SELECT record, reason FROM record_errors WHERE phase = 'erase'").fetchall()
    assert errors == [("a***@e***.com", "a forgotten person was pulled again; dropped (only the hashed suppression remains)")]


def test_a_system_that_fails_to_delete_is_retried_on_later_runs_until_done(shop) -> None:
    _run(shop)
    SYSTEMS["b"].fail_deletes = True
    result = _cli(shop, "forget", "--yes", "--json", BO)
    assert result.exit_code == 1
    report = json.loads(result.output)[0]
    systems = {s["connection"]: s for s in report["systems"]}
    assert systems["a"]["status"] == systems["c"]["status"] == "done"
    assert systems["b"]["status"] == "pending" and "503" in systems["b"]["error"]
    with _store(shop) as store:
        # Until B confirms, the address is kept for the retry only.
        assert store.scalar("SELECT address FROM erasures") == BO
    still = _run(shop)
    assert [(e["connection"], e["status"]) for e in still.erasures] == [
        ("a", "done"), ("b", "pending"), ("c", "done"), ("shop", "left")]
    assert BO in SYSTEMS["b"].contacts
    SYSTEMS["b"].fail_deletes = False
    done = _run(shop)
    assert [(e["connection"], e["status"]) for e in done.erasures] == [
        ("a", "done"), ("b", "done"), ("c", "done"), ("shop", "left")]
    assert BO not in SYSTEMS["b"].contacts
    with _store(shop) as store:
        assert store.con.execute("SELECT address, completed_at IS NOT NULL FROM erasures").fetchall() == [(None, True)]
        assert [c for c in _every_text_cell(store) if "bo@" in c[2].lower()] == []
    quiet = _run(shop)
    assert quiet.erasures == []


def test_forget_reads_addresses_from_a_file(shop) -> None:
    _run(shop)
    listing = shop.root / "erase.txt"
    listing.write_text("# requests of May\nann@example.com\nBO@example.com\n")
    result = _cli(shop, "forget", "--yes", "--file", str(listing), "--json")
    assert result.exit_code == 1, result.output  # the shop source still holds both
    assert [r["email"] for r in json.loads(result.output)] == [ANN, BO]
    assert [r["left"] for r in json.loads(result.output)] == [["shop"], ["shop"]]
    assert all(SYSTEMS[n].contacts == {} for n in "abc")


def test_consent_show_explains_the_decision_and_what_each_system_was_told(shop) -> None:
    _run(shop)
    SYSTEMS["a"].report(ANN, "opted_out", _ago(minutes=10), "email_link")
    run = _run(shop)
    shown = _cli(shop, "consent", "show", ANN, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert [(r["source"], r["status"], r["method"]) for r in data["ledger"]] == [
        ("shop", "opted_in", "form"), ("a", "opted_out", "email_link")]
    effective = data["effective"][0]
    assert (effective["channel"], effective["purpose"], effective["status"], effective["policy"]) == (
        "email", "marketing", "unsubscribed", "default")
    assert effective["decided_by"]["ledger"]["source"] == "a"
    by_dest = {d["destination"]: d for d in data["destinations"]}
    assert set(by_dest) == {"a", "b", "c", "shop"}
    assert by_dest["b"]["holds"]["status"] == "unsubscribed"
    last = by_dest["b"]["last_status_change"]
    assert (last["run_id"], last["before_status"], last["after_status"], last["outcome"]) == (
        run.run_id, "subscribed", "unsubscribed", "acknowledged")
    assert last["ledger_id"] == effective["decided_by"]["ledger"]["id"]
    text = _cli(shop, "consent", "show", ANN)
    assert "email/marketing: unsubscribed  [policy default; decided by ledger" in text.output
    assert "b: should hold unsubscribed [policy default]; holds unsubscribed" in text.output


def test_consent_export_holds_everything_about_the_person(shop) -> None:
    shop.write_config(CONFIG + '\n[[segments]]\nname = "openers"\nrule = \'opens(365d) >= 1\'\n')
    shop.write("events.jsonl", '{"email": "ann@example.com", "type": "email.opened", "timestamp": "%s", "id": "e1"}\n'
               % _ago(days=3))
    _run(shop)
    result = _cli(shop, "consent", "export", ANN, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"email", "attributes", "identities", "events", "consent_ledger", "suppressions",
                         "segment_history", "destinations"}
    assert data["attributes"]["first_name"] == "Ann" and data["attributes"]["custom"] == {"tier": "gold"}
    assert [e["type"] for e in data["events"]] == ["email.opened"]
    assert [r["method"] for r in data["consent_ledger"]] == ["form"]
    assert [s["segment"] for s in data["segment_history"]] == ["openers"]
    assert {i["connection"] for i in data["identities"]} == {"a", "b", "c"}
    assert sorted((s["destination"], s["after_status"]) for s in data["destinations"]["status_changes"]) == [
        ("a", "subscribed"), ("b", "subscribed"), ("c", "subscribed")]
    assert {m["segment"] for m in data["destinations"]["memberships"]} == {"openers"}
    missing = _cli(shop, "consent", "export", "nobody@example.com")
    assert missing.exit_code == 1 and "n***@e***.com" in missing.output

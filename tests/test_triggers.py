"""Segment-entry triggers in sync runs: entries and exits found once, queued durably, delivered
exactly once to a file and to a signed webhook (a real HTTP server on 127.0.0.1), failures
reported per trigger and retried, a crash between delivery and marking neither losing nor
duplicating anything on the receiving side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from segsync import hookimpl
from segsync.config import ConfigError
from segsync.statuses import PartStatus, RunStatus

from .conftest import BASIC_CONFIG
from .trigger_receiver import receiver

SECRET = "s3cret-signing-key"
GOLD = """
    [[segments]]
    name = "gold"
    rule = 'attr.tier == "gold"'
"""
FILE_TRIGGERS = """
    [[triggers]]
    name = "gold-welcome"
    segment = "gold"
    on = "enter"
    action = "file"
    path = "out/gold-entries.jsonl"

    [[triggers]]
    name = "gold-farewell"
    segment = "gold"
    on = "exit"
    action = "file"
    path = "out/gold-exits.jsonl"
"""
CONTACTS = "email,first_name,tier\nann@example.com,Ann,gold\nbo@example.com,Bo,{bo}\ncy@example.com,Cy,silver\n"


def webhook_trigger(url: str) -> str:
    return f"""
    [[triggers]]
    name = "gold-hook"
    segment = "gold"
    action = "webhook"
    url = "{url}"
    max_attempts = 2
"""


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def outbox(project) -> list[tuple]:
    return project.query("SELECT trigger, contact_key, change, status, attempts FROM trigger_outbox ORDER BY id")


def set_bo(project, tier: str) -> None:
    project.write("contacts.csv", CONTACTS.format(bo=tier))


def test_first_run_is_the_baseline_then_each_entry_and_exit_is_written_once(project):
    project.write_config(BASIC_CONFIG + GOLD + FILE_TRIGGERS)
    entries, exits = project.root / "out/gold-entries.jsonl", project.root / "out/gold-exits.jsonl"

    first = project.run()
    assert first.status == RunStatus.SUCCEEDED
    assert first.segment_changes == {}  # Ann was gold before triggers saw the segment: no entry
    assert [(t.name, t.status, t.queued, t.delivered) for t in first.triggers] == [
        ("gold-welcome", PartStatus.OK, 0, 0), ("gold-farewell", PartStatus.OK, 0, 0)]
    assert not entries.exists()

    set_bo(project, "gold")
    second = project.run()
    assert second.status == RunStatus.SUCCEEDED
    assert second.segment_changes == {"gold": {"enter": 1, "exit": 0}}
    assert [(t.name, t.queued, t.delivered) for t in second.triggers] == [("gold-welcome", 1, 1), ("gold-farewell", 0, 0)]
    [line] = lines(entries)
    assert {k: line[k] for k in ("trigger", "segment", "change", "email", "origin", "run_id")} == {
        "trigger": "gold-welcome", "segment": "gold", "change": "enter", "email": "bo@example.com",
        "origin": "sync", "run_id": second.run_id}
    assert outbox(project) == [("gold-welcome", "bo@example.com", "enter", "delivered", 1)]
    assert project.query("SELECT idempotency_key FROM trigger_outbox") == [(line["id"],)]

    third = project.run()  # nothing changed: nothing queued, nothing written
    assert third.segment_changes == {} and len(lines(entries)) == 1

    set_bo(project, "bronze")
    fourth = project.run()
    assert fourth.segment_changes == {"gold": {"enter": 0, "exit": 1}}
    assert [(x["email"], x["change"]) for x in lines(exits)] == [("bo@example.com", "exit")]
    assert len(lines(entries)) == 1
    runs = project.query("SELECT counts->'$.triggers' FROM runs WHERE id = ?", [fourth.run_id])
    assert json.loads(runs[0][0])["gold-farewell"] == {
        "status": "ok", "queued": 1, "delivered": 1, "rejected": 0, "blocked": 0, "failed": 0, "error": None}


def test_the_hook_sees_entries_and_exits_once_per_run(project):
    project.write_config(BASIC_CONFIG + GOLD)  # no [[triggers]]: the hook alone asks for changes
    seen = []

    class Observer:
        @hookimpl
        def segsync_segment_changes(self, changes):
            seen.append((changes.origin, changes.run_id, changes.baselined,
                         [(c.segment, c.contact_key, c.change) for c in changes.changes]))

    first = project.run(Observer())
    set_bo(project, "gold")
    second = project.run(Observer())
    project.write("contacts.csv", CONTACTS.format(bo="bronze").replace("Ann,gold", "Ann,bronze"))
    third = project.run(Observer())
    assert seen == [
        ("sync", first.run_id, ("gold",), []),
        ("sync", second.run_id, (), [("gold", "bo@example.com", "enter")]),
        ("sync", third.run_id, (), [("gold", "ann@example.com", "exit"), ("gold", "bo@example.com", "exit")]),
    ]


def test_a_failing_observer_is_logged_and_changes_nothing(project, caplog):
    project.write_config(BASIC_CONFIG + GOLD + FILE_TRIGGERS)

    class Broken:
        @hookimpl
        def segsync_segment_changes(self, changes):
            raise RuntimeError("crm is down")

    project.run(Broken())
    set_bo(project, "gold")
    summary = project.run(Broken())
    assert summary.status == RunStatus.SUCCEEDED
    assert "failed in segsync_segment_changes: RuntimeError: crm is down" in caplog.text
    assert [x["email"] for x in lines(project.root / "out/gold-entries.jsonl")] == ["bo@example.com"]


def test_without_triggers_or_observers_no_change_is_computed(project):
    project.write_config(BASIC_CONFIG + GOLD)
    project.run()
    set_bo(project, "gold")
    summary = project.run()
    assert summary.segment_changes == {} and summary.triggers == []
    assert project.query("SELECT count(*) FROM trigger_segments") == [(0,)]


def test_webhook_deliveries_are_signed_and_carry_their_idempotency_key(project, monkeypatch):
    monkeypatch.setenv("SEGSYNC_TRIGGER_GOLD_HOOK_SECRET", SECRET)
    with receiver(SECRET) as rec:
        project.write_config(BASIC_CONFIG + GOLD + webhook_trigger(rec.url))
        project.run()
        set_bo(project, "gold")
        summary = project.run()
    assert [(t.name, t.status, t.delivered) for t in summary.triggers] == [("gold-hook", PartStatus.OK, 1)]
    [request] = rec.requests
    assert request["valid"] is True
    [delivery] = request["deliveries"]
    assert (delivery["email"], delivery["segment"], delivery["change"]) == ("bo@example.com", "gold", "enter")
    assert project.query("SELECT idempotency_key FROM trigger_outbox") == [(delivery["id"],)]
    assert len(request["headers"]["Idempotency-Key"]) == 64


def test_a_failing_webhook_fails_the_trigger_and_is_retried_next_run_with_the_same_key(project, monkeypatch):
    monkeypatch.setenv("SEGSYNC_TRIGGER_GOLD_HOOK_SECRET", SECRET)
    monkeypatch.setattr("segsync.http.retry.RetryPolicy.wait_seconds", lambda self, n, retry_after=None: 0.0)
    with receiver(SECRET) as rec:
        project.write_config(BASIC_CONFIG + GOLD + webhook_trigger(rec.url))
        project.run()
        set_bo(project, "gold")
        rec.statuses = [503, 503]  # both attempts of this run
        failed = project.run()
        assert failed.status == RunStatus.PARTIAL
        [report] = failed.triggers
        assert (report.status, report.delivered, report.failed) == (PartStatus.FAILED, 0, 1)
        assert report.reasons == ["webhook answered HTTP 503: "]
        errors = project.query("SELECT connection, phase, record, field, retryable FROM record_errors "
                               "WHERE run_id = ?", [failed.run_id])
        assert errors == [("gold-hook", "trigger", "b***@e***.com", "webhook", True)]
        assert outbox(project) == [("gold-hook", "bo@example.com", "enter", "failed", 1)]  # one hand-over, two HTTP attempts

        retried = project.run()
    assert retried.status == RunStatus.SUCCEEDED
    assert [(t.status, t.queued, t.delivered) for t in retried.triggers] == [(PartStatus.OK, 0, 1)]
    assert [r["status"] for r in rec.requests] == [503, 503, 200]
    assert len({r["deliveries"][0]["id"] for r in rec.requests}) == 1
    assert len(rec.kept) == 1
    assert outbox(project) == [("gold-hook", "bo@example.com", "enter", "delivered", 2)]


def test_a_refusing_webhook_is_a_rejection_not_retried(project, monkeypatch):
    monkeypatch.setenv("SEGSYNC_TRIGGER_GOLD_HOOK_SECRET", SECRET)
    with receiver(SECRET) as rec:
        project.write_config(BASIC_CONFIG + GOLD + webhook_trigger(rec.url))
        project.run()
        set_bo(project, "gold")
        rec.statuses = [422]
        summary = project.run()
        again = project.run()
    assert summary.status == RunStatus.WITH_REJECTIONS
    assert [(t.status, t.rejected) for t in summary.triggers] == [(PartStatus.WITH_REJECTIONS, 1)]
    assert [(t.status, t.delivered, t.rejected) for t in again.triggers] == [(PartStatus.OK, 0, 0)]
    assert len(rec.requests) == 1
    assert outbox(project) == [("gold-hook", "bo@example.com", "enter", "rejected", 1)]


def test_a_webhook_trigger_without_its_secret_fails_its_part_and_keeps_the_entry(project, monkeypatch):
    monkeypatch.delenv("SEGSYNC_TRIGGER_GOLD_HOOK_SECRET", raising=False)
    project.write_config(BASIC_CONFIG + GOLD + webhook_trigger("http://127.0.0.1:9/none"))
    project.run()
    set_bo(project, "gold")
    summary = project.run()
    assert summary.status == RunStatus.PARTIAL
    [report] = summary.triggers
    assert report.status == PartStatus.FAILED
    assert report.error == ("trigger 'gold-hook': set SEGSYNC_TRIGGER_GOLD_HOOK_SECRET (the webhook's signing key) "
                            "in the environment or in .env")
    assert outbox(project) == [("gold-hook", "bo@example.com", "enter", "pending", 0)]


def test_the_webhook_secret_never_reaches_the_store_or_the_log(project, monkeypatch, caplog):
    monkeypatch.setenv("SEGSYNC_TRIGGER_GOLD_HOOK_SECRET", SECRET)
    with receiver(SECRET) as rec:
        project.write_config(BASIC_CONFIG + GOLD + webhook_trigger(rec.url))
        project.run()
        set_bo(project, "gold")
        rec.statuses = [400]
        project.run()
    dump = json.dumps(project.query("SELECT * FROM trigger_outbox"), default=str)
    dump += json.dumps(project.query("SELECT * FROM record_errors"), default=str)
    dump += json.dumps(project.query("SELECT counts FROM runs"), default=str)
    assert SECRET not in dump and SECRET not in caplog.text


def test_a_file_delivery_in_doubt_is_not_written_twice(project):
    """The process died after the lines reached the file, before their outcome was recorded."""
    project.write_config(BASIC_CONFIG + GOLD + FILE_TRIGGERS)
    project.run()
    set_bo(project, "gold")
    project.run()
    entries = project.root / "out/gold-entries.jsonl"
    [written] = lines(entries)
    from segsync.config import load_config
    from segsync.store import Store

    with Store(load_config(project.root / "segsync.toml").store_path) as store:  # the state the crash left
        store.con.execute("UPDATE trigger_outbox SET status = 'sending'")
    summary = project.run()
    assert [(t.name, t.delivered) for t in summary.triggers] == [("gold-welcome", 1), ("gold-farewell", 0)]
    assert lines(entries) == [written]
    assert outbox(project) == [("gold-welcome", "bo@example.com", "enter", "delivered", 2)]


@pytest.mark.parametrize(("table", "problem"), [
    ('name = "t"\nsegment = "gold"\naction = "webhook"', "triggers.t: a webhook trigger needs url"),
    ('name = "t"\nsegment = "gold"\naction = "event"\nconnection = "upload"',
     "triggers.t: a event trigger needs event"),
    ('name = "t"\nsegment = "golden"\naction = "file"\npath = "x.jsonl"',
     "triggers.t.segment: 'golden' is not a segment; did you mean 'gold'?"),
    ('name = "t"\nsegment = "gold"\naction = "tag"\ntag = "x"\nconnection = "mailchimp"',
     "triggers.t.connection: 'mailchimp' is not a connection"),
    ('name = "t"\nsegment = "gold"\naction = "file"\npath = "x.jsonl"\nurl = "http://127.0.0.1/"',
     "triggers.t: url is not used by a file trigger"),
    ('name = "t"\nsegment = "gold"\non = "leave"\naction = "file"\npath = "x.jsonl"', "triggers.t.on"),
])
def test_a_wrong_trigger_table_is_a_config_error_naming_it(project, table, problem):
    project.write_config(BASIC_CONFIG + GOLD + "\n[[triggers]]\n" + table + "\n")
    with pytest.raises(ConfigError) as raised:
        project.run()
    assert problem in str(raised.value)


def test_a_crash_between_delivery_and_marking_neither_loses_nor_duplicates(project, tmp_path):
    """SIGKILL the real `segsync sync` while the webhook holds the delivery unanswered: the
    receiver has it, the store still says `sending`. The next run sends it again with the same
    key; the receiver keeps it once and the outbox ends `delivered`."""
    env = {**os.environ, "SEGSYNC_TRIGGER_GOLD_HOOK_SECRET": SECRET, "SEGSYNC_PLUGINS": "files"}
    sync = [sys.executable, "-m", "segsync", "sync"]
    with receiver(SECRET) as rec:
        project.write_config(BASIC_CONFIG + GOLD + webhook_trigger(rec.url))
        project.run()
        set_bo(project, "gold")
        rec.hold.set()
        proc = subprocess.Popen(sync, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert rec.received.wait(120), "the sync never delivered"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        assert outbox(project) == [("gold-hook", "bo@example.com", "enter", "sending", 1)]
        rec.hold.clear()
        done = subprocess.run(sync, cwd=project.root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(rec.requests) == 2
    first, second = (r["deliveries"] for r in rec.requests)
    assert first == second  # the same delivery, the same key
    assert list(rec.kept) == [first[0]["id"]]
    assert outbox(project) == [("gold-hook", "bo@example.com", "enter", "delivered", 2)]


def test_the_triggers_command_lists_each_trigger_and_its_deliveries_by_state(project, monkeypatch):
    from .test_cli import run

    monkeypatch.delenv("SEGSYNC_TRIGGER_GOLD_HOOK_SECRET", raising=False)
    project.write_config(BASIC_CONFIG + GOLD + FILE_TRIGGERS
                         + webhook_trigger("http://127.0.0.1:9/hooks?token=abc123xyz"))
    project.run()
    set_bo(project, "gold")
    project.run()  # the file trigger delivers Bo; the webhook has no secret: Bo waits
    env = {"SEGSYNC_PLUGINS": "files", "COLUMNS": "250"}
    listed = run(["triggers", "--json"], project.root, env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["gold-welcome"]["deliveries"] == {
        "pending": 0, "sending": 0, "failed": 0, "delivered": 1, "rejected": 0, "blocked": 0}
    assert rows["gold-hook"]["deliveries"]["pending"] == 1
    assert rows["gold-hook"]["target"].startswith("webhook http://127.0.0.1:9/hooks?token=")
    assert "abc123xyz" not in listed.stdout  # a token in the URL is not printed
    assert rows["gold-farewell"]["on"] == "exit"
    text = run(["triggers"], project.root, env=env)
    assert text.returncode == 0, text.stderr
    assert "gold-welcome" in text.stdout and "file out/gold-entries.jsonl" in text.stdout
    assert "1 deliveries are owed: the next `segsync sync` sends them" in text.stdout


def test_a_webhook_driven_run_delivers_its_entries_with_its_origin(project):
    """An update a service pushed (segsync serve → segsync.live) is a run: its entries are found
    and delivered at once, and say where they came from."""
    from segsync import Batch, Stream
    from segsync.live import LiveProject

    project.write_config(BASIC_CONFIG + GOLD + FILE_TRIGGERS)
    seen = []

    class Observer:
        @hookimpl
        def segsync_segment_changes(self, changes):
            seen.append((changes.origin, [(c.contact_key, c.change) for c in changes.changes]))

    live = LiveProject(project.root / "segsync.toml", host=project.host(Observer()))
    live.sync()
    summary = live.apply({"shop": [Batch(Stream.CONTACTS, None, [{"email": "bo@example.com", "tier": "gold"}])]})
    assert summary.status == RunStatus.SUCCEEDED
    assert seen == [("schedule", []), ("webhook", [("bo@example.com", "enter")])]
    [line] = lines(project.root / "out/gold-entries.jsonl")
    assert (line["email"], line["origin"], line["run_id"]) == ("bo@example.com", "webhook", summary.run_id)


def test_forgetting_a_person_removes_their_outbox_rows_and_baseline(project):
    from .test_cli import run

    project.write_config(BASIC_CONFIG + GOLD + FILE_TRIGGERS)
    project.run()
    set_bo(project, "gold")
    project.run()
    assert project.query("SELECT count(*) FROM trigger_outbox WHERE contact_key = 'bo@example.com'") == [(1,)]
    done = run(["forget", "--yes", "bo@example.com"], project.root, env={"SEGSYNC_PLUGINS": "files"})
    # exit 1: the read-only source folder still holds the person (forget says so); the store is clean
    assert done.returncode == 1 and "left (still holding the person): shop" in done.stdout, done.stderr
    for table in ("trigger_outbox", "trigger_baseline"):
        assert project.query(f"SELECT count(*) FROM {table} WHERE contact_key = 'bo@example.com'") == [(0,)]
    assert project.query("SELECT count(*) FROM trigger_baseline WHERE contact_key = 'ann@example.com'") == [(1,)]

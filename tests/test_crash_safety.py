"""Crash safety of the push: a killed `segsync sync` re-sends only the write batches in flight.

The sync runs as a real process against the Mailchimp emulator (in this process, 127.0.0.1) and
is killed with SIGKILL mid-push; the store and the emulator's log are then compared.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from segsync_mailchimp.emulator import MailchimpEmulator

from segsync import Outcome, WriteResult, hookimpl
from segsync.store import Store

from .conftest import MemoryConnector

MC_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = "aud0001"
SUBSCRIBE = rf"^/lists/{LIST_ID}$"  # batch subscribe: one call per write batch of ≤ 500
CONTACTS = 4000
CONNECTIONS = 2  # the Mailchimp connection's max_connections: write batches in flight


@pytest.fixture
def mailchimp() -> Iterator[MailchimpEmulator]:
    # Latency keeps each write batch in flight long enough to kill the sync among them.
    emulator = MailchimpEmulator(api_key=MC_KEY, latency=0.05)
    emulator.state.create_audience(LIST_ID)
    emulator.start()
    yield emulator
    emulator.stop()


def _project(root: Path, mailchimp: MailchimpEmulator) -> None:
    (root / "segsync.toml").write_text(textwrap.dedent(f"""
        [store]
        path = "store.duckdb"

        [connections.shop]
        type = "files"
        contacts = "contacts.csv"
        consent = "consent.csv"

        [connections.mc]
        type = "mailchimp"
        pull = false
        list_id = "{LIST_ID}"
        host = "{mailchimp.url}"
        max_connections = {CONNECTIONS}
        timeout = 10.0
    """), encoding="utf-8")
    emails = [f"c{i:05d}@example.com" for i in range(CONTACTS)]
    (root / "contacts.csv").write_text(
        "email,first_name\n" + "".join(f"{e},F{i}\n" for i, e in enumerate(emails)), encoding="utf-8")
    (root / "consent.csv").write_text(
        "email,status,timestamp,method\n" + "".join(f"{e},opted_in,2024-01-01T00:00:00Z,form\n" for e in emails),
        encoding="utf-8")


def _sync(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SEGSYNC_PLUGINS": "files,mailchimp", "SEGSYNC_MC_API_KEY": MC_KEY}
    return subprocess.Popen([sys.executable, "-m", "segsync", "sync"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEGSYNC_PLUGINS": "files,mailchimp", "SEGSYNC_MC_API_KEY": MC_KEY, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "segsync", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def _wait_until(condition, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit  # a guard against hanging, not a timed assertion
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def _acknowledged(root: Path) -> int:
    with Store(root / "store.duckdb", read_only=True) as store:
        return store.scalar("SELECT count(*) FROM acknowledged WHERE destination = 'mc'")


def test_a_killed_push_re_sends_only_the_write_batches_in_flight(tmp_path: Path, mailchimp: MailchimpEmulator) -> None:
    _project(tmp_path, mailchimp)
    sync = _sync(tmp_path)
    try:
        # The 5th write batch can start only once 3 earlier ones were reported and committed
        # (at most CONNECTIONS are sent and unacknowledged), so 1,500 are acknowledged by then.
        _wait_until(lambda: len(mailchimp.calls("POST", SUBSCRIBE)) >= 5 or sync.poll() is not None,
                    "the fifth write batch")
        sync.send_signal(signal.SIGKILL)
    finally:
        sync.wait(timeout=60)
    assert sync.returncode == -signal.SIGKILL, sync.stderr.read()
    _wait_until(lambda: mailchimp.in_flight == 0, "the killed run's requests to end")

    # Nobody holds the store any more: the run that was `running` is shown as crashed.
    runs = _cli(tmp_path, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert [(r["id"], r["status"]) for r in json.loads(runs.stdout)] == [(1, "crashed")]

    acked = _acknowledged(tmp_path)
    members = len(mailchimp.state.audiences[LIST_ID].members)
    assert acked >= 3 * 500
    assert acked % 500 == 0  # whole write batches only
    # Sent but not acknowledged: at most the write batches in flight when the process died.
    assert 0 <= members - acked <= CONNECTIONS * 500

    mailchimp.reset_log()
    resumed = _sync(tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out + err
    # The resumed run sends exactly what was not acknowledged, in whole write batches.
    assert len(mailchimp.calls("POST", SUBSCRIBE)) == math.ceil((CONTACTS - acked) / 500)
    assert _acknowledged(tmp_path) == CONTACTS
    statuses = {m.status for m in mailchimp.state.audiences[LIST_ID].members.values()}
    assert (len(mailchimp.state.audiences[LIST_ID].members), statuses) == (CONTACTS, {"subscribed"})


class ReportingConnector(MemoryConnector):
    """A memory destination that reports each change as its own write batch; with ``fail`` it
    dies (raises) after the first one, as a process killed mid-write would stop."""

    type_name = "reporting"
    max_batch_size = 10
    write_batch_size = 1

    def write(self, changes, report=None):
        audience = self.held.setdefault(self.connection, {})
        outcomes = []
        for change in changes:
            if self.settings.fail and outcomes:
                raise ConnectionError("the process died mid-write")
            audience[change.contact_key] = {"status": change.status}
            outcomes.append(Outcome.ok(change.contact_key))
            if report is not None:
                report(outcomes[-1:])
        return WriteResult(outcomes, calls=len(outcomes))


class ReportingPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(ReportingConnector)


def test_write_batches_reported_before_a_failure_stay_acknowledged(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    config = (project.root / "segsync.toml").read_text()
    project.write_config(config + '\n[connections.crm]\ntype = "reporting"\nfail = true\n')
    first = project.run(ReportingPlugin())
    crm = next(d for d in first.destinations if d.name == "crm")
    assert (crm.status, crm.records_written, crm.records_retrying) == ("failed", 1, 1)
    with Store(project.root / "store.duckdb", read_only=True) as store:
        assert store.con.execute(
            "SELECT contact_key FROM acknowledged WHERE destination = 'crm'").fetchall() == [("ann@example.com",)]

    project.write_config(config + '\n[connections.crm]\ntype = "reporting"\n')
    second = project.run(ReportingPlugin())
    crm = next(d for d in second.destinations if d.name == "crm")
    # Only what was not reported is sent again.
    assert (crm.planned, crm.records_written, crm.status) == ({"add": 1}, 1, "ok")
    assert sorted(MemoryConnector.held["crm"]) == ["ann@example.com", "bo@example.com"]


def test_read_commands_during_a_sync_say_who_holds_the_store(tmp_path: Path, mailchimp: MailchimpEmulator) -> None:
    _project(tmp_path, mailchimp)
    first = _sync(tmp_path)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    (tmp_path / "contacts.csv").write_text("email,first_name\nc00001@example.com,Renamed\n" + "".join(
        f"c{i:05d}@example.com,G{i}\n" for i in range(2, 1500)), encoding="utf-8")
    mailchimp.latency = 5.0  # the second run's push stays in progress while the commands run
    sync = _sync(tmp_path)
    status_file = tmp_path / "store.duckdb.status.json"
    try:
        _wait_until(lambda: mailchimp.in_flight > 0 or sync.poll() is not None, "the second run's push")
        live = json.loads(status_file.read_text())
        assert (live["pid"], live["run_id"], live["phase"]) == (sync.pid, 2, "push mc")

        runs = _cli(tmp_path, "runs", "--json")
        assert runs.returncode == 0, runs.stderr
        history = json.loads(runs.stdout)
        assert [(r["id"], r["status"]) for r in history] == [(2, "running"), (1, "succeeded")]
        assert (history[0]["phase"], history[0]["total"]) == ("push mc", 1499)
        assert f"a sync is running (pid {sync.pid}, run 2, started " in runs.stderr
        with_errors = _cli(tmp_path, "runs", "--errors")
        assert with_errors.returncode == 0, with_errors.stderr
        assert "`segsync runs --errors` lists them once the sync ends" in with_errors.stderr
        assert "running (push mc)" in with_errors.stdout

        shown = _cli(tmp_path, "contacts", "show", "c00001@example.com")
        assert shown.returncode == 2
        assert shown.stderr.startswith("error: the store ")
        assert f"is being written by `segsync sync` (pid {sync.pid}, run 2, started " in shown.stderr
        assert "phase push mc (" in shown.stderr and "add --wait" in shown.stderr
        assert "Traceback" not in shown.stderr

        waiting = subprocess.Popen(
            [sys.executable, "-m", "segsync", "--wait", "300", "contacts", "show", "c00001@example.com", "--json"],
            cwd=tmp_path, env={**os.environ, "SEGSYNC_PLUGINS": "files,mailchimp"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        mailchimp.latency = 0.0
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err
        assert json.loads(out)["attributes"]["first_name"] == "Renamed"
    finally:
        mailchimp.latency = 0.0
        sync.wait(timeout=300)
    assert sync.returncode == 0, sync.stderr.read()
    assert not status_file.exists()  # removed when the run's store closed

"""segsync.live: runs started by a schedule or by records a service pushed (webhooks).

Received records go through the pull's rules (validation, record errors, deduplication) and
the run pushes what they change to every destination, without reading any source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segsync import Batch, Stream
from segsync.live import LiveProject, StoreBusy
from segsync.store.lock import StoreLocked, WriterLock
from segsync.testing import Project
from segsync.testing.records import consent


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    project = Project.sample(tmp_path)
    assert project.run().status == "succeeded"
    return project


def _live(project: Project) -> LiveProject:
    return LiveProject(project.root / "segsync.toml", host=project.host())


def _ledger(project: Project) -> list[tuple]:
    return project.query("SELECT contact_key, status, method, source, recorded_at::VARCHAR FROM consent_ledger "
                         "ORDER BY id")


OPT_OUT = consent("ann@example.com", "opted_out", "2024-03-01T10:00:00Z", method="email_link")


def test_an_opt_out_received_from_a_source_reaches_the_destination_without_a_pull(project: Project) -> None:
    # The source's file changes too: a run that received records must not read it.
    project.append("contacts.csv", "dan@example.com,Dan,\n")
    summary = _live(project).apply({"shop": [Batch(Stream.CONSENT, None, [OPT_OUT])]})
    assert (summary.status, summary.trigger) == ("succeeded", "webhook")
    assert [(s.name, s.status, s.loaded, s.rejected) for s in summary.sources] == [
        ("shop", "ok", {"consent": 1}, {"consent": 0})]
    upload = next(d for d in summary.destinations if d.name == "upload")
    assert (upload.planned, upload.records_written) == ({"unsubscribe": 1}, 1)
    assert project.audience()["ann@example.com"]["status"] == "unsubscribed"
    assert "dan@example.com" not in {r[0] for r in project.query("SELECT contact_key FROM contacts")}
    assert _ledger(project)[-1] == ("ann@example.com", "opted_out", "email_link", "shop", "2024-03-01 10:00:00+00")
    # The history names what started the run and which connections it received from.
    options = json.loads(project.query("SELECT options FROM runs ORDER BY id DESC LIMIT 1")[0][0])
    assert options == {"full_refresh": False, "dry_run": False, "trigger": "webhook", "received": ["shop"]}


def test_the_same_records_received_again_append_nothing_and_write_nothing(project: Project) -> None:
    live = _live(project)
    live.apply({"shop": [Batch(Stream.CONSENT, None, [OPT_OUT])]})
    ledger = _ledger(project)
    again = live.apply({"shop": [Batch(Stream.CONSENT, None, [OPT_OUT])]})
    assert again.status == "succeeded"
    assert [(s.loaded, s.rejected) for s in again.sources] == [({"consent": 0}, {"consent": 0})]
    assert [(d.planned, d.write_calls) for d in again.destinations] == [({}, 0)]
    assert _ledger(project) == ledger


def test_a_bad_received_record_is_a_record_error_naming_it_and_the_field(project: Project) -> None:
    bad = consent("bo@example.com", "gone", "2024-03-01T10:00:00Z")
    summary = _live(project).apply({"shop": [Batch(Stream.CONSENT, None, [OPT_OUT, bad],
                                                   record_ids=["webhook 1", "webhook 2"])]})
    assert summary.status == "with-rejections"
    source = summary.sources[0]
    assert (source.status, source.loaded, source.rejected) == ("with-rejections", {"consent": 1}, {"consent": 1})
    errors = project.query("SELECT connection, phase, record, field FROM record_errors WHERE run_id = ?",
                           [summary.run_id])
    assert errors == [("shop", "pull:consent", "webhook 2", "status")]
    assert project.audience()["ann@example.com"]["status"] == "unsubscribed"


def test_something_that_is_not_a_batch_fails_the_source_and_nothing_of_it_is_stored(project: Project) -> None:
    ledger = _ledger(project)
    summary = _live(project).apply({"shop": [[OPT_OUT]]})  # type: ignore[list-item]
    assert summary.status == "partial"
    assert summary.sources[0].status == "failed"
    assert summary.sources[0].error == (
        "contract error: plugin 'files' (connection 'shop') handed over list, not a Batch")
    assert _ledger(project) == ledger


def test_records_for_an_unknown_connection_are_refused_naming_it(project: Project) -> None:
    from segsync.config import ConfigError

    runs = project.query("SELECT count(*) FROM runs")
    with pytest.raises(ConfigError, match="records received for 'nope', which is not a connection"):
        _live(project).apply({"nope": [Batch(Stream.CONSENT, None, [OPT_OUT])]})
    assert project.query("SELECT count(*) FROM runs") == runs  # refused before any run started


def test_while_another_process_holds_the_store_nothing_is_written(project: Project) -> None:
    lock = WriterLock(project.root / "store.duckdb")
    lock.acquire()
    try:
        live = _live(project)
        assert live.store_busy() is True
        with pytest.raises(StoreBusy):
            live.apply({"shop": [Batch(Stream.CONSENT, None, [OPT_OUT])]})
    finally:
        lock.release()
    assert StoreBusy is StoreLocked
    assert live.store_busy() is False
    assert ("ann@example.com", "opted_out") not in {r[:2] for r in _ledger(project)}


def test_a_scheduled_sync_is_a_full_run_with_its_trigger_in_history(project: Project) -> None:
    project.append("contacts.csv", "dan@example.com,Dan,\n")
    summary = _live(project).sync()
    assert (summary.status, summary.trigger) == ("succeeded", "schedule")
    assert summary.sources[0].loaded["contacts"] == 1
    options = json.loads(project.query("SELECT options FROM runs ORDER BY id DESC LIMIT 1")[0][0])
    assert options == {"full_refresh": False, "dry_run": False, "trigger": "schedule"}

"""The sync runner end to end: files source → files and in-memory destinations."""

from __future__ import annotations

import json
import logging

import pytest

from segsync import Batch, Capability, Connector, ConnectorSettings, Stream, hookimpl
from segsync.config import ConfigError
from segsync.store import Store

from .conftest import MemoryConnector


def _store(project):
    return Store(project.root / "store.duckdb", read_only=True)


def test_first_run_loads_sources_and_writes_the_audience(project) -> None:
    summary = project.run()
    assert summary.status == "succeeded"
    assert summary.sources[0].loaded == {"contacts": 3, "consent": 2, "events": 1}
    upload = summary.destinations[0]
    assert (upload.planned, upload.records_written, upload.write_calls) == ({"add": 2}, 2, 2)
    # Cy has no consent record: never added anywhere.
    assert project.audience() == {
        "ann@example.com": {"email": "ann@example.com", "status": "subscribed", "tags": [],
                            "attributes": {"first_name": "Ann", "tier": "gold"}},
        "bo@example.com": {"email": "bo@example.com", "status": "subscribed", "tags": [],
                           "attributes": {"first_name": "Bo"}},
    }


def test_a_second_run_with_no_new_input_writes_nothing(project) -> None:
    project.run()
    before = (project.root / "out/audience.jsonl").stat().st_mtime_ns
    again = project.run()
    assert again.sources[0].loaded == {"contacts": 0, "consent": 0, "events": 0}
    assert (again.destinations[0].planned, again.destinations[0].write_calls) == ({}, 0)
    assert (project.root / "out/audience.jsonl").stat().st_mtime_ns == before
    with _store(project) as store:
        history = store.runs()
    assert [(r["id"], r["destinations"][0]["write_calls"]) for r in history] == [(2, 0), (1, 2)]


def test_appended_rows_are_pulled_incrementally_and_only_changes_pushed(project) -> None:
    project.run()
    project.append("consent.csv", "ann@example.com,opted_out,2024-03-01T00:00:00Z,email_link\n")
    project.append("contacts.csv", "dee@example.com,Dee,\n")
    summary = project.run()
    assert summary.sources[0].loaded == {"contacts": 1, "consent": 1, "events": 0}
    assert summary.destinations[0].planned == {"unsubscribe": 1}
    assert project.audience()["ann@example.com"]["status"] == "unsubscribed"
    with _store(project) as store:
        assert store.get_cursor("shop", "consent")["data/consent.csv"]["rows"] == 3


def test_dry_run_prints_the_plan_and_changes_nothing(project) -> None:
    summary = project.run(dry_run=True)
    assert summary.status == "dry-run" and summary.run_id is None
    plan = summary.destinations[0]
    assert plan.planned == {"add": 2} and plan.write_calls == 0
    assert [s["action"] for s in plan.sample] == ["add", "add"]
    assert plan.sample[0]["contact"] == "a***@e***.com"  # masked
    assert not (project.root / "out").exists()
    with _store(project) as store:
        for table in ("contacts", "events", "consent_ledger", "cursors", "runs", "acknowledged", "record_errors"):
            assert store.scalar(f"SELECT count(*) FROM {table}") == 0, table
    # The real run afterwards does everything the dry run planned.
    assert project.run().destinations[0].records_written == 2


def test_full_refresh_rereads_without_duplicating(project) -> None:
    project.run()
    summary = project.run(full_refresh=True)
    assert summary.sources[0].loaded == {"contacts": 3, "consent": 0, "events": 0}
    assert summary.destinations[0].planned == {}
    with _store(project) as store:
        assert store.scalar("SELECT count(*) FROM consent_ledger") == 2
        assert store.scalar("SELECT count(*) FROM events") == 1


class FlakySource(Connector):
    """Yields two batches; the second raises mid-stream."""

    type_name = "flaky"
    capabilities = frozenset({Capability.READ_CONTACTS})

    def read(self, stream, cursor):
        yield Batch(Stream.CONTACTS, cursor={"page": 1}, rows=[{"email": "one@example.com"}])
        raise TimeoutError("page 2 timed out")


class FlakyPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(FlakySource)


def test_cursor_advances_only_with_committed_records(project) -> None:
    project.write_config(project_config_with(project, '[connections.api]\ntype = "flaky"\n'))
    summary = project.run(FlakyPlugin())
    api = next(s for s in summary.sources if s.name == "api")
    assert api.status == "failed"
    assert api.error == "plugin '<in-process>' (connection 'api') failed reading contacts: TimeoutError: page 2 timed out" or \
        api.error.endswith("failed reading contacts: TimeoutError: page 2 timed out")
    assert summary.status == "partial"
    with _store(project) as store:
        assert store.get_cursor("api", "contacts") == {"page": 1}
        assert store.scalar("SELECT count(*) FROM contacts WHERE contact_key = 'one@example.com'") == 1
        # The other source and the destination went on.
        assert store.get_cursor("shop", "contacts") is not None


def project_config_with(project, extra: str) -> str:
    return (project.root / "segsync.toml").read_text() + "\n" + extra


def test_rejected_and_retryable_outcomes(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    project.write_config(project_config_with(project, """
[connections.crm]
type = "memory"
reject = ["ann@example.com"]
retry = ["bo@example.com"]
"""))
    first = project.run()
    crm = next(d for d in first.destinations if d.name == "crm")
    assert (crm.records_written, crm.records_rejected, crm.records_retrying) == (0, 1, 1)
    # Nothing written and a record left to retry: the destination did not do its job.
    assert crm.status == "failed" and first.status == "partial" and first.failed
    assert crm.error == "1 record(s) to retry on the next run (see `segsync runs --errors`)"
    with _store(project) as store:
        errors = store.con.execute(
            "SELECT record, field, reason, retryable FROM record_errors WHERE connection = 'crm' ORDER BY record"
        ).fetchall()
    assert errors == [("a***@e***.com", "email", "Invalid Resource", False),
                      ("b***@e***.com", None, "503 from the service", True)]
    # The retryable one is planned again and lands once the service recovers. The connection's
    # settings changed, so the rejected one is tried again too (the refusal may not hold now)…
    project.write_config((project.root / "segsync.toml").read_text().replace('retry = ["bo@example.com"]', "retry = []"))
    second = project.run()
    crm = next(d for d in second.destinations if d.name == "crm")
    assert crm.planned == {"add": 2} and crm.rejections_renewed == 1
    assert (crm.records_written, crm.records_rejected) == (1, 1)
    assert set(MemoryConnector.held["crm"]) == {"bo@example.com"}
    assert crm.status == "with-rejections" and second.status == "with-rejections" and not second.failed
    assert crm.error == "1 record(s) rejected (see `segsync runs --errors`)"
    # …but is not re-sent while neither its data nor the destination changes…
    quiet = project.run()
    crm = next(d for d in quiet.destinations if d.name == "crm")
    assert crm.planned == {} and crm.rejections_renewed == 0 and MemoryConnector.calls["crm"] == 2
    assert crm.status == "ok" and quiet.status == "succeeded"
    # …and is tried again when its data changes (refused again: the system still refuses it)…
    project.append("contacts.csv", "ann@example.com,Annie,\n")
    changed = project.run()
    crm = next(d for d in changed.destinations if d.name == "crm")
    assert crm.planned == {"add": 1} and (crm.records_written, crm.records_rejected) == (0, 1)
    # …or when the destination changes.
    project.write_config((project.root / "segsync.toml").read_text().replace('reject = ["ann@example.com"]', "reject = []"))
    third = project.run()
    crm = next(d for d in third.destinations if d.name == "crm")
    assert crm.planned == {"add": 1} and crm.records_written == 1 and crm.rejections_renewed == 1
    with _store(project) as store:
        assert store.scalar("SELECT count(*) FROM rejected") == 0


def test_a_failing_destination_does_not_touch_another(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "memory"\nfail = true\n'))
    summary = project.run()
    crm = next(d for d in summary.destinations if d.name == "crm")
    upload = next(d for d in summary.destinations if d.name == "upload")
    assert crm.status == "failed"
    assert "(connection 'crm') failed writing: ConnectionError: the service is down" in crm.error
    assert crm.records_retrying == 2
    assert upload.status == "ok" and upload.records_written == 2
    assert summary.status == "partial" and summary.failed
    with _store(project) as store:
        assert store.scalar("SELECT count(*) FROM acknowledged WHERE destination = 'crm'") == 0
        assert store.scalar("SELECT count(*) FROM acknowledged WHERE destination = 'upload'") == 2


def test_push_wrapper_and_run_finished_hooks_observe_the_run(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "memory"\n'))
    seen: list = []

    class Observer:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            result = yield
            seen.append(("push", connector.connection, len(changes), sum(o.status == "ok" for o in result.outcomes)))
            return result

        @hookimpl
        def segsync_run_finished(self, summary):
            seen.append(("finished", summary.run_id, summary.status))

    project.run(Observer())
    # memory's max_batch_size is 2: one batch each.
    assert seen == [("push", "upload", 2, 2), ("push", "crm", 2, 2), ("finished", 1, "succeeded")]


def test_a_push_wrapper_can_veto_a_batch(project) -> None:
    from segsync import Outcome, WriteResult

    class Veto:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "upload":
                return WriteResult([Outcome.rejected(c.contact_key, "vetoed by policy") for c in changes], 0)
            return None  # let the core push

    summary = project.run(Veto())
    assert summary.destinations[0].records_rejected == 2
    assert project.audience() == {}


def test_a_failing_run_finished_observer_does_not_change_the_outcome(project, caplog) -> None:
    class Broken:
        @hookimpl
        def segsync_run_finished(self, summary):
            raise RuntimeError("slack is down")

    summary = project.run(Broken())
    assert summary.status == "succeeded"
    assert "failed in segsync_run_finished: RuntimeError: slack is down" in caplog.text


def test_secrets_never_reach_logs_or_reprs(project, monkeypatch, caplog) -> None:
    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", secret)
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "memory"\nfail = true\n'))
    caplog.set_level(logging.DEBUG)
    from segsync.config import load_config
    from segsync.sync.runner import RunOptions, Runner

    runner = Runner(load_config(project.root / "segsync.toml"), project.host())
    connectors = runner.connectors()
    assert connectors["crm"].settings.api_key.get_secret_value() == secret
    summary = runner.run(RunOptions())
    everything = caplog.text + repr(connectors["crm"]) + repr(connectors["crm"].settings) + json.dumps(summary.to_dict(), default=str)
    assert secret not in everything
    assert "**********" in repr(connectors["crm"].settings)


def test_secrets_in_the_config_file_are_refused(project) -> None:
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "memory"\napi_key = "oops"\n'))
    with pytest.raises(ConfigError, match="api_key is a secret and is not read from the config file; set SEGSYNC_CRM_API_KEY"):
        project.run()


def test_missing_secret_and_typos_are_explained(project, monkeypatch) -> None:
    monkeypatch.delenv("SEGSYNC_CRM_API_KEY", raising=False)
    base = (project.root / "segsync.toml").read_text()
    project.write_config(base + '[connections.crm]\ntype = "memory"\n')
    with pytest.raises(ConfigError, match=r"api_key: Field required \(set SEGSYNC_CRM_API_KEY"):
        project.run()
    project.write_config(base + '[connections.crm]\ntype = "memory"\nrejct = []\n')
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    with pytest.raises(ConfigError, match="unknown setting 'rejct'; did you mean 'reject'"):
        project.run()


def test_secret_read_from_dotenv(project, monkeypatch) -> None:
    monkeypatch.delenv("SEGSYNC_CRM_API_KEY", raising=False)
    (project.root / ".env").write_text("SEGSYNC_CRM_API_KEY=from-dotenv\nSEGSYNC_OTHER_THING=1\n")
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "memory"\n'))
    from segsync.config import load_config
    from segsync.sync.runner import Runner

    runner = Runner(load_config(project.root / "segsync.toml"), project.host())
    assert runner.connectors()["crm"].settings.api_key.get_secret_value() == "from-dotenv"


def test_unknown_connector_type_names_the_installed_ones(project) -> None:
    project.write_config(project_config_with(project, '[connections.esp]\ntype = "mailchimpp"\n'))
    with pytest.raises(ConfigError) as error:
        project.run()
    # The installed types, then the distribution to install and the exact command.
    assert str(error.value) == (
        "connection 'esp': no connector of type 'mailchimpp' (installed: files, memory); by the "
        "naming convention its distribution is segsync-mailchimpp: segsync install segsync-mailchimpp")


def test_a_first_party_type_not_installed_names_its_distribution(project) -> None:
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "hubspot"\n'))
    with pytest.raises(ConfigError) as error:
        project.run()
    assert str(error.value) == (
        "connection 'crm': no connector of type 'hubspot' (installed: files, memory); it comes with "
        "the distribution segsync-hubspot: segsync install segsync-hubspot")


def test_opt_outs_are_pushed_before_other_changes(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    project.write_config(project_config_with(project, '[connections.crm]\ntype = "memory"\n'))
    order: list = []

    class Recorder:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "crm":
                order.extend((c.contact_key, c.status) for c in changes)
            return (yield)

    project.run()
    project.append("consent.csv", "bo@example.com,opted_out,2024-03-01T00:00:00Z,email_link\n")
    project.append("contacts.csv", "ann@example.com,Annie,\n")
    project.run(Recorder())
    assert order == [("bo@example.com", "unsubscribed"), ("ann@example.com", "subscribed")]

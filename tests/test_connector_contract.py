"""The runner checks what a connector hands back (segsync/sync/contract.py).

Each breach is a contract error naming the plugin and the connection, never an AttributeError
or a silent "retryable": the connection's part of the run is not ``ok`` (the run ``partial``),
nothing the breach touched is acknowledged or stored, and the other connections go on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from segsync import (
    Batch,
    Capability,
    Connector,
    ConnectorSettings,
    ContactChange,
    Outcome,
    OutcomeReport,
    Stream,
    WriteResult,
    hookimpl,
)
from segsync.store import Store
from segsync.testing import SAMPLE_CONFIG

ANN, BO = "ann@example.com", "bo@example.com"


class SloppySettings(ConnectorSettings):
    mode: str


class SloppyConnector(Connector):
    """A destination (and source) that breaks the contract the way its ``mode`` says."""

    type_name = "sloppy"
    capabilities = frozenset({Capability.WRITE_CONTACTS, Capability.READ_CONTACTS})
    Settings = SloppySettings
    settings: SloppySettings

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        rows = [{"email": "zoe@example.com", "first_name": "Zoe"}]
        if self.settings.mode == "datetime-cursor":
            yield Batch(stream, cursor={"since": datetime(2024, 1, 1, tzinfo=timezone.utc)}, rows=rows)
        elif self.settings.mode == "not-a-batch":
            yield {"stream": stream, "rows": rows}  # type: ignore[misc]
        else:
            yield Batch(stream, cursor={"page": 1}, rows=rows)

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        keys = [c.contact_key for c in changes]
        mode = self.settings.mode
        if mode == "not-a-result":
            return {"ok": keys}  # type: ignore[return-value]
        if mode == "unknown-status":
            return WriteResult([Outcome.ok(ANN), Outcome(BO, "done")], 1)  # type: ignore[arg-type]
        if mode == "stranger":
            return WriteResult([*map(Outcome.ok, keys), Outcome.ok("zed@example.com")], 1)
        if mode == "duplicate":
            return WriteResult([Outcome.ok(ANN), Outcome.rejected(ANN, "no"), Outcome.ok(BO)], 1)
        if mode == "missing":
            return WriteResult([Outcome.ok(ANN)], 1)
        return WriteResult([Outcome.ok(k) for k in keys], 1)


class SloppyPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(SloppyConnector)
        register(ReportingConnector)


class ReportingConnector(Connector):
    """Reports its write batches: ``twice`` reports Ann in two of them, ``junk`` reports a
    dict and an unknown status."""

    type_name = "reporting"
    capabilities = frozenset({Capability.WRITE_CONTACTS})
    Settings = SloppySettings
    settings: SloppySettings
    write_batch_size = 1

    def write(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> WriteResult:
        assert report is not None
        outcomes = [Outcome.ok(c.contact_key) for c in changes]
        if self.settings.mode == "twice":
            report([outcomes[0]])
            report([outcomes[0], outcomes[1]])
        else:
            report([{"contact_key": ANN, "status": "ok"}, Outcome(BO, "written")])  # type: ignore[list-item]
        return WriteResult(outcomes, 2)


def _project(project, type_: str, mode: str, *, push: bool = True):
    project.write_config(SAMPLE_CONFIG + f"""
        [connections.crm]
        type = "{type_}"
        mode = "{mode}"
        pull = {"false" if push else "true"}
        push = {"true" if push else "false"}
    """)
    return project


def _errors(project, connection: str = "crm") -> list[tuple]:
    with Store(project.root / "store.duckdb", read_only=True) as store:
        return store.con.execute(
            "SELECT phase, record, field, reason, retryable FROM record_errors WHERE connection = ? "
            "ORDER BY record, reason", [connection]).fetchall()


def _acked(project, connection: str = "crm") -> list[str]:
    with Store(project.root / "store.duckdb", read_only=True) as store:
        return [k for (k,) in store.con.execute(
            "SELECT contact_key FROM acknowledged WHERE destination = ? ORDER BY 1", [connection]).fetchall()]


def _others_untouched(summary) -> None:
    upload = next(d for d in summary.destinations if d.name == "upload")
    assert (upload.status, upload.records_written, upload.error) == ("ok", 2, None)
    assert summary.sources[0].name == "shop" and summary.sources[0].status == "ok"


def _contract(what: str, plugin: str = "SloppyPlugin", connection: str = "crm") -> str:
    return f"contract error: plugin {plugin!r} (connection {connection!r}) {what}"


def test_a_write_result_of_the_wrong_type_fails_the_destination_by_name(project) -> None:
    summary = _project(project, "sloppy", "not-a-result").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    error = _contract("returned dict from write, not a WriteResult")
    assert (summary.status, crm.status, crm.records_written, crm.records_retrying) == ("partial", "failed", 0, 2)
    assert crm.error == f"{error} (see `segsync runs --errors`)"
    assert _errors(project) == [("push", "a***@e***.com", None, error, True),
                                ("push", "b***@e***.com", None, error, True)]
    assert _acked(project) == []
    _others_untouched(summary)
    # Retried, not remembered: fixed, the next run writes both.
    fixed = _project(project, "sloppy", "well-behaved").run(SloppyPlugin())
    assert [(d.name, d.status, d.records_written) for d in fixed.destinations if d.name == "crm"] == [
        ("crm", "ok", 2)]
    assert _acked(project) == [ANN, BO]


def test_an_unknown_outcome_status_is_a_contract_error_not_a_silent_retry(project) -> None:
    summary = _project(project, "sloppy", "unknown-status").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    error = _contract("returned an Outcome with status 'done', not one of ok, rejected, retryable")
    assert (summary.status, crm.status, crm.records_written, crm.records_retrying) == ("partial", "partial", 1, 1)
    assert crm.error == f"{error} (see `segsync runs --errors`)"
    assert _errors(project) == [("push", "b***@e***.com", None, error, True)]
    assert _acked(project) == [ANN]
    _others_untouched(summary)


def test_an_outcome_for_a_contact_not_in_the_batch_is_named_and_ignored(project) -> None:
    summary = _project(project, "sloppy", "stranger").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    error = _contract("returned an outcome for a contact not in the changes it was given")
    # The batch itself was answered well: written; the stray answer makes the part not ok.
    assert (summary.status, crm.status, crm.records_written, crm.records_retrying) == ("partial", "partial", 2, 0)
    assert crm.error == f"{error} (see `segsync runs --errors`)"
    assert _errors(project) == [("push", "crm", None, error, True)]
    assert _acked(project) == [ANN, BO]
    _others_untouched(summary)


def test_a_duplicate_outcome_leaves_that_contact_unacknowledged(project) -> None:
    summary = _project(project, "sloppy", "duplicate").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    error = _contract("returned more than one outcome for a change")
    assert (summary.status, crm.status, crm.records_written, crm.records_rejected, crm.records_retrying) == (
        "partial", "partial", 1, 0, 1)
    assert _errors(project) == [("push", "a***@e***.com", None, error, True)]
    assert _acked(project) == [BO]
    _others_untouched(summary)


def test_a_missing_outcome_names_the_plugin(project) -> None:
    summary = _project(project, "sloppy", "missing").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    error = _contract("returned no outcome for a change it was given")
    assert (summary.status, crm.status, crm.records_written, crm.records_retrying) == ("partial", "partial", 1, 1)
    assert crm.error == f"{error} (see `segsync runs --errors`)"
    assert _errors(project) == [("push", "b***@e***.com", None, error, True)]
    _others_untouched(summary)


def test_reported_write_batches_are_checked_like_returned_ones(project) -> None:
    summary = _project(project, "reporting", "junk").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    not_outcome = _contract("reported an outcome of type dict, not an Outcome")
    unknown = _contract("reported an Outcome with status 'written', not one of ok, rejected, retryable")
    # The reports broke the contract; the returned result (Ann and Bo ok) is then taken.
    assert (crm.status, crm.records_written) == ("partial", 2)
    assert crm.error == f"{not_outcome}; {unknown} (see `segsync runs --errors`)"
    assert _errors(project) == [("push", "crm", None, unknown, True), ("push", "crm", None, not_outcome, True)]


def test_a_contact_reported_in_two_write_batches_is_a_contract_error(project) -> None:
    summary = _project(project, "reporting", "twice").run(SloppyPlugin())
    crm = next(d for d in summary.destinations if d.name == "crm")
    error = _contract("reported a change in two write batches")
    # Ann's first report was acknowledged when it came (it stays so); the second is refused, named.
    assert (summary.status, crm.status, crm.records_written) == ("partial", "partial", 2)
    assert crm.error == f"{error} (see `segsync runs --errors`)"
    assert _errors(project) == [("push", "crm", None, error, True)]
    assert _acked(project) == [ANN, BO]
    _others_untouched(summary)


@pytest.mark.parametrize(("mode", "what"), [
    ("datetime-cursor", "yielded a contacts batch whose cursor is not JSON-serialisable (Object of type "
                        "datetime is not JSON serializable); a cursor must be made of dicts, lists, text, "
                        "numbers, booleans and None"),
    ("not-a-batch", "yielded dict from read(contacts), not a Batch"),
])
def test_a_batch_that_breaks_the_contract_fails_that_source_and_stores_nothing_of_it(
    project, mode: str, what: str
) -> None:
    summary = _project(project, "sloppy", mode, push=False).run(SloppyPlugin())
    crm = next(s for s in summary.sources if s.name == "crm")
    error = _contract(what)
    assert (summary.status, crm.status, crm.error, crm.loaded) == ("partial", "failed", error, {"contacts": 0})
    assert _errors(project) == [("pull:contacts", "crm", None, error, False)]
    with Store(project.root / "store.duckdb", read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM contacts WHERE contact_key = 'zoe@example.com'") == 0
        assert store.get_cursor("crm", "contacts") is None
    shop = next(s for s in summary.sources if s.name == "shop")
    assert (shop.status, shop.loaded) == ("ok", {"contacts": 3, "consent": 2, "events": 1})
    upload = next(d for d in summary.destinations if d.name == "upload")
    assert (upload.status, upload.records_written) == ("ok", 2)

"""A hostile ``segsync_push`` plugin cannot get a change past the consent gate or corrupt state.

Every route a plugin has to the connector is tried against the real runner (and the CLI): a
change object that reads differently each time, a duck-typed or broken object, a change altered
after the runner handed it over (attributes, status, external id), a contact not in the batch,
duplicates, writing twice or after the batch ended, raising half-way, and returning garbage.
Each time: nobody without consent reaches a system, nothing is acknowledged that the connector
did not answer ``ok``, the plugin is named with the field, the rest of the batch goes through
and other destinations are untouched.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from segsync import ContactChange, Outcome, WriteResult, hookimpl
from segsync.cli import cli
from segsync.store import Store

from .consent_systems import ANN, BO, CONFIG, CY, SYSTEMS, SystemConnector, SystemPlugin, reset_systems  # noqa: F401

DEE = "dee@example.com"


@pytest.fixture
def shop(project):
    project.write_config(CONFIG)
    project.write("consent.csv", """
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
    """)
    return project


@pytest.fixture
def bo_opted_out(shop):
    """Ann and Bo are subscribed in A, B and C; then Bo opts out: the next run unsubscribes him."""
    assert shop.run(SystemPlugin()).status == "succeeded"
    assert {n: SYSTEMS[n].contacts[BO]["status"] for n in "abc"} == {n: "subscribed" for n in "abc"}
    shop.append("consent.csv", "bo@example.com,opted_out,2024-02-01T00:00:00Z,email_link\n")
    return shop


def _store(project) -> Store:
    return Store(project.root / "store.duckdb", read_only=True)


def _errors(project, phase: str = "gate") -> list[tuple]:
    with _store(project) as store:
        return store.con.execute(
            "SELECT connection, record, field, reason FROM record_errors WHERE phase = ? "
            "ORDER BY connection, occurred_at", [phase]).fetchall()


def _acked(project, destination: str) -> dict[str, str]:
    with _store(project) as store:
        return dict(store.con.execute(
            "SELECT contact_key, status FROM acknowledged WHERE destination = ?", [destination]).fetchall())


def _writes_since(marks: dict[str, int]) -> dict[str, list[tuple[str, str, str]]]:
    return {n: SYSTEMS[n].writes[marks[n]:] for n in marks}


def _marks() -> dict[str, int]:
    return {n: len(SYSTEMS[n].writes) for n in "abc"}


class Flipping(ContactChange):
    """Reads "unsubscribed" the first time its status is read, "subscribed" every time after."""

    def __init__(self, *args, **kwargs) -> None:
        object.__setattr__(self, "reads", 0)
        super().__init__(*args, **kwargs)

    @property
    def status(self) -> str:
        object.__setattr__(self, "reads", self.reads + 1)
        return "unsubscribed" if self.reads == 1 else "subscribed"

    @status.setter
    def status(self, value: str) -> None:
        pass


def _flipped(change: ContactChange) -> Flipping:
    return Flipping(**{f.name: getattr(change, f.name) for f in dataclasses.fields(ContactChange)})


class Flipper:
    """Swaps Bo's planned unsubscribe for a change whose status flips after the gate read it."""

    @hookimpl(tryfirst=True)
    def segsync_push(self, connector, changes, run_id):
        return connector.write([_flipped(c) if c.contact_key == BO else c for c in changes])


def test_a_change_whose_status_flips_after_the_gate_read_it_never_reaches_the_connector(bo_opted_out) -> None:
    marks = _marks()
    summary = bo_opted_out.run(SystemPlugin(), Flipper())
    # Bo is opted out: no system was told "subscribed" (before the fix, all three were).
    assert _writes_since(marks) == {n: [] for n in "abc"}
    assert {d.name: (d.status, d.records_written, d.records_retrying) for d in summary.destinations} == {
        n: ("failed", 0, 1) for n in "abc"}
    assert summary.status == "partial"
    reason = ("refused by the consent gate: plugin 'Flipper' passed change #1: a Flipping, not a plain "
              "ContactChange (status is redefined by the subclass)")
    assert _errors(bo_opted_out) == [(n, "b***@e***.com", "status", reason) for n in "abc"]
    assert summary.destinations[0].error == (
        "plugin 'Flipper' passed change #1: a Flipping, not a plain ContactChange (status is redefined "
        "by the subclass) (field status) (see `segsync runs --errors`)")
    # Never acknowledged, so the opt-out is sent as soon as the plugin is gone.
    assert _acked(bo_opted_out, "a")[BO] == "subscribed"
    assert bo_opted_out.run(SystemPlugin()).status == "succeeded"
    assert {n: SYSTEMS[n].contacts[BO]["status"] for n in "abc"} == {n: "unsubscribed" for n in "abc"}


def test_the_cli_reports_the_flipping_plugin_by_name_and_exits_1(bo_opted_out) -> None:
    host = bo_opted_out.host(SystemPlugin(), Flipper())
    result = CliRunner().invoke(cli, ["--config", str(bo_opted_out.root / "segsync.toml"), "sync"], obj=host)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "plugin 'Flipper' passed change #1: a Flipping, not a plain ContactChange" in result.output
    assert {n: SYSTEMS[n].contacts[BO]["status"] for n in "abc"} == {n: "subscribed" for n in "abc"}
    assert all(w[1] != BO for n in "abc" for w in SYSTEMS[n].writes[2:])


def test_attributes_mutated_by_a_wrapper_are_refused_and_not_acknowledged(shop) -> None:
    class Rewriter:
        """Edits the batch in place, then lets the core push it."""

        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            for change in changes:
                change.attributes["first_name"] = "Mallory"
            return (yield)

    summary = shop.run(SystemPlugin(), Rewriter())
    assert {n: SYSTEMS[n].contacts for n in "abc"} == {n: {} for n in "abc"}
    assert {d.name: (d.status, d.records_written, d.records_retrying) for d in summary.destinations} == {
        n: ("failed", 0, 2) for n in "abc"}
    assert _errors(shop)[0] == (
        "a", "a***@e***.com", "attributes",
        "refused by the consent gate: plugin 'segsync.default_plugins.push' passed a change with another "
        "attributes than the one it was handed")
    assert _acked(shop, "a") == {}
    # The runner's own copy was never touched: without the plugin, the real data goes out.
    shop.run(SystemPlugin())
    assert SYSTEMS["a"].contacts[ANN]["attributes"]["first_name"] == "Ann"


def test_a_dict_subclass_or_a_non_json_value_in_attributes_is_refused(shop) -> None:
    class Shifty(dict):
        def items(self):
            return [("first_name", "Mallory")]

    class Odd:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            ann = next(c for c in changes if c.contact_key == ANN)
            bo = next(c for c in changes if c.contact_key == BO)
            return connector.write([dataclasses.replace(ann, attributes=Shifty(ann.attributes)),
                                    dataclasses.replace(bo, attributes={"seen": object()})])

    summary = shop.run(SystemPlugin(), Odd())
    assert {n: SYSTEMS[n].contacts for n in "abc"} == {n: {} for n in "abc"}
    assert [e[1:] for e in _errors(shop) if e[0] == "a"] == [
        ("a***@e***.com", "attributes",
         "refused by the consent gate: plugin 'Odd' passed change #1: attributes is a Shifty, not a dict"),
        ("b***@e***.com", "attributes",
         "refused by the consent gate: plugin 'Odd' passed change #2: attributes hold a object (JSON values only)"),
    ]
    assert summary.destinations[0].records_retrying == 2


def test_a_changed_external_id_or_status_is_refused_the_rest_of_the_batch_goes_through(bo_opted_out) -> None:
    class Redirect:
        """Points Bo's unsubscribe at nobody and re-labels Ann's (untouched) change with Bo's id."""

        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection != "a":
                return None
            bo = next(c for c in changes if c.contact_key == BO)
            return connector.write([dataclasses.replace(bo, status="none"),
                                    dataclasses.replace(bo, external_id="a-" + ANN)])

    summary = bo_opted_out.run(SystemPlugin(), Redirect())
    a, b, c = summary.destinations
    assert (a.status, a.records_written, a.records_retrying) == ("failed", 0, 1)
    assert (b.status, b.records_written, c.status, c.records_written) == ("ok", 1, "ok", 1)
    assert [e[1:3] for e in _errors(bo_opted_out)] == [("b***@e***.com", "status"), ("b***@e***.com", "external_id")]
    assert SYSTEMS["a"].contacts[BO]["status"] == "subscribed" and _acked(bo_opted_out, "a")[BO] == "subscribed"
    assert SYSTEMS["b"].contacts[BO]["status"] == "unsubscribed"


def test_injected_contacts_not_in_the_batch_are_refused(shop) -> None:
    class Injector:
        """Adds Cy as an opt-out nobody planned (the gate passes opt-outs) and Dee, who never
        consented, as subscribed (the gate blocks that first)."""

        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection != "a":
                return None
            return connector.write([*changes, ContactChange(CY, "upsert", "unsubscribed"),
                                    ContactChange(DEE, "upsert", "subscribed")])

    summary = shop.run(SystemPlugin(), Injector())
    assert set(SYSTEMS["a"].contacts) == {ANN, BO}
    assert [w[1] for w in SYSTEMS["a"].writes] == [ANN, BO]
    a = summary.destinations[0]
    assert (a.status, a.records_written, a.records_retrying, a.records_blocked) == ("partial", 2, 0, 1)
    assert [e[1:] for e in _errors(shop)] == [
        ("d***@e***.com", "status", "blocked by the consent gate (plugin 'Injector' wrote it through the "
                                    "connector): no consent to subscribe (effective status: none)"),
        ("c***@e***.com", "contact_key", "refused by the consent gate: plugin 'Injector' passed a change "
                                         "for a contact not in the batch it was handed"),
    ]
    assert _acked(shop, "a") == {ANN: "subscribed", BO: "subscribed"}
    with _store(shop) as store:
        assert store.con.execute("SELECT destination, contact_key, after_status, outcome FROM status_changes "
                                 "WHERE outcome = 'blocked'").fetchall() == [("a", DEE, "subscribed", "blocked")]


def test_duplicates_and_a_second_write_reach_the_connector_once(shop) -> None:
    class Twice:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            connector.write([*changes, *changes])
            return connector.write(changes)

    summary = shop.run(SystemPlugin(), Twice())
    assert {n: sorted(w[1] for w in SYSTEMS[n].writes) for n in "abc"} == {n: [ANN, BO] for n in "abc"}
    # The connector answered ok for both: they are acknowledged, and the plugin is named.
    assert {d.name: (d.status, d.records_written) for d in summary.destinations} == {n: ("partial", 2) for n in "abc"}
    assert _acked(shop, "b") == {ANN: "subscribed", BO: "subscribed"}
    reasons = {e[3] for e in _errors(shop)}
    assert reasons == {"refused by the consent gate: plugin 'Twice' passed a second change for the same "
                       "contact in one batch"}
    assert len(_errors(shop)) == 3 * 4


def test_non_change_objects_are_refused_one_by_one(shop) -> None:
    class Junk:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            ghost = SimpleNamespace(contact_key=CY, op="upsert", status="subscribed", attributes={}, tags=(),
                                    tags_add=(), tags_remove=(), previous_status=None, external_id=None,
                                    consent_method=None)
            return connector.write([None, {"contact_key": CY, "status": "subscribed"}, ghost, *changes])

    summary = shop.run(SystemPlugin(), Junk())
    assert {n: set(SYSTEMS[n].contacts) for n in "abc"} == {n: {ANN, BO} for n in "abc"}
    assert [e[1:] for e in _errors(shop) if e[0] == "a"] == [
        ("(unreadable change)", None, f"refused by the consent gate: plugin 'Junk' passed change #{i}: "
                                      f"a {kind}, not a plain ContactChange")
        for i, kind in ((1, "NoneType"), (2, "dict"), (3, "SimpleNamespace"))]
    assert {d.name: (d.status, d.records_written) for d in summary.destinations} == {n: ("partial", 2) for n in "abc"}


def test_a_list_subclass_or_generator_is_read_once(shop) -> None:
    class Fickle(list):
        reads = 0

        def __iter__(self):
            Fickle.reads += 1
            return super().__iter__() if Fickle.reads == 1 else iter([ContactChange(CY, "upsert", "subscribed")])

    class Generating:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "a":
                return connector.write(Fickle(changes))
            return connector.write(c for c in changes)

    summary = shop.run(SystemPlugin(), Generating())
    assert Fickle.reads == 1
    assert {n: set(SYSTEMS[n].contacts) for n in "abc"} == {n: {ANN, BO} for n in "abc"}
    assert summary.status == "succeeded" and _errors(shop) == []


def test_a_connector_kept_after_its_batch_cannot_write(shop) -> None:
    class Stash:
        kept = []

        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "a":
                Stash.kept.append((connector, changes))
            elif connector.connection == "b":
                old, old_changes = Stash.kept[0]
                old.write(old_changes)  # "a" again, from inside b's push

    summary = shop.run(SystemPlugin(), Stash())
    assert [w[1] for w in SYSTEMS["a"].writes] == [ANN, BO]
    assert SYSTEMS["b"].writes == []
    a, b, c = summary.destinations
    assert (a.status, b.status, c.status) == ("ok", "failed", "ok")
    assert b.error == ("plugin 'Stash' (connection 'b') failed writing: RuntimeError: plugin 'Stash' called "
                       "write on connection 'a' for a batch that is finished; write only the changes of the "
                       "current segsync_push call")


class RaisesAfterWriting:
    @hookimpl(tryfirst=True)
    def segsync_push(self, connector, changes, run_id):
        if connector.connection == "b":
            connector.write(changes)
            raise ValueError("metrics backend unreachable")


def test_a_plugin_raising_mid_batch_is_named_and_nothing_of_the_batch_is_acknowledged(shop) -> None:
    summary = shop.run(SystemPlugin(), RaisesAfterWriting())
    a, b, c = summary.destinations
    assert b.status == "failed"
    # Before: "plugin 'SystemPlugin' … failed writing" blamed the connector.
    assert b.error == ("plugin 'RaisesAfterWriting' (connection 'b') failed writing: ValueError: "
                       "metrics backend unreachable")
    assert _acked(shop, "b") == {}
    assert (a.status, c.status) == ("ok", "ok")
    assert _acked(shop, "a") == _acked(shop, "c") == {ANN: "subscribed", BO: "subscribed"}
    # Written but not acknowledged: sent again next run, so the system ends in the right state.
    assert shop.run(SystemPlugin()).destinations[1].records_written == 2
    assert _acked(shop, "b") == {ANN: "subscribed", BO: "subscribed"}


def test_an_inner_plugin_raising_under_a_wrapper_is_named_not_the_wrapper(shop) -> None:
    class Timer:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            return (yield)

    summary = shop.run(SystemPlugin(), Timer(), RaisesAfterWriting())
    assert summary.destinations[1].error.startswith("plugin 'RaisesAfterWriting' (connection 'b') failed writing")


class BrokenConnector(SystemConnector):
    type_name = "broken"

    def write(self, changes):
        raise ConnectionError("the service is down")


class BrokenPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(BrokenConnector)


def test_a_connector_raising_under_a_wrapper_blames_the_connector(shop) -> None:
    shop.write_config(CONFIG + '\n[connections.d]\ntype = "broken"\n')

    class Timer:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            return (yield)

    summary = shop.run(SystemPlugin(), BrokenPlugin(), Timer())
    d = next(x for x in summary.destinations if x.name == "d")
    assert d.error == "plugin 'BrokenPlugin' (connection 'd') failed writing: ConnectionError: the service is down"


def test_a_plugin_reporting_ok_without_writing_is_not_acknowledged(shop) -> None:
    class Liar:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "a":
                return WriteResult([Outcome.ok(c.contact_key) for c in changes], 1)
            if connector.connection == "b":
                return 42
            return None

    summary = shop.run(SystemPlugin(), Liar())
    a, b, c = summary.destinations
    assert (SYSTEMS["a"].writes, SYSTEMS["b"].writes) == ([], [])
    assert (a.status, a.records_written, a.records_retrying, a.write_calls) == ("failed", 0, 2, 0)
    assert a.error == ("a segsync_push plugin reported changes written that the connector never received "
                       "(see `segsync runs --errors`)")
    assert (b.status, b.records_written, b.records_retrying) == ("failed", 0, 2)
    assert b.error == "the segsync_push hook returned int, not a WriteResult (see `segsync runs --errors`)"
    assert (c.status, c.records_written) == ("ok", 2)
    assert _acked(shop, "a") == _acked(shop, "b") == {}
    # Retried, not remembered as done: the next run without the plugin sends them.
    again = shop.run(SystemPlugin())
    assert [d.records_written for d in again.destinations] == [2, 2, 0]


def test_a_veto_outcome_that_flips_to_ok_is_read_once(shop) -> None:
    class FlipOutcome(Outcome):
        """Reads "rejected" the first time, "ok" after."""

        @property
        def status(self):
            reads = self.__dict__.get("reads", 0) + 1
            object.__setattr__(self, "reads", reads)
            return "rejected" if reads == 1 else "ok"

        @status.setter
        def status(self, value):
            pass

    class Vetoer:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "a":
                return WriteResult([FlipOutcome(c.contact_key, "rejected", "vetoed") for c in changes], 0)
            return None

    summary = shop.run(SystemPlugin(), Vetoer())
    assert summary.destinations[0].records_rejected == 2 and summary.destinations[0].records_written == 0
    assert _acked(shop, "a") == {}


def test_an_endless_generator_is_read_only_so_far(shop) -> None:
    def endless(changes):
        yield from changes
        while True:
            yield changes[0]

    class Endless:
        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            return connector.write(endless(changes))

    summary = shop.run(SystemPlugin(), Endless())
    assert {n: sorted(w[1] for w in SYSTEMS[n].writes) for n in "abc"} == {n: [ANN, BO] for n in "abc"}
    assert len([e for e in _errors(shop) if e[0] == "a"]) == 2 * 2 + 100 - 2
    assert summary.destinations[0].error.startswith(
        "plugin 'Endless' wrote more than 104 changes at once; the rest were not read; plugin 'Endless' passed "
        "a second change for the same contact in one batch (field contact_key)")


def test_a_planned_change_that_cannot_be_rebuilt_is_rejected_alone(shop, monkeypatch) -> None:
    from segsync.sync.diff import DestinationDiff

    real = DestinationDiff.batches
    deep: dict = {}
    for _ in range(70):
        deep = {"x": deep}

    def deep_ann(diff, batch_size):
        for batch in real(diff, batch_size):
            yield [dataclasses.replace(p, change=dataclasses.replace(p.change, attributes={"deep": deep}))
                   if p.change.contact_key == ANN else p for p in batch]

    monkeypatch.setattr(DestinationDiff, "batches", deep_ann)
    summary = shop.run(SystemPlugin())
    assert {n: set(SYSTEMS[n].contacts) for n in "abc"} == {n: {BO} for n in "abc"}
    assert {d.name: (d.status, d.records_written, d.records_rejected) for d in summary.destinations} == {
        n: ("with-rejections", 1, 1) for n in "abc"}
    assert _errors(shop, "push")[0] == ("a", "a***@e***.com", "attributes",
                                         "the change cannot be pushed: attributes nested deeper than 64 levels")

"""The sync stages' hand-over objects on a tiny store: EffectiveConsent, DestinationDiff, the gate
and the acknowledgement, each taking only what the stage before it made."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from segsync import Batch, ContactChange, Outcome, Stream, WriteResult
from segsync.consent.policies import DEFAULT
from segsync.consent.rules import Decision, EffectiveConsent
from segsync.default_plugins.consent_policies import STRICT_DOUBLE_OPT_IN
from segsync.segments import SegmentDef, SegmentsConfig
from segsync.segments.builtins import default_registry
from segsync.segments.memberships import Memberships, evaluate_memberships
from segsync.sync.ack import Acknowledgement
from segsync.sync.diff import DestinationDiff, PlannedChange
from segsync.sync.gate import Gate
from segsync.sync.push import PushResult, WrittenBatch
from segsync.sync.summary import DestinationReport

from .conftest import rows

AS_OF = datetime(2025, 1, 1, tzinfo=timezone.utc)
ANN, BO, CY, GONE = "ann@example.com", "bo@example.com", "cy@example.com", "gone@example.com"


@pytest.fixture
def shop(store, ingestor):
    """Ann opted in (form), Bo opted in then out, Cy has no consent; the destination "crm"
    acknowledged Bo as subscribed and someone no longer in the store."""
    ingestor.ingest(Batch(Stream.CONTACTS, None, rows=[
        {"email": ANN, "first_name": "Ann"}, {"email": BO, "first_name": "Bo"},
        {"email": CY, "first_name": "Cy"}]))
    ingestor.ingest(Batch(Stream.CONSENT, None, rows=[
        {"email": ANN, "status": "opted_in", "timestamp": "2024-01-01T00:00:00Z", "method": "form"},
        {"email": BO, "status": "opted_in", "timestamp": "2024-01-01T00:00:00Z", "method": "form"},
        {"email": BO, "status": "opted_out", "timestamp": "2024-02-01T00:00:00Z", "method": "email_link"}]))
    for key in (BO, GONE):
        store.con.execute("INSERT INTO acknowledged (destination, contact_key, state_hash, status, run_id, "
                          "acked_at) VALUES ('crm', ?, 'old', 'subscribed', 1, now())", [key])
    return store


def _consent(store, run_id=1, **policies) -> EffectiveConsent:
    return EffectiveConsent.build(store.con, policies or {"crm": DEFAULT}, {}, as_of=AS_OF, run_id=run_id)


def _vip(store) -> Memberships:
    config = SegmentsConfig(segments=[SegmentDef(name="vip", rule='attr.first_name == "Ann"')])
    return evaluate_memberships(store.con, config, AS_OF, default_registry(), None)


def _temp_tables(store) -> set[str]:
    return {r[0] for r in rows(store, "SELECT table_name FROM duckdb_tables() WHERE temporary")}


def test_a_diff_counts_its_changes_and_batches_them_opt_outs_first(shop) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        assert diff.counts == {"add": 1, "delete": 1, "unsubscribe": 1} and diff.total == 3
        batches = list(diff.batches(2))
        assert [[(p.change.contact_key, p.action, p.change.op, p.change.status) for p in b] for b in batches] == [
            [(BO, "unsubscribe", "upsert", "unsubscribed"), (GONE, "delete", "delete", "subscribed")],
            [(ANN, "add", "upsert", "subscribed")],
        ]
        ann = batches[1][0]
        assert (ann.change.tags, ann.change.tags_add, ann.change.consent_method) == (("vip",), ("vip",), "form")
        assert ann.change.attributes["first_name"] == "Ann" and ann.state_hash is not None
        assert batches[0][1].state_hash is None  # a delete brings no state
        assert [p.masked() for p in diff.sample(1)] == [{
            "contact": "b***@e***.com", "action": "unsubscribe", "status": "unsubscribed",
            "tags_add": [], "tags_remove": []}]


def test_two_diffs_coexist_and_each_drops_only_its_own_tables(shop) -> None:
    before = _temp_tables(shop)
    consent = _consent(shop, crm=DEFAULT, files=DEFAULT)
    crm = DestinationDiff.build(shop.con, "crm", Memberships(), consent)
    files = DestinationDiff.build(shop.con, "files", Memberships(), consent)
    assert (crm.counts, files.counts) == ({"add": 1, "delete": 1, "unsubscribe": 1}, {"add": 1})
    crm.close()
    assert [p.change.contact_key for b in files.batches(10) for p in b] == [ANN]
    with pytest.raises(RuntimeError, match="^the diff of 'crm' is closed$"):
        next(crm.batches(10))
    files.close()
    consent.close()
    assert _temp_tables(shop) == before


def test_effective_consent_is_built_once_per_policy_and_read_per_destination(shop) -> None:
    before = _temp_tables(shop)
    with _consent(shop, a=DEFAULT, b=DEFAULT, strict=STRICT_DOUBLE_OPT_IN) as consent:
        assert len(_temp_tables(shop) - before) == 2  # a and b share the default policy's table
        ledger = dict(rows(shop, "SELECT contact_key, max(id) FROM consent_ledger GROUP BY contact_key"))
        assert consent.decisions("a", [ANN, BO, CY]) == {
            ANN: Decision("subscribed", ledger[ANN], None, "default"),
            BO: Decision("unsubscribed", ledger[BO], None, "default")}
        # Ann's form opt-in was never confirmed: under the strict policy she has no consent.
        assert consent.decisions("strict", [ANN]) == {}
        with pytest.raises(KeyError, match="no effective consent was built for destination 'c'"):
            consent.decisions("c", [ANN])
    with pytest.raises(RuntimeError, match="^the effective consent of run 1 is closed; the run has ended$"):
        consent.status_sql("a")


def test_the_gate_decides_from_the_effective_consent_of_its_diff(shop) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", Memberships(), consent) as diff:
        gate = Gate(shop, consent, diff)
        allowed, blocked = gate.split([ContactChange(k, "upsert", "subscribed") for k in (ANN, BO, CY)])
        assert [c.contact_key for c in allowed] == [ANN]
        bo_opt_out = rows(shop, "SELECT max(id) FROM consent_ledger WHERE contact_key = ?", [BO])[0][0]
        assert [(b.change.contact_key, b.reason, b.ledger_id) for b in blocked] == [
            (BO, "no consent to subscribe (effective status: unsubscribed)", bo_opt_out),
            (CY, "no consent to subscribe (effective status: none)", None)]


def test_the_gate_refuses_a_diff_planned_against_another_runs_consent(shop) -> None:
    first, second = _consent(shop, run_id=1), _consent(shop, run_id=2)
    diff = DestinationDiff.build(shop.con, "crm", Memberships(), first)
    with pytest.raises(ValueError, match=r"^the diff of 'crm' was planned against the effective consent of "
                                         r"another run \(run 1, not 2\); plan it again in this run$"):
        Gate(shop, second, diff)
    with pytest.raises(ValueError, match="^the diff of 'crm' was planned against another run's consent$"):
        Acknowledgement(shop, second, diff, DestinationReport("crm"))


def test_stages_called_out_of_order_are_type_errors(shop) -> None:
    consent = _consent(shop)
    diff = DestinationDiff.build(shop.con, "crm", Memberships(), consent)
    with pytest.raises(TypeError, match="^the gate checks a DestinationDiff, not a NoneType$"):
        Gate(shop, consent, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^the gate checks against an EffectiveConsent, not a str$"):
        Gate(shop, "SELECT * FROM _effective_consent", diff)  # type: ignore[arg-type]
    ack = Acknowledgement(shop, consent, diff, DestinationReport("crm"))
    with pytest.raises(TypeError, match="^the acknowledgement takes a WrittenBatch from the push stage, "
                                        "not a WriteResult$"):
        ack.written(WriteResult([Outcome.ok(ANN)], 1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^finish takes the PushResult of the push stage, not a WriteResult$"):
        ack.finish(WriteResult([], 0))  # type: ignore[arg-type]
    other = DestinationDiff.build(shop.con, "files", Memberships(), _consent(shop, files=DEFAULT))
    with pytest.raises(ValueError, match="^outcomes of the diff of 'files' handed to the acknowledgement of "
                                         "another diff \\('crm'\\)$"):
        ack.finish(PushResult(other))
    assert rows(shop, "SELECT count(*) FROM run_destinations")[0][0] == 0  # nothing recorded on the way


def test_a_write_batch_is_acknowledged_rejected_audited_and_retried_from_what_was_planned(shop) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        planned = {p.change.contact_key: p for b in diff.batches(10) for p in b}
        report = DestinationReport("crm")
        ack = Acknowledgement(shop, consent, diff, report)
        ack.written(WrittenBatch(diff, (planned[ANN], planned[BO], planned[GONE]), WriteResult(
            [Outcome.ok(ANN, external_id="x-1"), Outcome.rejected(BO, "Invalid Resource", "email")], 1)))
        assert (report.records_written, report.records_rejected, report.records_retrying) == (1, 1, 1)
        assert rows(shop, "SELECT contact_key, state_hash, status FROM acknowledged WHERE destination = 'crm' "
                          "ORDER BY contact_key") == [
            (ANN, planned[ANN].state_hash, "subscribed"), (BO, "old", "subscribed"), (GONE, "old", "subscribed")]
        assert rows(shop, "SELECT contact_key, segment FROM acknowledged_memberships") == [(ANN, "vip")]
        assert rows(shop, "SELECT connection, external_id, contact_key FROM identities "
                          "WHERE connection = 'crm'") == [("crm", "x-1", ANN)]
        assert rows(shop, "SELECT contact_key, state_hash, reason, refused_by FROM rejected") == [
            (BO, planned[BO].state_hash, "Invalid Resource", "destination")]
        ledger = dict(rows(shop, "SELECT contact_key, max(id) FROM consent_ledger GROUP BY contact_key"))
        assert rows(shop, "SELECT contact_key, action, before_status, after_status, ledger_id, policy, outcome, "
                          "reason FROM status_changes ORDER BY contact_key") == [
            (ANN, "add", None, "subscribed", ledger[ANN], "default", "acknowledged", None),
            (BO, "unsubscribe", "subscribed", "unsubscribed", ledger[BO], "default", "rejected",
             "Invalid Resource")]
        assert rows(shop, "SELECT record, field, reason, retryable FROM record_errors ORDER BY record") == [
            ("b***@e***.com", "email", "Invalid Resource", False),
            ("g***@e***.com", None, "the connector returned no outcome for this record", True)]
        assert ack.finish(PushResult(diff, write_calls=1)) is report
        assert (report.status, report.error, report.write_calls) == (
            "partial", "1 record(s) to retry on the next run (see `segsync runs --errors`)", 1)
        assert rows(shop, "SELECT destination, status, write_calls, records_written, records_rejected, "
                          "records_retrying FROM run_destinations") == [("crm", "partial", 1, 1, 1, 1)]
        # The next diff plans the retry and the changed state only: Ann is acknowledged, Bo's
        # refused state is remembered.
        again = DestinationDiff.build(shop.con, "crm", _vip(shop), consent)
        assert again.counts == {"delete": 1}
        again.close()


@pytest.mark.parametrize("committed", [True, False])
def test_pages_of_a_write_session_are_acknowledged_only_once_it_commits(shop, committed) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        planned = {p.change.contact_key: p for b in diff.batches(10) for p in b}
        report = DestinationReport("crm")
        ack = Acknowledgement(shop, consent, diff, report)
        acked = "SELECT contact_key, state_hash FROM acknowledged WHERE destination = 'crm' ORDER BY ALL"
        ack.written(WrittenBatch(diff, (planned[ANN], planned[BO]), WriteResult(
            [Outcome.ok(ANN, external_id="x-1"), Outcome.rejected(BO, "Invalid Resource", "email")], 0),
            pending=True))
        ack.written(WrittenBatch(diff, (planned[GONE],), WriteResult([Outcome.ok(GONE)], 0), pending=True))
        # Refusals are final at once; the ok answers wait for the session's commit.
        assert (report.records_written, report.records_rejected) == (0, 1)
        assert rows(shop, acked) == [(BO, "old"), (GONE, "old")]
        assert rows(shop, "SELECT contact_key, refused_by FROM rejected") == [(BO, "destination")]
        assert rows(shop, "SELECT contact_key, outcome FROM status_changes") == [(BO, "rejected")]
        assert rows(shop, "SELECT count(*) FROM acknowledged_memberships") == [(0,)]
        if committed:
            ack.commit_pending()
            assert report.records_written == 2
            assert rows(shop, acked) == [(ANN, planned[ANN].state_hash), (BO, "old")]
            assert rows(shop, "SELECT contact_key, segment FROM acknowledged_memberships") == [(ANN, "vip")]
            assert rows(shop, "SELECT external_id, contact_key FROM identities WHERE connection = 'crm'") == [
                ("x-1", ANN)]
            assert rows(shop, "SELECT contact_key, outcome FROM status_changes ORDER BY ALL") == [
                (ANN, "acknowledged"), (BO, "rejected")]
        else:
            ack.drop_pending()
            ack.commit_pending()  # nothing left to commit
            assert report.records_written == 0
            assert rows(shop, acked) == [(BO, "old"), (GONE, "old")]
            assert rows(shop, "SELECT count(*) FROM acknowledged_memberships") == [(0,)]
        ack.finish(PushResult(diff))
        assert not {t for t in _temp_tables(shop) if t.startswith("_acknowledging")}


def test_a_plugin_gets_no_write_session_through_the_gated_connector(shop) -> None:
    from segsync.sync.gate import GatedConnector

    class Session(_Recorder):
        def write_session(self):
            raise AssertionError("the gated connector must not open a session")

    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        gated = GatedConnector(Session(), Gate(shop, consent, diff), [])
        assert gated.write_session() is None
        assert gated.connection == "crm"  # the rest is delegated


def test_planned_changes_the_gate_blocked_are_remembered_as_its_refusals(shop) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", Memberships(), consent) as diff:
        report = DestinationReport("crm")
        gate = Gate(shop, consent, diff)
        bogus = PlannedChange(ContactChange(CY, "upsert", "subscribed"), "add", "h-cy")
        _, blocked = gate.split([bogus.change])
        Acknowledgement(shop, consent, diff, report).refused(gate, blocked, [bogus])
        assert (report.records_blocked, report.records_rejected) == (1, 1)
        assert rows(shop, "SELECT contact_key, state_hash, reason, refused_by FROM rejected") == [
            (CY, "h-cy", "consent gate: no consent to subscribe (effective status: none)", "gate")]
        assert rows(shop, "SELECT contact_key, after_status, outcome FROM status_changes") == [
            (CY, "subscribed", "blocked")]


def test_a_run_evaluates_incrementally_after_the_first_and_a_dry_run_in_full(shop, ingestor) -> None:
    config = SegmentsConfig(segments=[SegmentDef(name="openers", rule="opens(30d) >= 1"),
                                      SegmentDef(name="mailable", rule='consentable("email")')])
    first = evaluate_memberships(shop.con, config, AS_OF, default_registry(), 1)
    assert (first.evaluation, first.sizes) == ("full (no previous evaluation)",
                                               {"openers": 0, "mailable": 1})
    # Events and consent arrive through ingestion: only Cy (an open) and Bo (an opt-in by form)
    # are recomputed.
    ingestor.ingest(Batch(Stream.EVENTS, None, rows=[
        {"email": CY, "type": "email.opened", "timestamp": "2024-12-31T00:00:00Z", "id": "e1"}]))
    ingestor.ingest(Batch(Stream.CONSENT, None, rows=[
        {"email": BO, "status": "opted_in", "timestamp": "2024-03-01T00:00:00Z", "method": "form"}]))
    second = evaluate_memberships(shop.con, config, AS_OF, default_registry(), 2)
    assert (second.evaluation, second.sizes) == ("incremental: 2 contacts recomputed",
                                                 {"openers": 1, "mailable": 2})
    assert rows(shop, "SELECT run_id, segment, contact_key FROM segment_snapshots "
                      "WHERE run_id = 2 ORDER BY ALL") == [
        (2, "mailable", ANN), (2, "mailable", BO), (2, "openers", CY)]
    dry = evaluate_memberships(shop.con, config, AS_OF, default_registry(), None)
    assert (dry.evaluation, dry.sizes) == ("full (dry run)", {"openers": 1, "mailable": 2})


def test_pages_of_a_diff_follow_its_stored_order_whatever_their_size(shop) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        # Each row keeps its position in the order the pages follow: a page reads its range.
        assert rows(shop, f"SELECT _seq, contact_key, priority FROM {diff._table} ORDER BY _seq") == [
            (1, BO, 0), (2, GONE, 1), (3, ANN, 2)]
        for size in (1, 2, 3, 10):
            pages = list(diff.batches(size))
            assert [len(page) for page in pages] == [min(size, 3 - start) for start in range(0, 3, size)]
            assert [p.change.contact_key for page in pages for p in page] == [BO, GONE, ANN]


class _Recorder:
    """A connector that keeps what it was given."""

    connection = "crm"
    write_batch_size = None

    def __init__(self) -> None:
        self.given: list[ContactChange] = []

    def write(self, changes):
        self.given.extend(changes)
        return WriteResult([Outcome.ok(c.contact_key) for c in changes], 1)


def test_the_gate_keeps_no_copy_of_the_push_stages_changes_and_the_connector_gets_them(shop) -> None:
    """The memory bug: the gate kept a copy and a JSON fingerprint of every change, and the
    connector got yet another copy; a one-write batch of 200k changes cost +684 MiB."""
    from segsync.sync.gate import GatedConnector

    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        planned = [p.change for page in diff.batches(10) for p in page]
        connector = _Recorder()
        gated = GatedConnector(connector, Gate(shop, consent, diff), planned)
        handed = gated.handed_over()
        # The hook gets copies: what it does to them never reaches the push stage's changes.
        assert handed == tuple(planned) and all(h is not p for h, p in zip(handed, planned))
        handed[2].attributes["first_name"] = "Mallory"
        assert planned[2].attributes["first_name"] == "Ann"
        result = gated.write(handed[:2])
        # The connector gets the push stage's own objects, each equal to what the plugin passed.
        assert [id(c) for c in connector.given] == [id(c) for c in planned[:2]]
        assert [o.contact_key for o in result.outcomes] == [BO, GONE]
        assert not hasattr(gated, "_expected")
        refused = gated.write(handed[2:])
        assert connector.given[2:] == []
        assert [(o.contact_key, o.status, o.field) for o in refused.outcomes] == [(ANN, "rejected", "attributes")]


def test_with_only_the_cores_hook_the_batch_itself_is_handed_over_and_written_as_it_is(shop) -> None:
    from segsync.sync.gate import GatedConnector

    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        planned = [p.change for page in diff.batches(10) for p in page]
        connector = _Recorder()
        gated = GatedConnector(connector, Gate(shop, consent, diff), planned, only_core=True)
        handed = gated.handed_over()
        assert [id(c) for c in handed] == [id(c) for c in planned]
        result = gated.write(handed)
        assert [id(c) for c in connector.given] == [id(c) for c in planned]
        assert [(o.contact_key, o.status) for o in result.outcomes] == [(BO, "ok"), (GONE, "ok"), (ANN, "ok")]
        # Anything but that very tuple, once, is checked as a plugin's write would be.
        again = gated.write(handed)
        assert len(connector.given) == 3
        assert [(o.contact_key, o.field) for o in again.outcomes] == [
            (BO, "contact_key"), (GONE, "contact_key"), (ANN, "contact_key")]
        settled = gated.settle(result)
        assert [(o.contact_key, o.status) for o in settled.result.outcomes] == [
            (BO, "ok"), (GONE, "ok"), (ANN, "ok")]
        assert settled.problems == ["a segsync_push plugin passed a second change for the same contact in "
                                    "one batch (field contact_key)"]


def test_the_host_knows_when_only_the_cores_hook_pushes() -> None:
    from segsync import hookimpl
    from segsync.plugins import PluginHost

    host = PluginHost(load_entry_points=False)
    assert host.only_core_pushes()

    class Observer:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            return (yield)

    host.pm.register(Observer(), name="observer")
    assert not host.only_core_pushes()


@pytest.mark.parametrize(("a", "b", "field"), [
    ({"n": 1}, {"n": True}, "attributes"),
    ({"n": 1}, {"n": 1.0}, "attributes"),
    ({"n": 0.0}, {"n": -0.0}, "attributes"),
    ({"n": [1, {"x": "y"}]}, {"n": [1, {"x": "z"}]}, "attributes"),
    ({"n": float("nan"), "m": 2}, {"m": 2, "n": float("nan")}, None),  # order and NaN as JSON sees them
    ({"n": [1, {"x": "y"}]}, {"n": [1, {"x": "y"}]}, None),
])
def test_a_change_equals_the_planned_one_only_with_the_same_types_all_the_way_down(a, b, field) -> None:
    from segsync.sync.gate import _first_difference

    assert _first_difference(ContactChange(ANN, "upsert", "subscribed", attributes=a),
                             ContactChange(ANN, "upsert", "subscribed", attributes=b)) == field
    assert _first_difference(ContactChange(ANN, "upsert", "subscribed", tags=("a",)),
                             ContactChange(ANN, "upsert", "subscribed", tags=("b",))) == "tags"


def test_a_diff_page_holds_exactly_the_changes_the_planner_means(shop, ingestor) -> None:
    # Custom attributes (one overriding nothing, one null), tags entering and leaving.
    ingestor.ingest(Batch(Stream.CONTACTS, None, rows=[{"email": ANN, "first_name": "Ann", "plan": "pro"}]))
    shop.con.execute("INSERT INTO acknowledged_memberships (destination, contact_key, segment, run_id, acked_at) "
                     "VALUES ('crm', ?, 'old', 1, now()), ('crm', ?, 'vip', 1, now())", [BO, BO])
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        page = next(diff.batches(10))
    assert [(p.change, p.action) for p in page] == [
        (ContactChange(BO, "upsert", "unsubscribed", {"first_name": "Bo"}, tags=(), tags_add=(),
                       tags_remove=("old", "vip"), previous_status="subscribed", consent_method="email_link"),
         "unsubscribe"),
        (ContactChange(GONE, "delete", "subscribed", {}, previous_status="subscribed"), "delete"),
        (ContactChange(ANN, "upsert", "subscribed", {"first_name": "Ann", "plan": "pro"}, tags=("vip",),
                       tags_add=("vip",), consent_method="form"), "add"),
    ]
    # Built without the dataclass's __init__, but plain: the gate's own check passes them as they are.
    from segsync.sync.gate import checked_change

    for planned in page:
        assert type(planned) is PlannedChange and checked_change(planned.change) is planned.change
        assert type(planned.change.attributes) is dict and type(planned.change.tags_remove) is tuple


def test_a_page_without_refusals_skips_the_refusal_writes(shop, monkeypatch) -> None:
    calls: list[str] = []
    for name in ("_remember", "_audit"):
        original = getattr(Acknowledgement, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Acknowledgement, name, spy)
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        planned = {p.change.contact_key: p for b in diff.batches(10) for p in b}
        ack = Acknowledgement(shop, consent, diff, DestinationReport("crm"))
        ack.written(WrittenBatch(diff, (planned[ANN],), WriteResult([Outcome.ok(ANN)], 0), pending=True))
        assert calls == []
        ack.written(WrittenBatch(diff, (planned[BO],), WriteResult([Outcome.rejected(BO, "no")], 0), pending=True))
        assert calls == ["_remember", "_audit"]
        ack.commit_pending()
        assert calls == ["_remember", "_audit", "_audit"]
        assert rows(shop, "SELECT contact_key, outcome FROM status_changes ORDER BY ALL") == [
            (ANN, "acknowledged"), (BO, "rejected")]
        ack.finish(PushResult(diff))


class _PagedSession:
    """A write session that records, per page, whether Python's collector was running and
    leaves one reference cycle behind (watched through a weak reference)."""

    def __init__(self) -> None:
        self.pages: list[tuple[list[str], bool]] = []
        self.cycles: list = []
        self.committed = False

    def write(self, changes):
        import gc
        import weakref

        class Cycle:
            pass

        cycle = Cycle()
        cycle.me = cycle  # only the collector frees it
        self.cycles.append(weakref.ref(cycle))
        self.pages.append(([c.contact_key for c in changes], gc.isenabled()))
        return WriteResult([Outcome.ok(c.contact_key) for c in changes], 0)

    def commit(self) -> int:
        self.committed = True
        return 1

    def abort(self) -> None:
        pass


def _paged_push(shop, monkeypatch, session: _PagedSession, page_size: int):
    """Push the shop's crm diff through a connector offering ``session``, ``page_size`` a page."""
    from segsync import Capability, Connector, hookimpl
    from segsync.plugins import PluginHost
    from segsync.progress import Reporter
    from segsync.sync import push as push_module

    class Paged(Connector):
        type_name = "paged"
        capabilities = frozenset({Capability.WRITE_CONTACTS})

        def __init__(self) -> None:
            self.connection = "crm"

        def write_session(self):
            return session

    class Plugin:
        @hookimpl
        def segsync_register_connectors(self, register):
            register(Paged)

    monkeypatch.setattr(push_module, "PAGE_SIZE", page_size)
    host = PluginHost(load_entry_points=False, extra_plugins=[Plugin()])
    consent = _consent(shop)
    diff = DestinationDiff.build(shop.con, "crm", _vip(shop), consent)
    report = DestinationReport("crm")
    ack = Acknowledgement(shop, consent, diff, report)
    pushed = push_module.push(diff, Gate(shop, consent, diff), Paged(), host, ack, Reporter(quiet=True))
    ack.finish(pushed)
    return pushed, report


def test_the_push_runs_without_automatic_garbage_collection_and_collects_once_a_page(shop, monkeypatch) -> None:
    import gc

    session = _PagedSession()
    assert gc.isenabled()
    pushed, report = _paged_push(shop, monkeypatch, session, page_size=1)
    # Three pages, each written while the collector was paused; it runs again after the push.
    assert session.pages == [([BO], False), ([GONE], False), ([ANN], False)]
    assert gc.isenabled()
    assert (pushed.error, session.committed, report.records_written, report.status) == (None, True, 3, "ok")
    # The cycles the first pages left were collected before the next page was read (the
    # last one's by the next collection, after the push).
    assert [ref() is None for ref in session.cycles[:2]] == [True, True]


def test_a_push_leaves_the_collector_as_it_found_it_and_pauses_nest(shop, monkeypatch) -> None:
    import gc

    from segsync.sync.push import collector_paused

    gc.disable()
    try:
        session = _PagedSession()
        _paged_push(shop, monkeypatch, session, page_size=10)
        assert session.pages == [([BO, GONE, ANN], False)]
        assert not gc.isenabled()  # disabled before: still disabled
    finally:
        gc.enable()
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_a_write_session_page_holds_only_keys_and_ids_and_the_commit_reads_the_rest_from_the_diff(shop) -> None:
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", _vip(shop), consent) as diff:
        planned = {p.change.contact_key: p for b in diff.batches(10) for p in b}
        report = DestinationReport("crm")
        ack = Acknowledgement(shop, consent, diff, report)
        ack.written(WrittenBatch(diff, (planned[ANN],), WriteResult([Outcome.ok(ANN, external_id="x-1")], 0),
                                 pending=True))
        ack.written(WrittenBatch(diff, (planned[GONE],), WriteResult([Outcome.ok(GONE)], 0), pending=True))
        # What a page keeps until the commit: the ok answers' keys and external ids, nothing else.
        assert rows(shop, f"DESCRIBE {ack._pending}") == [
            ("contact_key", "VARCHAR", "YES", None, None, None), ("external_id", "VARCHAR", "YES", None, None, None)]
        assert rows(shop, f"SELECT * FROM {ack._pending} ORDER BY ALL") == [(ANN, "x-1"), (GONE, None)]
        # The diff's rows the planned changes were read from: what the commit acknowledges.
        assert rows(shop, f"SELECT * FROM ({diff.planned_sql()}) ORDER BY contact_key") == [
            (ANN, "upsert", "add", "subscribed", None, planned[ANN].state_hash, ["vip"]),
            (BO, "upsert", "unsubscribe", "unsubscribed", "subscribed", planned[BO].state_hash, []),
            (GONE, "delete", "delete", "subscribed", "subscribed", None, [])]
        ack.commit_pending()
        assert report.records_written == 2
        assert rows(shop, "SELECT contact_key, state_hash, status, run_id FROM acknowledged "
                          "WHERE destination = 'crm' ORDER BY ALL") == [
            (ANN, planned[ANN].state_hash, "subscribed", 1), (BO, "old", "subscribed", 1)]
        assert rows(shop, "SELECT contact_key, segment FROM acknowledged_memberships") == [(ANN, "vip")]
        assert rows(shop, "SELECT external_id, contact_key FROM identities WHERE connection = 'crm'") == [
            ("x-1", ANN)]
        assert rows(shop, "SELECT contact_key, action, before_status, after_status, outcome FROM status_changes") == [
            (ANN, "add", None, "subscribed", "acknowledged")]
        assert not {t for t in _temp_tables(shop) if t == ack._pending}


def test_the_gate_looks_a_batchs_consent_up_in_one_statement_and_what_decided_a_block_only_for_blocks(shop) -> None:
    from types import SimpleNamespace

    from segsync.consent import suppression

    # Someone erased: only the salted hash of the address is left.
    shop.con.execute("INSERT INTO suppressions (contact_key, address_hash, channel, reason, source, created_at) "
                     "VALUES (NULL, ?, 'all', 'erasure', 'test', now())",
                     [suppression.address_hash(shop.con, "erased@example.com")])
    with _consent(shop) as consent, DestinationDiff.build(shop.con, "crm", Memberships(), consent) as diff:
        gate = Gate(shop, consent, diff)
        statements: list[str] = []

        class Counted:
            def execute(self, sql, *args):
                statements.append(sql.split()[0])
                return shop.con.execute(sql, *args)

        gate.store = SimpleNamespace(con=Counted())
        changes = [ContactChange(ANN, "upsert", "subscribed"),
                   ContactChange(BO, "upsert", "unsubscribed", previous_status="subscribed"),
                   ContactChange(GONE, "delete", "subscribed")]
        assert gate.split(changes) == (changes, [])
        # The batch's keys staged, looked up with the erasures, dropped: three statements a batch.
        assert statements == ["CREATE", "SELECT", "DROP"]
        statements.clear()
        allowed, blocked = gate.split([ContactChange(ANN, "upsert", "bogus"), ContactChange(ANN, "upsert", "pending"),
                                       ContactChange(CY, "upsert", "subscribed"),
                                       ContactChange("erased@example.com", "upsert", "unsubscribed")])
        assert [(c.contact_key, c.status) for c in allowed] == [(ANN, "pending")]
        ledger = dict(rows(shop, "SELECT contact_key, max(id) FROM consent_ledger GROUP BY contact_key"))
        # Ann is subscribed: what decided it is looked up only because a change of hers was blocked.
        assert [(b.change.contact_key, b.reason, b.ledger_id, b.suppression_id) for b in blocked] == [
            (ANN, "unknown subscription status 'bogus'", ledger[ANN], None),
            (CY, "no consent to subscribe (effective status: none)", None, None),
            ("erased@example.com", "the person was erased; only a hashed suppression entry remains", None, None)]
        assert statements == ["CREATE", "SELECT", "DROP"]
        assert not {t for t in _temp_tables(shop) if t.startswith("_gate_keys")}

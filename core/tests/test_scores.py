"""Per-contact scores (segsync.scores): computed by a plugin before evaluation, read by rules,
kept per run, and never read as a silent 0 when they cannot be computed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from segsync import hookimpl
from segsync.scores import ScoreError, ScoreRun, score_feature, scores_sql
from segsync.segments import SegmentConfigError, SegmentDef, evaluate
from segsync.segments.functions import Built, Param, SegmentFunction
from segsync.store import Store
from segsync.testing import Project

T1 = datetime(2024, 3, 1, tzinfo=timezone.utc)
T2 = datetime(2024, 3, 2, tzinfo=timezone.utc)

CONFIG = """
    [store]
    path = "store.duckdb"

    [connections.shop]
    type = "files"
    contacts = "data/contacts.csv"
    consent = "data/consent.csv"
    events = "data/events.jsonl"

    [connections.upload]
    type = "files"
    output = "out/audience"

    [[segments]]
    name = "likely"
    rule = "likelihood() > 0.5"
    [segments.destinations.upload]
    tag = "likely"

    [[segments]]
    name = "openers"
    rule = "opens() >= 1"
"""


def _likelihood(ctx, args) -> Built:  # noqa: ANN001 - a builder
    feature = score_feature(ctx, "likelihood")
    return Built(feature.ref(), (feature,))


class Scorer:
    """Registers likelihood() and scores it from ``values`` (address → score); ``fail`` makes
    it declare the model unavailable, ``crash`` raise."""

    def __init__(self, values: dict[str, float], *, fail: str = "", crash: bool = False) -> None:
        self.values, self.fail, self.crash = values, fail, crash
        self.calls: list[tuple[int, frozenset[str]]] = []

    @hookimpl
    def segsync_register_segment_functions(self, register) -> None:  # noqa: ANN001
        register(SegmentFunction("likelihood", (), "number", "A test score", _likelihood))

    @hookimpl
    def segsync_score_contacts(self, scores: ScoreRun) -> None:
        self.calls.append((scores.run_id, scores.wanted))
        if self.crash:
            raise RuntimeError("the model file is corrupt")
        if self.fail:
            scores.unavailable("likelihood", self.fail)
            return
        scores.write("likelihood", list(self.values), list(self.values.values()),
                     detail="test", metrics={"auc": 0.9})


class NoScores:
    """Registers the function only: nobody computes the model."""

    @hookimpl
    def segsync_register_segment_functions(self, register) -> None:  # noqa: ANN001
        register(SegmentFunction("likelihood", (), "number", "A test score", _likelihood))


@pytest.fixture
def project(tmp_path) -> Project:
    project = Project.sample(tmp_path)
    project.write_config(CONFIG)
    return project


def _members(project: Project, run_id: int, segment: str) -> list[str]:
    return [r[0] for r in project.query(
        "SELECT contact_key FROM segment_snapshots WHERE run_id = ? AND segment = ? ORDER BY 1",
        [run_id, segment])]


def test_a_run_scores_before_evaluating_and_keeps_each_runs_scores(project) -> None:
    scorer = Scorer({"ann@example.com": 0.9, "bo@example.com": 0.2, "cy@example.com": float("nan")})
    first = project.run(scorer, as_of=T1)
    assert first.segments == {"likely": 1, "openers": 1}
    assert first.segment_errors == {}
    assert scorer.calls == [(first.run_id, frozenset({"likelihood"}))]
    assert _members(project, first.run_id, "likely") == ["ann@example.com"]

    scorer.values = {"ann@example.com": 0.1, "bo@example.com": 0.8, "cy@example.com": 0.7}
    second = project.run(scorer, as_of=T2)
    # No event changed: the incremental evaluation still sees whose score moved.
    assert second.segments == {"likely": 2, "openers": 1}
    assert _members(project, second.run_id, "likely") == ["bo@example.com", "cy@example.com"]
    # Both runs' scores are kept (a NaN is no score); the first run's are unchanged.
    assert project.query("SELECT run_id, contact_key, score FROM contact_scores ORDER BY 1, 2") == [
        (first.run_id, "ann@example.com", 0.9), (first.run_id, "bo@example.com", 0.2),
        (second.run_id, "ann@example.com", 0.1), (second.run_id, "bo@example.com", 0.8),
        (second.run_id, "cy@example.com", 0.7),
    ]
    assert project.query("SELECT run_id, model, computed, detail, metrics FROM score_runs ORDER BY 1") == [
        (first.run_id, "likelihood", True, "test", '{"auc": 0.9}'),
        (second.run_id, "likelihood", True, "test", '{"auc": 0.9}'),
    ]
    # What a reader outside the rules (a report) sees: the latest run's scores, or those at a time.
    assert sorted(project.query(scores_sql("likelihood"))) == [
        ("ann@example.com", 0.1), ("bo@example.com", 0.8), ("cy@example.com", 0.7)]
    assert sorted(project.query(scores_sql("likelihood", T1))) == [
        ("ann@example.com", 0.9), ("bo@example.com", 0.2)]


def test_a_model_that_cannot_be_computed_holds_its_segments_with_the_reason(project) -> None:
    scorer = Scorer({"ann@example.com": 0.9})
    first = project.run(scorer, as_of=T1)
    scorer.fail = "only 3 contacts with history (needs 200)"
    second = project.run(scorer, as_of=T2)
    reason = (f"segment 'likely': model 'likelihood' could not be computed in run {second.run_id}: "
              "only 3 contacts with history (needs 200)")
    assert second.segment_errors == {"likely": reason}
    assert second.segments == {"openers": 1}
    assert project.query("SELECT record, field, reason FROM record_errors WHERE run_id = ?",
                         [second.run_id]) == [("likely", "rule", reason)]
    # Held: it keeps the last evaluated membership rather than emptying (no snapshot of its own).
    assert _members(project, first.run_id, "likely") == ["ann@example.com"]
    assert _members(project, second.run_id, "likely") == []
    assert project.audience()["ann@example.com"]["tags"] == ["likely", "openers"]
    assert second.destinations[0].planned == {}
    assert project.query("SELECT count(*) FROM contact_scores WHERE run_id = ?", [second.run_id]) == [(0,)]


def test_a_plugin_that_raises_or_no_plugin_at_all_holds_the_segments(project) -> None:
    crashed = project.run(Scorer({}, crash=True), as_of=T1)
    assert crashed.segment_errors == {"likely": (
        f"segment 'likely': model 'likelihood' could not be computed in run {crashed.run_id}: plugin "
        "'Scorer' failed while scoring: RuntimeError: the model file is corrupt")}
    assert crashed.segments == {"openers": 1}
    nobody = project.run(NoScores(), as_of=T2)
    assert nobody.segment_errors == {"likely": (
        f"segment 'likely': model 'likelihood' could not be computed in run {nobody.run_id}: "
        "no installed plugin computes model 'likelihood'")}


def test_no_scoring_when_no_rule_reads_a_score(project) -> None:
    project.write_config(CONFIG.split("[[segments]]")[0] + '[[segments]]\nname = "openers"\nrule = "opens() >= 1"\n')
    scorer = Scorer({"ann@example.com": 0.9})
    summary = project.run(scorer, as_of=T1)
    assert scorer.calls == []
    assert summary.segments == {"openers": 1}
    assert project.query("SELECT count(*) FROM score_runs") == [(0,)]


def test_a_dry_run_reads_the_latest_scores_and_computes_none(project) -> None:
    scorer = Scorer({"bo@example.com": 0.9})
    project.run(scorer, as_of=T1)
    dry = project.run(scorer, as_of=T2, dry_run=True)
    assert len(scorer.calls) == 1
    assert dry.segments == {"likely": 1, "openers": 1}


def test_evaluating_outside_a_run_refuses_scores_that_cannot_be_read(project) -> None:
    project.run(NoScores(), as_of=T1)
    registry = project.host(NoScores()).segment_registry()
    segments = [SegmentDef(name="likely", rule="likelihood() > 0.5")]
    with Store(project.root / "store.duckdb") as store:
        with pytest.raises(SegmentConfigError, match=r"^segment 'likely': model 'likelihood' could not be "
                           r"computed in run 1: no installed plugin computes model 'likelihood'$"):
            evaluate(store.con, segments, None, T2, registry)
        # Before any run computed it: no scores yet.
        with pytest.raises(SegmentConfigError, match=r"no scores for model 'likelihood' at 2024-02-01 00:00 UTC"):
            evaluate(store.con, segments, None, datetime(2024, 2, 1, tzinfo=timezone.utc), registry)


def test_score_run_refuses_what_it_cannot_store(tmp_path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        scores = ScoreRun(store.con, 1, T1, frozenset({"m"}))
        with pytest.raises(ScoreError, match=r"^model 'm': 2 contact keys but 1 scores$"):
            scores.write("m", ["a@example.com", "b@example.com"], [0.5])
        with pytest.raises(ScoreError, match=r"^model name 'Churn Risk': use lower-case letters"):
            scores.write("Churn Risk", [], [])
        with pytest.raises(ScoreError, match=r"^model 'm': the scores cannot be stored: .*nope"):
            scores.write_sql("m", "SELECT contact_key, nope AS score FROM contacts")
        assert scores.write("m", ["a@example.com"], [0.25]) == 1
        assert scores.write("m", ["b@example.com"], [0.5]) == 1  # written twice: the second wins
        assert store.con.execute("SELECT contact_key, score FROM contact_scores").fetchall() == [
            ("b@example.com", 0.5)]
        assert scores.written == {"m": 1}

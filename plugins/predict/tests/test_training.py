"""Training: the time split never lets the future in, the same store gives the same scores, and
each run's scores are kept."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np

from segsync.scores import scores_sql
from segsync_predict.features import FEATURES, frame
from segsync_predict.models import MODELS, predict, train

from .conftest import AS_OF, CONFIG, event, make_project

SEGMENT = """
    [[segments]]
    name = "at_risk"
    rule = "churn_risk() > 0.5"
"""


def _scores(project, run_id: int) -> list[tuple]:
    return project.query("SELECT contact_key, score FROM contact_scores WHERE run_id = ? "
                         "AND model = 'churn_risk' ORDER BY 1", [run_id])


def _later_events(days: int) -> str:
    """An order and an open for every other contact, ``days`` after AS_OF."""
    at = AS_OF + timedelta(days=days)
    return "".join(event(f"p{i}@example.com", t, at, f"late{days}-{t}-{i}")
                   for i in range(0, 300, 2) for t in ("email.opened", "order.completed"))


def test_training_features_read_nothing_after_the_cutoff_and_outcomes_nothing_after_their_end(shop) -> None:
    shop.run(as_of=AS_OF)
    spec = MODELS["purchase_30d"]
    cutoff = AS_OF - timedelta(days=60)
    store = shop.root / "store.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        before = frame(con, cutoff, spec.outcome, spec.horizon)
        model_before = train(con, spec, cutoff + spec.horizon)
    # Orders for half the contacts inside the outcome window, and after it.
    inside = cutoff + timedelta(days=10)
    shop.append("events.jsonl", "".join(
        event(f"p{i}@example.com", "order.completed", at, f"x{i}-{at:%j}")
        for i in range(0, 300, 2) for at in (inside, cutoff + timedelta(days=45))))
    shop.run(as_of=AS_OF)
    with duckdb.connect(str(store), read_only=True) as con:
        after = frame(con, cutoff, spec.outcome, spec.horizon)
        model_after = train(con, spec, cutoff + spec.horizon)
        # The same model is trained for a run whose outcomes end before the new orders.
        same_until = train(con, spec, inside - timedelta(seconds=1))
        at_cutoff = frame(con, cutoff)
    assert before.keys == after.keys and len(before.keys) == 300
    np.testing.assert_array_equal(before.x, after.x)  # NaN == NaN here: features are unchanged
    assert before.x.shape == (300, len(FEATURES))
    assert before.y is not None and after.y is not None
    # Outcomes: exactly the contacts given an order inside the window now bought.
    bought = {f"p{i}@example.com" for i in range(0, 300, 2)}
    assert {k for k, y in zip(after.keys, after.y) if y} == bought | {
        k for k, y in zip(before.keys, before.y) if y}
    assert not np.array_equal(predict(model_before, at_cutoff), predict(model_after, at_cutoff))
    with duckdb.connect(str(store), read_only=True) as con:
        earlier = frame(con, inside - timedelta(seconds=1) - spec.horizon, spec.outcome, spec.horizon)
    assert same_until.cutoff == earlier.cutoff and same_until.rows == len(earlier.keys)


def test_a_run_reads_no_event_after_its_as_of_and_the_same_store_gives_the_same_scores(shop, tmp_path) -> None:
    shop.write_config(CONFIG + SEGMENT)
    first = shop.run(as_of=AS_OF)
    assert first.segment_errors == {}
    # Events dated after as_of (a source ahead of the clock) change nothing at that as_of.
    shop.append("events.jsonl", _later_events(days=2))
    second = shop.run(as_of=AS_OF)
    assert _scores(shop, second.run_id) == _scores(shop, first.run_id)
    assert len(_scores(shop, first.run_id)) == 300
    # Another store built from the same data scores the same, bit for bit.
    twin = make_project(tmp_path / "twin")
    twin.write_config(CONFIG + SEGMENT)
    again = twin.run(as_of=AS_OF)
    assert _scores(twin, again.run_id) == _scores(shop, first.run_id)


def test_each_run_keeps_its_own_scores_and_rules_read_those_of_their_as_of(shop) -> None:
    shop.write_config(CONFIG + SEGMENT)
    first = shop.run(as_of=AS_OF)
    kept = _scores(shop, first.run_id)
    shop.append("events.jsonl", _later_events(days=3))
    later = shop.run(as_of=AS_OF + timedelta(days=7))
    assert _scores(shop, first.run_id) == kept  # the first run's snapshot is untouched
    changed = {k for (k, s), (_, t) in zip(kept, _scores(shop, later.run_id)) if s != t}
    assert {f"p{i}@example.com" for i in range(0, 300, 2)} & changed
    assert shop.query("SELECT run_id, model, computed FROM score_runs ORDER BY 1") == [
        (first.run_id, "churn_risk", True), (later.run_id, "churn_risk", True)]
    # What a reader (the HTML report, a rule at an earlier as_of) sees per instant.
    assert sorted(shop.query(scores_sql("churn_risk", AS_OF))) == kept
    assert sorted(shop.query(scores_sql("churn_risk"))) == _scores(shop, later.run_id)
    # The snapshot of memberships agrees with the scores of its run.
    assert shop.query("SELECT count(*) FROM segment_snapshots WHERE run_id = ?", [later.run_id]) == [
        (sum(1 for _, s in _scores(shop, later.run_id) if s > 0.5),)]


"""The predictive functions in rules, through real sync runs: what they select, what a run
stores, and the errors a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from segsync.testing import Project

from .conftest import AS_OF, CONFIG, event

SEGMENTS = """
    [[segments]]
    name = "at_risk_buyers"
    rule = "churn_risk() > 0.7 and orders(365d) >= 1"

    [[segments]]
    name = "likely_buyers"
    rule = "purchase_propensity(30d) >= 0.5"

    [[segments]]
    name = "evening_openers"
    rule = "best_send_hour() >= 18"
"""


def test_predictive_functions_select_by_the_scores_the_run_stored(shop) -> None:
    shop.write_config(CONFIG + SEGMENTS)
    summary = shop.run(as_of=AS_OF)
    assert (summary.status, summary.segment_errors) == ("succeeded", {})
    runs = shop.query("SELECT model, computed, as_of FROM score_runs WHERE run_id = ? ORDER BY model",
                      [summary.run_id])
    # Only the models the rules read (purchase_90d is not).
    assert runs == [("best_send_hour", True, AS_OF), ("churn_risk", True, AS_OF),
                    ("purchase_30d", True, AS_OF)]
    # Every contact gets a probability; best_send_hour only those with an open in the year.
    counts = dict(shop.query("SELECT model, count(*) FROM contact_scores WHERE run_id = ? GROUP BY model",
                             [summary.run_id]))
    openers = shop.query("SELECT count(DISTINCT contact_key) FROM events WHERE type = 'email.opened' "
                         "AND occurred_at > ? AND occurred_at <= ?", [AS_OF - timedelta(days=365), AS_OF])[0][0]
    assert counts == {"churn_risk": 300, "purchase_30d": 300, "best_send_hour": openers}
    assert shop.query("SELECT min(score) >= 0, max(score) <= 1 FROM contact_scores "
                      "WHERE model IN ('churn_risk', 'purchase_30d')") == [(True, True)]

    # The segments are exactly what the stored scores say.
    def members(segment: str) -> list[str]:
        return [r[0] for r in shop.query(
            "SELECT contact_key FROM segment_snapshots WHERE run_id = ? AND segment = ? ORDER BY 1",
            [summary.run_id, segment])]

    def scored(model: str, condition: str) -> list[str]:
        return [r[0] for r in shop.query(
            f"SELECT contact_key FROM contact_scores WHERE run_id = ? AND model = ? AND {condition} "
            "ORDER BY 1", [summary.run_id, model])]

    buyers_365d = {r[0] for r in shop.query(
        "SELECT DISTINCT contact_key FROM events WHERE type = 'order.completed' AND occurred_at > ?",
        [AS_OF - timedelta(days=365)])}
    at_risk = [k for k in scored("churn_risk", "score > 0.7") if k in buyers_365d]
    assert members("at_risk_buyers") == at_risk and len(at_risk) > 0
    assert members("likely_buyers") == scored("purchase_30d", "score >= 0.5") != []
    assert members("evening_openers") == scored("best_send_hour", "score >= 18") != []
    assert summary.segments == {"at_risk_buyers": len(at_risk),
                                "likely_buyers": len(members("likely_buyers")),
                                "evening_openers": len(members("evening_openers"))}


def test_best_send_hour_is_the_hour_with_most_opens_ties_to_the_earliest(tmp_path) -> None:
    project = Project(tmp_path)
    project.write_config(CONFIG + """
        [[segments]]
        name = "nine"
        rule = "best_send_hour() == 9"
    """)
    project.write("contacts.csv", "email\nann@example.com\nbo@example.com\ncy@example.com\n")
    project.write("consent.csv", "email,status,timestamp,method\n")
    day = AS_OF - timedelta(days=10)
    lines = [
        # Ann: three opens at 09:xx, two at 17:xx → 9.
        *(event("ann@example.com", "email.opened", day + timedelta(days=d, hours=9, minutes=d), f"a{d}")
          for d in range(3)),
        *(event("ann@example.com", "email.opened", day + timedelta(days=d, hours=17), f"a1{d}")
          for d in range(2)),
        # Bo: two at 10:00 and two at 08:00 → the earlier, 8; older opens do not count.
        *(event("bo@example.com", "email.opened", day + timedelta(days=d, hours=h), f"b{h}{d}")
          for d in range(2) for h in (10, 8)),
        *(event("bo@example.com", "email.opened", AS_OF - timedelta(days=400 + d, hours=15), f"bo{d}")
          for d in range(5)),
        # Cy: clicks but no opens → no best hour, and opens after as_of are not read.
        event("cy@example.com", "email.clicked", day, "c1"),
        event("cy@example.com", "email.opened", AS_OF + timedelta(hours=9), "c2"),
    ]
    project.write("events.jsonl", "".join(lines))
    summary = project.run(as_of=AS_OF)
    assert summary.segment_errors == {}
    assert project.query("SELECT contact_key, score FROM contact_scores ORDER BY 1") == [
        ("ann@example.com", 9.0), ("bo@example.com", 8.0)]
    assert summary.segments == {"nine": 1}


def test_a_store_too_young_to_train_holds_the_rules_that_need_a_model(tmp_path) -> None:
    project = Project.sample(tmp_path)
    project.write_config(CONFIG + SEGMENTS)
    summary = project.run(as_of=AS_OF)
    assert summary.status == "partial"
    reason = ("too little history to train churn_risk: only 1 contact existed on 2025-03-03 (needs "
              "200 whose outcome is known until 2025-06-01); the store's events up to then span "
              "2024-02-01 to 2024-02-01")
    assert summary.segment_errors["at_risk_buyers"] == (
        f"segment 'at_risk_buyers': model 'churn_risk' could not be computed in run {summary.run_id}: {reason}")
    assert summary.segment_errors["likely_buyers"].startswith(
        f"segment 'likely_buyers': model 'purchase_30d' could not be computed in run {summary.run_id}: "
        "too little history to train purchase_30d: only 1 contact existed on 2025-05-02")
    # best_send_hour needs no training: that segment is evaluated (nobody opened at 18:00 or later).
    assert summary.segments == {"evening_openers": 0}
    assert project.query("SELECT model, computed, detail FROM score_runs WHERE model = 'churn_risk'") == [
        ("churn_risk", False, reason)]
    assert project.query("SELECT count(*) FROM contact_scores WHERE model <> 'best_send_hour'") == [(0,)]


def test_bad_arguments_are_rule_errors_naming_the_segment(tmp_path) -> None:
    project = Project.sample(tmp_path)
    project.write_config(CONFIG + """
        [[segments]]
        name = "a"
        rule = "purchase_propensity(45d) > 0.5"
        [[segments]]
        name = "b"
        rule = "purchase_propensity(36h) > 0.5"
        [[segments]]
        name = "c"
        rule = "purchase_propensity() > 0.5"
        [[segments]]
        name = "d"
        rule = "churn_risk(30d) > 0.5"
        [[segments]]
        name = "e"
        rule = 'purchase_propensity("soon") > 0.5'
        [[segments]]
        name = "f"
        rule = "churn_risk() > 0.5 or churn_risk() == 1 and best_send_hour() > 3"
    """)
    summary = project.run(as_of=AS_OF)
    errors = {name: text.splitlines()[0] for name, text in summary.segment_errors.items()}
    assert errors == {
        "a": "segment 'a': line 1, column 1: purchase_propensity(): days must be one of 30d, 90d "
             "(the horizons a model is trained for), not 45d",
        "b": "segment 'b': line 1, column 1: purchase_propensity(): days must be one of 30d, 90d "
             "(the horizons a model is trained for), not 36h",
        "c": "segment 'c': line 1, column 1: purchase_propensity() takes 1 argument: "
             "purchase_propensity(days); got 0",
        "d": "segment 'd': line 1, column 1: churn_risk() takes 0 arguments: churn_risk(); got 1",
        "e": "segment 'e': line 1, column 21: argument 'days' of purchase_propensity() must be a "
             "duration such as 24h, 30d or 2w",
        "f": f"segment 'f': model 'churn_risk' could not be computed in run {summary.run_id}: too "
             "little history to train churn_risk: only 1 contact existed on 2025-03-03 (needs 200 "
             "whose outcome is known until 2025-06-01); the store's events up to then span "
             "2024-02-01 to 2024-02-01",
    }
    # Rules that do not compile ask for no model: only f's are computed (and fail).
    assert project.query("SELECT model FROM score_runs ORDER BY 1") == [("best_send_hour",), ("churn_risk",)]


def test_registering_the_functions_and_commands_imports_no_scikit_learn() -> None:
    """Every rule compilation and every command registers them: only a run that reads a model
    (or the report) pays for scikit-learn."""
    program = ("import json, sys, segsync_predict.functions, segsync_predict.command; "
               "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'numpy', 'scipy'})))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []

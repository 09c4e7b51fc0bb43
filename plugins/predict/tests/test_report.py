"""`segsync predict report`: the backtest figures, through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import duckdb
import pytest

from segsync.testing import Project
from segsync_predict.backtest import backtest
from segsync_predict.models import MODELS

from .conftest import AS_OF, make_project


def segsync(project: Project, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segsync", "--config", str(project.root / "segsync.toml"),
                           "predict", "report", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Project:
    project = make_project(tmp_path_factory.mktemp("report") / "shop")
    project.run(as_of=AS_OF)  # the store: ingested, no model trained (no rule reads one)
    return project


def test_the_report_is_the_backtest_of_each_model_on_the_store(shop) -> None:
    done = segsync(shop, "--json", "--as-of", AS_OF.isoformat())
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["as_of"] == AS_OF.isoformat() and report["not_backtested"] == {}
    assert [m["model"] for m in report["models"]] == ["churn_risk", "purchase_30d", "purchase_90d"]
    with duckdb.connect(str(shop.root / "store.duckdb"), read_only=True) as con:
        direct = {name: backtest(con, MODELS[name], AS_OF) for name in MODELS}
    for figures in report["models"]:
        expected = direct[figures["model"]]
        spec = MODELS[figures["model"]]
        # Trained one horizon before the test period; tested on it up to as_of.
        assert datetime.fromisoformat(figures["train_cutoff"]) == AS_OF - 2 * spec.horizon
        assert datetime.fromisoformat(figures["test_cutoff"]) == AS_OF - spec.horizon
        assert (figures["auc"], figures["lift_top_decile"], figures["base_rate"]) == (
            expected.auc, expected.lift_top_decile, expected.base_rate)
        calibration = figures["calibration"]
        assert [row["decile"] for row in calibration] == list(range(1, 11))
        assert sum(row["contacts"] for row in calibration) == figures["test_contacts"] == 300
        # The deciles' observed rates add up to the base rate; the top decile is the lift's.
        observed = sum(row["observed"] * row["contacts"] for row in calibration) / 300
        assert observed == pytest.approx(figures["base_rate"], abs=1e-12)
        assert calibration[0]["observed"] == figures["top_decile_rate"]
        assert figures["lift_top_decile"] == pytest.approx(figures["top_decile_rate"] / figures["base_rate"])
        # Highest predictions first, and the planted signal is found.
        predicted = [row["predicted"] for row in calibration]
        assert predicted == sorted(predicted, reverse=True)
        assert figures["auc"] > 0.75 and figures["lift_top_decile"] > 1.5


def test_the_text_report_and_one_model(shop) -> None:
    done = segsync(shop, "--model", "purchase_30d", "--as-of", "2025-06-01")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "purchase_30d: probability of an order in the next 30 days"
    assert lines[1].startswith("  trained on features at 2025-04-02 00:00, outcomes until 2025-05-02 00:00: ")
    assert lines[2].startswith("  tested on features at 2025-05-02 00:00, outcomes until 2025-06-01 00:00: "
                               "300 contacts, base rate ")
    assert lines[3].startswith("  AUC 0.") and "lift in the top decile" in lines[3]
    assert lines[5] == "    decile  contacts  predicted  observed"
    assert len(lines) == 6 + 10 + 1  # ten deciles, then a blank line


def test_bad_input_and_too_little_history(shop) -> None:
    bad = segsync(shop, "--as-of", "yesterday")
    assert bad.returncode == 2
    assert "Invalid value for --as-of: 'yesterday' is not an ISO date or time" in bad.stderr
    threads = segsync(shop, "--model", "purchase_30d", "--as-of", "2025-06-01", SEGSYNC_PREDICT_THREADS="two")
    assert (threads.returncode, threads.stdout) == (1, "")
    assert threads.stderr == ("Error: SEGSYNC_PREDICT_THREADS='two': expected a whole number of "
                              "threads, 1 or more\n")
    # Before the data starts: nothing to train on, said per model (stderr), exit code 1.
    early = segsync(shop, "--model", "churn_risk", "--as-of", "2024-05-01")
    assert (early.returncode, early.stdout) == (1, "")
    assert early.stderr == (
        "churn_risk: too little history to train churn_risk: only 0 contacts existed on 2023-11-03 "
        "(needs 200 whose outcome is known until 2024-02-01); the store has no events up to then\n")

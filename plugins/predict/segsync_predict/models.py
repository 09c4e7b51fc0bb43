"""The models: what each predicts, how it is trained on the store's history, how it scores.

Estimator: scikit-learn's ``HistGradientBoostingClassifier``. The features are recencies and
counts whose effect is far from linear (a last open 3 days ago and 30 days ago differ more than
300 and 330), "never" is a real value (NaN, which the estimator routes on its own, where a
logistic regression needs imputation and bins), it trains on a million rows in seconds on two
cores (features are binned once into 255 buckets), and its log-loss objective gives
probabilities that the backtest's calibration table checks. Early stopping is off (it draws a
random validation split) and no subsampling is asked for, so with ``random_state`` fixed the
same rows give the same model; the rows are taken in ``contact_id`` order and, above
:data:`MAX_TRAIN_ROWS`, sampled with a seeded generator.

Time split: a model for an outcome over ``H`` days scored at ``as_of`` is trained on features at
``as_of - H`` and outcomes in ``(as_of - H, as_of]`` (:mod:`.features`): its labels end at the
run's ``as_of``, and nothing after it is read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from .features import FEATURES, Frame, frame
from .specs import CHURN, MODELS, PURCHASE_HORIZONS, ModelSpec

__all__ = ["CHURN", "MODELS", "PURCHASE_HORIZONS", "ModelSpec", "NotEnoughHistory", "SettingError", "Trained",
           "estimator", "predict", "score", "threads", "train"]

SEED = 0
# Training rows above this are sampled (seeded): the model gains little beyond, the time does.
MAX_TRAIN_ROWS = 300_000
# Below these a model is not trained: the run says so and the rules reading it are held.
MIN_CONTACTS = 200
MIN_EACH_OUTCOME = 20
# OpenMP threads for training and scoring. One by default: on a shared or busy machine the
# estimator's threads wait on each other (bench/RESULTS-predict.md: 2 threads took 23x longer
# than 1 under a load of 20 on 2 cores); raise it on a machine of your own.
THREADS_VARIABLE = "SEGSYNC_PREDICT_THREADS"


class SettingError(ValueError):
    """A setting of the plugin (an environment variable) is not usable; the message names it."""


@contextmanager
def threads() -> Iterator[int]:
    text = os.environ.get(THREADS_VARIABLE, "1")
    try:
        n = int(text)
        if n < 1:
            raise ValueError
    except ValueError:
        raise SettingError(f"{THREADS_VARIABLE}={text!r}: expected a whole number of threads, "
                           "1 or more") from None
    with threadpool_limits(limits=n):
        yield n


class NotEnoughHistory(Exception):
    """The store's history cannot train the model; the message says what is missing."""


@dataclass
class Trained:
    spec: ModelSpec
    estimator: HistGradientBoostingClassifier
    cutoff: datetime
    rows: int
    positives: int
    seconds: float  # in all: the features' SQL, then the fit
    features_seconds: float
    # The features it was trained on: those with a value for someone (a column with none, e.g.
    # page views in a store without any, carries nothing and the estimator cannot bin it).
    columns: np.ndarray = field(default_factory=lambda: np.arange(len(FEATURES)))


def estimator() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=100,
        l2_regularization=1.0, early_stopping=False, random_state=SEED,
    )


def _check(con: duckdb.DuckDBPyConnection, spec: ModelSpec, data: Frame) -> None:
    assert data.y is not None
    n, positives = len(data.y), int(data.y.sum())
    what = "churned" if spec.outcome == "churn" else "ordered"
    if n < MIN_CONTACTS:
        problem = (f"only {n} contact{'' if n == 1 else 's'} existed on {data.cutoff:%Y-%m-%d} (needs {MIN_CONTACTS} "
                   f"whose outcome is known until {data.until:%Y-%m-%d})")
    elif min(positives, n - positives) < MIN_EACH_OUTCOME:
        problem = (f"of the {n} contacts on {data.cutoff:%Y-%m-%d}, {positives} {what} by "
                   f"{data.until:%Y-%m-%d} and {n - positives} did not (needs {MIN_EACH_OUTCOME} "
                   "of each)")
    else:
        return
    first, last = con.execute(
        "SELECT min(occurred_at), max(occurred_at) FROM events WHERE occurred_at <= $until",
        {"until": data.until}).fetchall()[0]
    span = (f"the store's events up to then span {first:%Y-%m-%d} to {last:%Y-%m-%d}" if first
            else "the store has no events up to then")
    raise NotEnoughHistory(f"too little history to train {spec.name}: {problem}; {span}")


def train(con: duckdb.DuckDBPyConnection, spec: ModelSpec, labels_until: datetime) -> Trained:
    """Train ``spec`` on outcomes that end at ``labels_until`` (features at
    ``labels_until - horizon``). Raises :class:`NotEnoughHistory`."""
    started = time.perf_counter()
    data = frame(con, labels_until - spec.horizon, spec.outcome, spec.horizon)
    features_seconds = time.perf_counter() - started
    _check(con, spec, data)
    x, y = data.x, data.y
    assert y is not None
    if len(y) > MAX_TRAIN_ROWS:
        rows = np.sort(np.random.default_rng(SEED).choice(len(y), MAX_TRAIN_ROWS, replace=False))
        x, y = x[rows], y[rows]
    columns = np.flatnonzero(~np.isnan(x).all(axis=0))
    with threads():
        model = estimator().fit(x[:, columns], y)
    return Trained(spec, model, data.cutoff, len(y), int(y.sum()),
                   time.perf_counter() - started, features_seconds, columns)


def predict(trained: Trained, data: Frame) -> np.ndarray:
    """Probability of the outcome for each row of ``data``."""
    if not len(data.keys):
        return np.empty(0)
    with threads():
        return trained.estimator.predict_proba(data.x[:, trained.columns])[:, 1]


def score(con: duckdb.DuckDBPyConnection, trained: Trained, as_of: datetime) -> tuple[Frame, np.ndarray]:
    """Every contact that exists at ``as_of`` and its probability."""
    data = frame(con, as_of)
    return data, predict(trained, data)

"""Backtests: how well each model, trained as a run trains it, predicted a period it never saw.

For a model over ``H`` days at ``as_of``: train on features at ``as_of - 2H`` with outcomes until
``as_of - H`` (exactly as a run at ``as_of - H`` trains), score everyone at ``as_of - H``, and
compare with what happened in ``(as_of - H, as_of]``. Figures:

* AUC: the chance a contact with the outcome is ranked above one without (0.5: no skill);
* calibration: the contacts in ten equal groups by predicted probability, each group's mean
  prediction beside the share that had the outcome;
* lift in the top decile: the outcome's rate among the 10% with the highest predictions over the
  overall rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score

from .features import frame
from .models import ModelSpec, NotEnoughHistory, predict, train

DECILES = 10


@dataclass(frozen=True)
class CalibrationRow:
    decile: int  # 1: the highest predictions
    contacts: int
    predicted: float  # mean predicted probability
    observed: float  # share with the outcome


@dataclass(frozen=True)
class Backtest:
    model: str
    meaning: str
    train_cutoff: datetime
    test_cutoff: datetime
    test_until: datetime
    train_contacts: int
    train_positives: int
    test_contacts: int
    base_rate: float
    auc: float
    top_decile_rate: float
    lift_top_decile: float
    calibration: tuple[CalibrationRow, ...]
    train_seconds: float
    score_seconds: float

    def as_json(self) -> dict:
        out = asdict(self)
        for key in ("train_cutoff", "test_cutoff", "test_until"):
            out[key] = out[key].isoformat()
        return out


def ranked(probabilities: np.ndarray) -> np.ndarray:
    """Row indices from the highest prediction down; ties in row (contact_id) order."""
    return np.lexsort((np.arange(len(probabilities)), -probabilities))


def calibration(y: np.ndarray, p: np.ndarray) -> tuple[CalibrationRow, ...]:
    rows = []
    for k, part in enumerate(np.array_split(ranked(p), DECILES), start=1):
        if len(part):
            rows.append(CalibrationRow(k, len(part), float(p[part].mean()), float(y[part].mean())))
    return tuple(rows)


def backtest(con: duckdb.DuckDBPyConnection, spec: ModelSpec, as_of: datetime) -> Backtest:
    """Raises :class:`NotEnoughHistory` when the history before ``as_of - H`` cannot train the
    model or the tested period has only one outcome."""
    test_cutoff = as_of - spec.horizon
    trained = train(con, spec, test_cutoff)
    started = time.perf_counter()
    test = frame(con, test_cutoff, spec.outcome, spec.horizon)
    p = predict(trained, test)
    seconds = time.perf_counter() - started
    y = test.y
    assert y is not None
    positives = int(y.sum())
    if positives in (0, len(y)):
        raise NotEnoughHistory(
            f"cannot backtest {spec.name}: all {len(y)} contacts of {test_cutoff:%Y-%m-%d} had the "
            f"same outcome by {as_of:%Y-%m-%d}")
    top = ranked(p)[: math.ceil(len(y) / DECILES)]
    base = positives / len(y)
    top_rate = float(y[top].mean())
    return Backtest(
        spec.name, spec.meaning, trained.cutoff, test_cutoff, as_of, trained.rows,
        trained.positives, len(y), base, float(roc_auc_score(y, p)), top_rate, top_rate / base,
        calibration(y, p), trained.seconds, seconds,
    )

"""What each model predicts and over which horizon (no scikit-learn here: the segment
functions, which every rule compilation loads, read this module only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

PURCHASE_HORIZONS = (30, 90)
BEST_SEND_HOUR = "best_send_hour"


@dataclass(frozen=True)
class ModelSpec:
    """A trained model: its name (the model name in ``score_runs``), outcome and horizon."""

    name: str
    outcome: str  # "churn" or "purchase"
    horizon: timedelta
    meaning: str


CHURN = ModelSpec("churn_risk", "churn", timedelta(days=90),
                  "probability that the person neither opens, clicks, views a page, adds to a "
                  "cart nor orders in the next 90 days")
MODELS: dict[str, ModelSpec] = {CHURN.name: CHURN} | {
    f"purchase_{days}d": ModelSpec(f"purchase_{days}d", "purchase", timedelta(days=days),
                                   f"probability of an order in the next {days} days")
    for days in PURCHASE_HORIZONS
}

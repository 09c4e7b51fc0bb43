"""The segment functions: each reads one model's scores of the run (segsync.scores)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from segsync.scores import score_feature
from segsync.segments.functions import BuildContext, Built, Param, SegmentFunction

from .specs import BEST_SEND_HOUR, CHURN, PURCHASE_HORIZONS

ORIGIN = "segsync-predict"


def _read(model: str) -> Any:
    def build(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
        feature = score_feature(ctx, model)
        return Built(feature.ref(), (feature,))
    return build


def purchase_model(days: timedelta) -> str:
    """The model name for ``purchase_propensity(days)``; ValueError naming the horizons."""
    choices = ", ".join(f"{d}d" for d in PURCHASE_HORIZONS)
    whole = days.days if days == timedelta(days=days.days) else None
    if whole not in PURCHASE_HORIZONS:
        seconds = days.total_seconds()
        shown = (f"{whole}d" if whole is not None else f"{seconds / 3600:g}h" if seconds % 3600 == 0
                 else f"{seconds:g} seconds")
        raise ValueError(f"days must be one of {choices} (the horizons a model is trained for), "
                         f"not {shown}")
    return f"purchase_{whole}d"


def _purchase(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    return _read(purchase_model(args["days"]))(ctx, args)


def predictive_functions() -> list[SegmentFunction]:
    return [
        SegmentFunction(
            "churn_risk", (), "number",
            f"Predicted churn risk, 0–1: the {CHURN.meaning} (model retrained each run on the "
            "store's history).",
            _read(CHURN.name), example="churn_risk() > 0.7 and orders(365d) >= 1", origin=ORIGIN,
        ),
        SegmentFunction(
            "purchase_propensity", (Param("days", "duration"),), "number",
            "Predicted probability, 0–1, of an order within `days` (30d or 90d).",
            _purchase, example="purchase_propensity(30d) >= 0.5", origin=ORIGIN,
        ),
        SegmentFunction(
            BEST_SEND_HOUR, (), "number",
            "The hour of the day (0–23, UTC) at which the person opened most emails in the last "
            "365 days (ties: the earliest); no value without an open.",
            _read(BEST_SEND_HOUR), example="best_send_hour() >= 17", origin=ORIGIN,
        ),
    ]

"""Per-contact features and outcomes, computed in SQL by the store's engine (DuckDB).

One query per (cut-off, outcome window): every feature reads only events at or before the
cut-off, the outcome only events in ``(cut-off, outcome end]``, and nothing reads past the
outcome end, so a model trained with ``outcome end <= as_of`` never sees the future of
``as_of`` and one trained for a backtest never sees the period it is tested on. The rows are the
contacts that existed at the cut-off (created then, or with an event by then), ordered by their
``contact_id`` so that the same store gives the same matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np

# The event types the features read, bound as parameters of the query ($opened, …).
TYPES = {"opened": "email.opened", "clicked": "email.clicked", "viewed": "page.viewed",
         "carted": "cart.added", "ordered": "order.completed", "sent": "email.sent"}
# What counts as the person still being there (the churn outcome is "none of these").
ENGAGEMENT = "type IN ($opened, $clicked, $viewed, $carted, $ordered)"

# name → SQL over the aggregates below (NULL becomes NaN: "never", which the estimator handles).
_DAYS = "(epoch($cutoff) - epoch({col})) / 86400.0"
FEATURES: dict[str, str] = {
    "days_since_open": _DAYS.format(col="last_open"),
    "days_since_click": _DAYS.format(col="last_click"),
    "days_since_order": _DAYS.format(col="last_order"),
    "days_since_view": _DAYS.format(col="last_view"),
    "days_since_engaged": _DAYS.format(col="last_engaged"),
    "tenure_days": _DAYS.format(col="least(c.created_at, first_event)"),
    "opens_30d": "opens_30d", "opens_90d": "opens_90d", "opens_365d": "opens_365d",
    "clicks_90d": "clicks_90d", "clicks_365d": "clicks_365d",
    "sends_90d": "sends_90d",
    "open_rate_90d": "opens_90d / nullif(sends_90d, 0)",
    "views_90d": "views_90d", "carts_90d": "carts_90d",
    "orders_90d": "orders_90d", "orders_365d": "orders_365d", "orders_all": "orders_all",
    "revenue_365d": "revenue_365d",
}


def _within(days: int, type_: str) -> str:
    """Events of the type bound as ``$type_`` in the ``days`` before the cut-off."""
    return (f"type = ${type_} AND occurred_at > $cutoff - INTERVAL {days:d} DAY "
            "AND occurred_at <= $cutoff")


_AGGREGATES = f"""
    min(occurred_at) FILTER (WHERE occurred_at <= $cutoff) AS first_event,
    max(occurred_at) FILTER (WHERE type = $opened AND occurred_at <= $cutoff) AS last_open,
    max(occurred_at) FILTER (WHERE type = $clicked AND occurred_at <= $cutoff) AS last_click,
    max(occurred_at) FILTER (WHERE type = $ordered AND occurred_at <= $cutoff) AS last_order,
    max(occurred_at) FILTER (WHERE type = $viewed AND occurred_at <= $cutoff) AS last_view,
    max(occurred_at) FILTER (WHERE {ENGAGEMENT} AND occurred_at <= $cutoff) AS last_engaged,
    count(*) FILTER (WHERE {_within(30, 'opened')}) AS opens_30d,
    count(*) FILTER (WHERE {_within(90, 'opened')}) AS opens_90d,
    count(*) FILTER (WHERE {_within(365, 'opened')}) AS opens_365d,
    count(*) FILTER (WHERE {_within(90, 'clicked')}) AS clicks_90d,
    count(*) FILTER (WHERE {_within(365, 'clicked')}) AS clicks_365d,
    count(*) FILTER (WHERE {_within(90, 'sent')}) AS sends_90d,
    count(*) FILTER (WHERE {_within(90, 'viewed')}) AS views_90d,
    count(*) FILTER (WHERE {_within(90, 'carted')}) AS carts_90d,
    count(*) FILTER (WHERE {_within(90, 'ordered')}) AS orders_90d,
    count(*) FILTER (WHERE {_within(365, 'ordered')}) AS orders_365d,
    count(*) FILTER (WHERE type = $ordered AND occurred_at <= $cutoff) AS orders_all,
    coalesce(sum(value) FILTER (WHERE {_within(365, 'ordered')}), 0) AS revenue_365d
"""

# The outcome in (cut-off, outcome end] (1 when it happened), and what it is for a contact
# without any event by the outcome's end: churned, bought nothing.
OUTCOMES = {
    "churn": (f"count(*) FILTER (WHERE {ENGAGEMENT} AND occurred_at > $cutoff) = 0", "true"),
    "purchase": ("count(*) FILTER (WHERE type = $ordered AND occurred_at > $cutoff) > 0", "false"),
}


def frame_sql(outcome: str | None) -> str:
    """The query of :func:`frame` (parameters ``$cutoff``, ``$until`` and :data:`TYPES`)."""
    columns = ",\n        ".join(f"coalesce(({sql})::DOUBLE, 'NaN'::DOUBLE) AS {name}"
                                 for name, sql in FEATURES.items())
    outcome_agg = outcome_col = ""
    if outcome:
        happened, default = OUTCOMES[outcome]
        outcome_agg = f",\n        {happened} AS outcome"
        outcome_col = f",\n        coalesce(agg.outcome, {default}) AS outcome"
    return f"""
    WITH agg AS (
        SELECT contact_id, {_AGGREGATES}{outcome_agg}
        FROM events
        WHERE occurred_at <= $until AND type IN ($opened, $clicked, $viewed, $carted, $ordered, $sent)
        GROUP BY contact_id
    )
    SELECT c.contact_key,
        {columns}{outcome_col}
    FROM contacts c LEFT JOIN agg USING (contact_id)
    WHERE c.created_at <= $cutoff OR agg.first_event IS NOT NULL
    ORDER BY c.contact_id
    """


@dataclass(frozen=True)
class Frame:
    """Contacts (``keys``), their features (``x``, one column per :data:`FEATURES` name) and,
    for training and backtests, their outcome (``y``: 1 when it happened)."""

    keys: list[str]
    x: np.ndarray
    y: np.ndarray | None
    cutoff: datetime
    until: datetime


def frame(con: duckdb.DuckDBPyConnection, cutoff: datetime, outcome: str | None = None,
          window: timedelta | None = None) -> Frame:
    """Features at ``cutoff`` and, with ``outcome`` (``churn`` or ``purchase``), whether it
    happened in ``(cutoff, cutoff + window]``."""
    until = cutoff + window if outcome and window else cutoff
    result = con.execute(frame_sql(outcome), {"cutoff": cutoff, "until": until, **TYPES}).fetchnumpy()
    x = np.column_stack([np.asarray(result[name], dtype=np.float64) for name in FEATURES]) \
        if len(result["contact_key"]) else np.empty((0, len(FEATURES)))
    y = np.asarray(result["outcome"], dtype=np.int8) if outcome else None
    return Frame([str(k) for k in result["contact_key"]], x, y, cutoff, until)

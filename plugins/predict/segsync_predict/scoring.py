"""What a sync run asks of the plugin: train and score the wanted models, before evaluation."""

from __future__ import annotations

import logging
import time

from segsync.scores import ScoreRun

from .models import MODELS, NotEnoughHistory, score, train
from .specs import BEST_SEND_HOUR

log = logging.getLogger(__name__)

# The UTC hour with the most opens in the year before as_of (ties: the earliest hour):
# maximising count*24 - hour picks the largest count, then the smallest hour.
BEST_SEND_HOUR_SQL = """
    SELECT contact_key, arg_max(hour, opens * 24 - hour) AS score
    FROM (
        SELECT contact_key, extract(hour FROM occurred_at AT TIME ZONE 'UTC') AS hour,
               count(*) AS opens
        FROM events
        WHERE type = 'email.opened' AND occurred_at <= $as_of
          AND occurred_at > $as_of - INTERVAL 365 DAY
        GROUP BY ALL
    )
    GROUP BY contact_key
"""


def score_run(scores: ScoreRun) -> None:
    """Compute each wanted model this plugin provides; record why one cannot be."""
    for model in sorted(scores.wanted):
        if model == BEST_SEND_HOUR:
            n = scores.write_sql(model, BEST_SEND_HOUR_SQL, {"as_of": scores.as_of},
                                 detail="the UTC hour with most opens in the last 365 days")
            log.info("best_send_hour: %d contacts", n)
        elif model in MODELS:
            _train_and_score(scores, model)


def _train_and_score(scores: ScoreRun, model: str) -> None:
    spec = MODELS[model]
    try:
        trained = train(scores.con, spec, scores.as_of)
    except NotEnoughHistory as e:
        scores.unavailable(model, str(e))
        return
    started = time.perf_counter()
    data, probabilities = score(scores.con, trained, scores.as_of)
    metrics = {
        "estimator": "HistGradientBoostingClassifier",
        "trained_on": f"features at {trained.cutoff.isoformat()}, outcomes until {scores.as_of.isoformat()}",
        "train_rows": trained.rows, "train_positives": trained.positives,
        "train_seconds": round(trained.seconds, 3),
        "score_seconds": round(time.perf_counter() - started, 3),
    }
    n = scores.write(model, data.keys, probabilities.tolist(), metrics=metrics,
                     detail=f"{spec.meaning}; trained on {trained.rows} contacts")
    log.info("%s: trained on %d contacts, %d scored", model, trained.rows, n)

"""Per-contact scores (:mod:`segsync.scores`) on an external engine.

Scoring plugins compute scores in the embedded store, from the contacts and events connectors
brought (``segsync_score_contacts`` hands them the store's connection). On an external engine
the rows of every scoring run the engine lacks are then appended there in bulk (``score_runs``
and ``contact_scores``, the two tables rules read), so a rule such as ``churn_risk() > 0.7`` is
evaluated in the engine like any other.

When ``contacts`` or ``events`` is mapped onto the user's own table, the store never sees those
rows and any score computed from it would describe other data: rules reading scores are then
held with that reason, and ``segsync check`` names them (:func:`unscorable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import duckdb

from segsync.engines.base import Engine
from segsync.engines.layout import RESULT_TABLES
from segsync.engines.transfer import stream
from segsync.scores import SCORE_RUNS_TABLE, SCORES_TABLE, ScoreRun, unavailable_models
from segsync.store.sql import identifier

# What the embedded store's own scoring reads; mapping either elsewhere makes scores meaningless.
SCORED_FROM = ("contacts", "events")


def unscorable(engine_name: str, tables: Iterable[str]) -> str | None:
    """Why rules reading scores cannot be evaluated on this engine (None: they can)."""
    mapped = [t for t in SCORED_FROM if t in set(tables)]
    if not mapped:
        return None
    return (f"scores are computed from the contacts and events segsync ingested, and on the "
            f"{engine_name} engine {' and '.join(mapped)} {'is' if len(mapped) == 1 else 'are'} "
            "mapped onto your own table ([store.tables]), whose rows segsync never sees: "
            "rules reading scores cannot be evaluated there")


def scores_on_engine(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    models: frozenset[str],
    as_of: datetime,
    run_id: int | None,
    score: Callable[[ScoreRun], None] | None,
) -> dict[str, str]:
    """Compute ``models`` in the store (a run only; a dry run reads the latest ones), send the
    engine the score rows it lacks, and return the models rules cannot read at ``as_of`` → why."""
    why = unscorable(engine.name, engine.tables)
    if why is not None:
        return {model: why for model in models}
    if run_id is not None and score is not None:
        score(ScoreRun(con, run_id, as_of, models))
    if run_id is not None:
        send_scores(con, engine)
    return unavailable_models(con, as_of, models)


def send_scores(con: duckdb.DuckDBPyConnection, engine: Engine) -> int:
    """Append to the engine the scoring runs it lacks (those after its latest), both tables in
    bulk; return the score rows sent."""
    rows = engine.rows(f"SELECT max(run_id) FROM {SCORE_RUNS_TABLE}")
    after = -1 if not rows or rows[0][0] is None else int(rows[0][0])
    sent = {}
    for table in (SCORES_TABLE, SCORE_RUNS_TABLE):  # the runs last: a run listed has its scores
        columns = list(RESULT_TABLES[table])
        select = f"SELECT {', '.join(identifier(c) for c in columns)} FROM {table} WHERE run_id > ?"
        sent[table] = engine.append(table, columns, stream(con, select, [after]))
    return sent[SCORES_TABLE]

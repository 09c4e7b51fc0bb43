"""Per-contact scores: numbers a plugin computes before each run's evaluation and rules read.

A scoring plugin (``plugins/predict`` is one) implements the ``segsync_score_contacts(scores)``
hook. In every sync run that is not a dry run, before the segments are evaluated, the hook
receives a :class:`ScoreRun` naming the models the project's rules read (``scores.wanted``);
the plugin computes them on ``scores.con`` (the store's connection, inside the run) and either
writes them (:meth:`ScoreRun.write`, :meth:`ScoreRun.write_sql`) or says why it cannot
(:meth:`ScoreRun.unavailable`). The plugin's segment functions read them through
:func:`score_feature`.

Two tables (store migration 7), kept for every run like ``segment_snapshots``:

* ``score_runs(run_id, model, as_of, computed, detail, metrics)`` — one row per model per run:
  whether it could be computed, why not (``detail``), and the plugin's figures (JSON).
* ``contact_scores(run_id, model, contact_key, score)`` — the scores of that run.

A rule reads the scores of the latest run at or before its ``as_of`` that computed the model
(:func:`scores_sql`, which other readers such as a report use too). A segment whose rule reads a
model that run could not compute, or that no run computed yet, is not evaluated: it is held with
the reason (the run's record errors name it) and keeps its last membership, never a silent 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
from sqlglot import exp

from segsync.segments.functions import BuildContext, Feature

__all__ = [
    "SCORES_TABLE", "SCORE_RUNS_TABLE", "ScoreRun", "ScoreError", "model_of", "score_feature",
    "scores_sql", "unavailable_models",
]

SCORES_TABLE = "contact_scores"
SCORE_RUNS_TABLE = "score_runs"
# A score feature's column name is this prefix and the model's name (a plain identifier).
_FEATURE_PREFIX = "score__"


class ScoreError(ValueError):
    """A plugin handed :class:`ScoreRun` something it cannot store (names the model and field)."""


def _check_model(model: str) -> str:
    if not isinstance(model, str) or not model.isidentifier() or not model.islower():
        raise ScoreError(f"model name {model!r}: use lower-case letters, digits and _ "
                         "(it names a column)")
    return model


@dataclass
class ScoreRun:
    """What ``segsync_score_contacts`` receives: the run, its store connection, what is wanted.

    ``con`` is the store's connection inside the run (read ``contacts`` and ``events`` there;
    events after ``as_of`` exist in a store fed ahead of time and must be ignored). ``wanted``:
    the models the project's rules read; compute those (and only those, a sync is not the place
    for the rest). ``written`` and ``failed``: what this run recorded so far, per model.
    """

    con: duckdb.DuckDBPyConnection
    run_id: int
    as_of: datetime
    wanted: frozenset[str] = frozenset()
    written: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def write(self, model: str, contact_keys: Sequence[str], scores: Sequence[float], *,
              detail: str = "", metrics: Mapping[str, Any] | None = None) -> int:
        """Store ``scores[i]`` for ``contact_keys[i]`` as ``model``'s scores of this run (NaN
        and None are not stored: no score); return how many were stored."""
        if len(contact_keys) != len(scores):
            raise ScoreError(f"model {model!r}: {len(contact_keys)} contact keys but "
                             f"{len(scores)} scores")
        # Two lists unnested side by side: one statement, no row-by-row insert.
        select = ("SELECT unnest($keys::VARCHAR[]) AS contact_key, "
                  "unnest($scores::DOUBLE[]) AS score")
        return self._insert(model, select, {"keys": list(contact_keys),
                                            "scores": [None if s is None else float(s) for s in scores]},
                            detail, metrics)

    def write_sql(self, model: str, select_sql: str, params: Mapping[str, Any] | None = None, *,
                  detail: str = "", metrics: Mapping[str, Any] | None = None) -> int:
        """Store the rows of ``select_sql`` (columns ``contact_key``, ``score``) as ``model``'s
        scores of this run; return how many were stored."""
        return self._insert(model, select_sql, dict(params or {}), detail, metrics)

    def unavailable(self, model: str, reason: str, *,
                    metrics: Mapping[str, Any] | None = None) -> None:
        """Record that ``model`` could not be computed this run, and why: the rules reading it
        are held with ``reason``."""
        _check_model(model)
        self._forget(model)
        self._status(model, False, reason, metrics)
        self.failed[model] = reason

    def _insert(self, model: str, select_sql: str, params: dict[str, Any], detail: str,
                metrics: Mapping[str, Any] | None) -> int:
        _check_model(model)
        self._forget(model)
        params = {**params, "_run_id": self.run_id, "_model": model}
        try:
            n = self.con.execute(
                f"INSERT INTO {SCORES_TABLE} (run_id, model, contact_key, score) "
                f"SELECT $_run_id, $_model, contact_key, score FROM ({select_sql}) "
                f"WHERE contact_key IS NOT NULL AND score IS NOT NULL AND NOT isnan(score)",
                params,
            ).fetchall()[0][0]
        except duckdb.Error as e:
            raise ScoreError(f"model {model!r}: the scores cannot be stored: {e}") from None
        self._status(model, True, detail, metrics)
        self.written[model] = n
        self.failed.pop(model, None)
        return n

    def _forget(self, model: str) -> None:
        """A model written twice in one run keeps the second result."""
        for table in (SCORES_TABLE, SCORE_RUNS_TABLE):
            self.con.execute(f"DELETE FROM {table} WHERE run_id = ? AND model = ?",
                             [self.run_id, model])
        self.written.pop(model, None)

    def _status(self, model: str, computed: bool, detail: str,
                metrics: Mapping[str, Any] | None) -> None:
        self.con.execute(
            f"INSERT INTO {SCORE_RUNS_TABLE} (run_id, model, as_of, computed, detail, metrics) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [self.run_id, model, self.as_of, computed, detail or None,
             json.dumps(dict(metrics or {}), sort_keys=True, default=str)],
        )


def model_of(feature_name: str) -> str | None:
    """The model a feature column reads (a :func:`score_feature`), or None for any other."""
    return feature_name[len(_FEATURE_PREFIX):] if feature_name.startswith(_FEATURE_PREFIX) else None


def _run_at(model: str, as_of: exp.Expression) -> exp.Expression:
    """The id of the latest run at or before ``as_of`` that recorded ``model`` (its status)."""
    return exp.select(exp.Max(this=exp.column("run_id"))).from_(SCORE_RUNS_TABLE).where(
        exp.and_(
            exp.EQ(this=exp.column("model"), expression=exp.Literal.string(model)),
            exp.LTE(this=exp.column("as_of"), expression=as_of),
        )
    ).subquery()


def _scores_at(model: str, as_of: exp.Expression) -> exp.Select:
    return exp.select("contact_key", "score").from_(SCORES_TABLE).where(exp.and_(
        exp.EQ(this=exp.column("model"), expression=exp.Literal.string(model)),
        exp.EQ(this=exp.column("run_id"), expression=_run_at(model, as_of)),
    ))


def scores_sql(model: str, as_of: datetime | None = None) -> str:
    """SQL selecting ``contact_key, score`` of ``model`` as rules see them at ``as_of`` (the
    latest run's when None): the documented way to read scores outside a rule (e.g. a report
    of their distribution). No rows when that run could not compute the model."""
    _check_model(model)
    at = (BuildContext.timestamp(as_of) if as_of is not None
          else exp.cast(exp.Literal.string("infinity"), exp.DataType.build("timestamptz")))
    return _scores_at(model, at).sql("duckdb")


def score_feature(ctx: BuildContext, model: str) -> Feature:
    """The per-contact column of ``model``'s scores at ``ctx.as_of`` for a segment function's
    builder: ``Built(score_feature(ctx, "churn").ref(), (score_feature(ctx, "churn"),))``.
    Contacts without a score read NULL (a comparison with it is false). A segment reading a
    model that cannot be read at its ``as_of`` is held with the reason."""
    _check_model(model)
    scores = _scores_at(model, ctx.as_of_literal())
    value = exp.select("contact_key", exp.column("score").as_("value")).from_(
        scores.subquery("scores"))

    def moves(t0: datetime, t1: datetime) -> exp.Select:
        # Whose score differs between the runs in force at t0 and at t1 (new ones included).
        before = _scores_at(model, BuildContext.timestamp(t0)).subquery("before")
        after = _scores_at(model, BuildContext.timestamp(t1)).subquery("after")
        key = exp.Coalesce(this=exp.column("contact_key", "after"),
                           expressions=[exp.column("contact_key", "before")])
        return exp.select(key.as_("contact_key")).from_(after).join(
            before, on=exp.EQ(this=exp.column("contact_key", "after"),
                              expression=exp.column("contact_key", "before")),
            join_type="full",
        ).where(exp.NullSafeNEQ(this=exp.column("score", "after"),
                                expression=exp.column("score", "before")))

    return Feature("joined", value, alias=f"{_FEATURE_PREFIX}{model}", moves=moves)


def unavailable_models(
    con: duckdb.DuckDBPyConnection, as_of: datetime, models: Iterable[str]
) -> dict[str, str]:
    """Of ``models``, those rules cannot read at ``as_of`` → why (the run in force could not
    compute it, or no run did yet)."""
    missing: dict[str, str] = {}
    at = as_of.astimezone(timezone.utc)
    for model in sorted(set(models)):
        row = con.execute(
            f"SELECT computed, detail, run_id FROM {SCORE_RUNS_TABLE} "
            "WHERE model = ? AND as_of <= ? ORDER BY run_id DESC LIMIT 1",
            [model, at],
        ).fetchall()
        if not row:
            missing[model] = (f"no scores for model {model!r} at {at:%Y-%m-%d %H:%M} UTC: a sync "
                              "run computes them (is the plugin that provides it installed?)")
        elif not row[0][0]:
            missing[model] = f"model {model!r} could not be computed in run {row[0][2]}: {row[0][1]}"
    return missing

"""The per-contact event aggregation of an evaluation: event features → SQL over ``events``.

Every event feature is an aggregate, normally with a FILTER naming its types and window
(``builtins.event_feature``). Written naively, all of them go into one GROUP BY over every
event up to ``as_of``; DuckDB then plans each ``COUNT(DISTINCT key) FILTER (…)`` as a GROUP BY
over *all* those rows with the FILTER as a grouping key (57% of an evaluation at 1M contacts /
20M events, bench/RESULTS-segments.md). So the aggregation is split:

* plain aggregates: one GROUP BY contact over the rows some FILTER admits (the FILTERs
  OR-ed into the WHERE, so rows no feature reads are dropped before hashing);
* unique counts, per key expression: one GROUP BY (contact, key) over the rows their
  FILTERs admit, with a flag per feature (did any of the key's rows pass its FILTER), then a
  count of flagged keys per contact. That is ``COUNT(DISTINCT key) FILTER (cond)`` exactly
  (NULL keys excluded as there), computed on the few pre-filtered rows.

Both group by ``contact_id``, the integer the store gives each person (migration 4), not by
the address: hashing an integer is half the cost. Each query yields ``contact_id`` and its
features, one row per contact that has a row to aggregate; contacts without one get NULL
(builders COALESCE, see ``Feature``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlglot import exp

from .functions import EVENTS_TABLE, BuildContext, Feature

CONTACT_ID = "contact_id"


def event_aggregates(
    features: Sequence[Feature], as_of: datetime, within: exp.Expression | None = None
) -> list[exp.Select]:
    """SELECTs of ``contact_id`` plus ``features`` (stage ``event``), one row per contact each.

    ``within``, a condition on ``events`` rows (e.g. ``contact_id IN (…)``), restricts every
    aggregate to the rows it admits.
    """
    plain: list[Feature] = []
    unique: dict[str, list[Feature]] = {}  # key SQL -> unique counts over that key
    for f in features:
        key = _distinct_key(f.expr)
        if key is None:
            plain.append(f)
        else:
            unique.setdefault(key.sql("duckdb"), []).append(f)
    ctx = BuildContext(as_of)
    queries = []
    if plain:
        queries.append(
            exp.select(CONTACT_ID, *[f.expr.copy().as_(f.name) for f in plain])
            .from_(EVENTS_TABLE)
            .where(_admitted(ctx, plain, within))
            .group_by(CONTACT_ID)
        )
    for group in unique.values():
        queries.append(_unique_counts(ctx, group, within))
    return queries


def _split(agg: exp.Expression) -> tuple[exp.Expression, exp.Expression | None]:
    """An aggregate and its FILTER condition (None: every row)."""
    if isinstance(agg, exp.Filter) and isinstance(agg.expression, exp.Where):
        return agg.this, agg.expression.this
    return agg, None


def _distinct_key(agg: exp.Expression) -> exp.Expression | None:
    """The key of ``COUNT(DISTINCT key) [FILTER (…)]``; None for any other aggregate."""
    func, _ = _split(agg)
    if (
        isinstance(func, exp.Count)
        and isinstance(func.this, exp.Distinct)
        and len(func.this.expressions) == 1
    ):
        return func.this.expressions[0]
    return None


def _admitted(
    ctx: BuildContext, features: Sequence[Feature], within: exp.Expression | None
) -> exp.Expression:
    """The rows any of ``features`` reads: up to as_of, and through at least one FILTER."""
    conds: list[exp.Expression] = [
        exp.LTE(this=exp.column("occurred_at"), expression=ctx.as_of_literal())
    ]
    if within is not None:
        conds.append(within.copy())
    # The types and earliest instant as plain predicates too: DuckDB pushes those into the
    # scan (zone maps), which it does not do with the OR below.
    if all(f.event_types is not None for f in features):
        types = sorted(set().union(*(f.event_types for f in features)))  # type: ignore[arg-type]
        conds.append(exp.In(this=exp.column("type"),
                            expressions=[exp.Literal.string(t) for t in types]))
    if all(f.since is not None for f in features):
        since = min(f.since for f in features)  # type: ignore[type-var]
        conds.append(exp.GT(this=exp.column("occurred_at"), expression=ctx.timestamp(since)))
    filters = _unique_sql(_split(f.expr)[1] for f in features)
    if filters is not None:
        conds.append(exp.paren(exp.or_(*filters)) if len(filters) > 1 else filters[0])
    return exp.and_(*conds)


def _unique_sql(conds) -> list[exp.Expression] | None:
    """The distinct conditions, or None when one of them is "every row"."""
    out: dict[str, exp.Expression] = {}
    for c in conds:
        if c is None:
            return None
        out.setdefault(c.sql("duckdb"), c.copy())
    return list(out.values())


def _unique_counts(
    ctx: BuildContext, features: Sequence[Feature], within: exp.Expression | None
) -> exp.Select:
    key = _distinct_key(features[0].expr)
    assert key is not None
    flags: list[exp.Expression] = []
    counts: list[exp.Expression] = []
    for n, f in enumerate(features):
        cond = _split(f.expr)[1]
        flag = f"hit_{n}"
        flags.append(exp.func("BOOL_OR", cond.copy() if cond is not None else exp.true()).as_(flag))
        counts.append(
            exp.Filter(this=exp.Count(this=exp.Star()),
                       expression=exp.Where(this=exp.column(flag))).as_(f.name)
        )
    keys = (
        exp.select(CONTACT_ID, *flags)
        .from_(EVENTS_TABLE)
        .where(exp.and_(_admitted(ctx, features, within),
                        exp.Not(this=exp.Is(this=key.copy(), expression=exp.null()))))
        .group_by(CONTACT_ID, key.copy())
    )
    return exp.select(CONTACT_ID, *counts).from_(keys.subquery("unique_keys", copy=False)).group_by(CONTACT_ID)

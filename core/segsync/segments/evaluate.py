"""Evaluation against a DuckDB store: memberships, snapshots, diffs, SQL display.

Everything is set-based SQL; no contact is ever looked at in Python. Results live in
connection-local temp tables, read within the same connection (a sync run reads memberships
only through the :class:`~segsync.segments.memberships.Memberships` its evaluate stage hands over):

* ``segment_membership(segment VARCHAR, contact_key VARCHAR)`` — written by :func:`evaluate`
* ``segment_diff(segment VARCHAR, contact_key VARCHAR, change VARCHAR)`` — written by
  :func:`diff`; ``change`` is ``enter`` or ``exit``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
from sqlglot import exp

from .builtins import default_registry
from .errors import SegmentConfigError
from .functions import BuildContext, FunctionRegistry
from .definitions import GroupDef, SegmentDef
from .query import SegmentQuery, build_query

MEMBERSHIP_TABLE = "segment_membership"
DIFF_TABLE = "segment_diff"


def _lit(value: str) -> exp.Expression:
    return exp.Literal.string(value)


def evaluate(
    con: duckdb.DuckDBPyConnection,
    segments: Sequence[SegmentDef],
    groups: Mapping[str, GroupDef] | None,
    as_of: datetime,
    registry: FunctionRegistry | None = None,
) -> dict[str, int]:
    """Evaluate all ``segments`` at ``as_of`` in one pass; return {segment: member count}.

    Replaces the temp table ``segment_membership``. Events after ``as_of`` and consent
    recorded after it are ignored, so the same store and ``as_of`` give the same result.
    Raises ``RuleError``/``SegmentConfigError`` before touching any table, also when a rule
    reads per-contact scores (:mod:`segsync.scores`) that cannot be read at ``as_of``.
    """
    segment_query = build_query(segments, groups, as_of, registry or default_registry())
    _check_scores(con, segment_query)
    return fill_memberships(con, segment_query)


def _check_scores(con: duckdb.DuckDBPyConnection, segment_query: SegmentQuery) -> None:
    # Imported here: segsync.scores builds on this package's functions module.
    from segsync.scores import model_of, unavailable_models

    reads = {name: {m for m in map(model_of, c.features) if m is not None}
             for name, c in segment_query.compiled.items()}
    missing = unavailable_models(con, segment_query.as_of, set().union(*reads.values()))
    for name, models in reads.items():
        for model in sorted(models & set(missing)):
            raise SegmentConfigError(f"segment {name!r}: {missing[model]}")


def fill_memberships(
    con: duckdb.DuckDBPyConnection, segment_query: SegmentQuery, features_table: str | None = None
) -> dict[str, int]:
    """Replace ``segment_membership`` with the members of ``segment_query``'s segments; return
    their sizes. ``features_table``: read the event and joined features from there."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {MEMBERSHIP_TABLE} "
                "(segment VARCHAR NOT NULL, contact_key VARCHAR NOT NULL)")
    if not segment_query.segments:
        return {}
    query = membership_select(segment_query, features_table)
    con.execute(f"INSERT INTO {MEMBERSHIP_TABLE} {query.sql('duckdb', copy=False)}")
    sizes = {s.name: 0 for s in segment_query.segments}
    rows = con.execute(
        f"SELECT segment, count(*) FROM {MEMBERSHIP_TABLE} GROUP BY segment"
    ).fetchall()
    sizes.update({name: n for name, n in rows})
    return sizes


def membership_select(segment_query: SegmentQuery, features_table: str | None = None) -> exp.Select:
    """``(segment, contact_key)`` of every member of ``segment_query``'s segments (which must
    not be empty); every engine runs this query (docs/scale.md)."""
    # One pass: each contact row unfolds into the names of the segments it is in. (A flags
    # table scanned once per segment with UNION ALL measured ~2x slower at 1M contacts.)
    names = exp.Array(expressions=[
        exp.Case(ifs=[exp.If(this=exp.column(segment_query.column[s.name]), true=_lit(s.name))])
        for s in segment_query.segments
    ])
    flags = segment_query.select(features_table=features_table)
    unfolded = exp.select(
        "contact_key", exp.Unnest(expressions=[names]).as_("segment")
    ).from_(flags.subquery("flags", copy=False), copy=False)
    return (
        exp.select("segment", "contact_key")
        .from_(unfolded.subquery("unfolded", copy=False), copy=False)
        .where(exp.Not(this=exp.Is(this=exp.column("segment"), expression=exp.null())))
    )


def snapshot(con: duckdb.DuckDBPyConnection, run_id: int, as_of: datetime) -> int:
    """Append ``segment_membership`` to ``segment_snapshots`` for ``run_id``; return rows."""
    at = BuildContext.timestamp(_aware(as_of)).sql("duckdb")
    return con.execute(
        f"INSERT INTO segment_snapshots (run_id, segment, contact_key, as_of) "
        f"SELECT ?, segment, contact_key, {at} FROM {MEMBERSHIP_TABLE}",
        [run_id],
    ).fetchall()[0][0]


@dataclass(frozen=True)
class MembershipDiff:
    """Counts of the rows :func:`diff` wrote to ``segment_diff``."""

    destination: str
    entries: int
    exits: int


def diff_sql(destination: str, segments: Sequence[str] | None = None) -> str:
    """The diff as SQL: rows (segment, contact_key, change) with change 'enter' or 'exit'.

    Entries are current memberships (of ``segments``, when given: those the destination
    carries) it has not acknowledged; exits are acknowledged memberships no longer current,
    including those of segments since removed from the destination.
    """
    current = exp.select("segment", "contact_key").from_(MEMBERSHIP_TABLE)
    if segments is not None:
        current = current.where(
            exp.In(this=exp.column("segment"), expressions=[_lit(s) for s in segments])
            if segments else exp.false()
        )
    acked = (
        exp.select("segment", "contact_key")
        .from_("acknowledged_memberships")
        .where(exp.EQ(this=exp.column("destination"), expression=_lit(destination)))
    )
    enter = exp.select("segment", "contact_key", _lit("enter").as_("change")).from_(
        exp.except_(current, acked.copy()).subquery("entering")
    )
    leave = exp.select("segment", "contact_key", _lit("exit").as_("change")).from_(
        exp.except_(acked, current.copy()).subquery("leaving")
    )
    return exp.union(enter, leave, distinct=False).sql("duckdb")


def diff(
    con: duckdb.DuckDBPyConnection, destination: str, segments: Sequence[str] | None = None
) -> MembershipDiff:
    """Write entries/exits of ``destination`` vs ``acknowledged_memberships`` to ``segment_diff``."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {DIFF_TABLE} AS {diff_sql(destination, segments)}")
    counts = dict(
        con.execute(f"SELECT change, count(*) FROM {DIFF_TABLE} GROUP BY change").fetchall()
    )
    return MembershipDiff(destination, counts.get("enter", 0), counts.get("exit", 0))


def compile_sql(
    segment: SegmentDef | str,
    segments: Sequence[SegmentDef] = (),
    groups: Mapping[str, GroupDef] | None = None,
    *,
    as_of: datetime | None = None,
    registry: FunctionRegistry | None = None,
    dialect: str = "duckdb",
    pretty: bool = True,
    tables: Mapping[str, str] | None = None,
) -> str:
    """The SQL selecting the contact keys of ``segment`` (for ``--sql`` display).

    ``segments``/``groups`` supply what it depends on (in_segment targets, group siblings);
    ``as_of`` defaults to now (UTC). Any sqlglot dialect name works for ``dialect``; the text is
    rendered as an engine renders what it runs (:func:`segsync.segments.dialects.render`: the
    portable consent rule and the dialect's rewrites), with ``tables`` (canonical table → the
    name it is read from: :meth:`Engine.renamed_tables <segsync.engines.Engine.renamed_tables>`)
    replacing the canonical names, so it runs as shown on that engine.
    """
    from . import dialects

    target, segments = _resolve(segment, segments)
    segment_query = build_query(segments, groups, _aware(as_of), registry or default_registry(),
                                only=[target.name], dialect=dialect)
    inner = segment_query.select().subquery("memberships", copy=False)
    query = exp.select("contact_key").from_(inner).where(exp.column(segment_query.column[target.name]))
    return dialects.render(query, dialect, tables, pretty=pretty)


def _resolve(
    segment: SegmentDef | str, segments: Sequence[SegmentDef]
) -> tuple[SegmentDef, list[SegmentDef]]:
    segments = list(segments)
    if isinstance(segment, str):
        found = [s for s in segments if s.name == segment]
        if not found:
            raise SegmentConfigError(f"unknown segment {segment!r}")
        return found[0], segments
    if all(s.name != segment.name for s in segments):
        segments.append(segment)
    return segment, segments


def _aware(as_of: datetime | None) -> datetime:
    if as_of is None:
        return datetime.now(timezone.utc)
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return as_of

"""Incremental evaluation: recompute only the contacts whose features can have changed.

Most of an evaluation is the per-contact aggregation of events (bench/RESULTS-segments.md);
the rest (attributes, hashes, ranks over everyone, groups, ``in_segment``) is cheap per contact
but may depend on every contact (an NTILE rank moves when anyone's spend does) or on the clock
alone (``days_since(email.opened) > 90`` flips with no new event). So the engine keeps the
event and joined features of every contact in ``segment_features`` (columns ``f0``, ``f1``, …
in the order the rules name them) and, on the next evaluation at ``as_of``:

1. recomputes those features only for the contacts whose inputs changed since the last
   evaluation at ``t0`` (see :func:`_changed_sql`):

   * contacts without a row in ``segment_features`` (new ones),
   * contacts with an ``events`` row added since (any type, any time),
   * for each windowed event feature ``(as_of - w, as_of]``: contacts with an event of its types
     in ``(t0 - w, as_of - w]`` (the event left the window as the clock moved on),
   * contacts with an event in ``(t0, as_of]`` (the upper bound admitted it: events dated
     after the last evaluation, e.g. imported ahead of time),
   * when a joined feature is used (consent, sends since the last open): contacts with a
     consent-ledger record, suppression or status change added since (or a suppression
     removed since), and whoever its ``moves(t0, as_of)`` names;

2. computes every membership from ``contacts`` joined with ``segment_features``: row features,
   ranks, clock-relative comparisons, groups and ``in_segment`` see everyone, exactly as a full
   evaluation does, so the result is the same (``core/tests/segments/test_incremental.py``
   proves it over random event streams, consent changes and clock advances).

It evaluates everyone in full (and rebuilds ``segment_features``) when there is no previous
evaluation, when the definitions changed (rules, groups, packs, functions, consent policies:
the fingerprint is the evaluation SQL compiled at a fixed instant), when ``as_of`` is earlier
than the last one, when people were erased since (rows were deleted), or when more than
``max_share`` of the contacts (and more than ``min_large``) changed: recomputing most contacts
through a semi-join costs more than one pass over everything.

New ``events`` rows are found by ``rowid``: the table is append-only, an appended row's rowid
is above every existing one's, and a row's rowid never grows (DuckDB may only compact them
downwards after deletions). The evaluation records the row count and the largest rowid; the
rows above that rowid are new exactly when their number is the growth of the row count. When
it is not (rows were deleted, or compacted away since), the evaluation is a full one; a
rewrite of the store file (``Store.rewrite``, which renumbers every row) clears the state.

The state (``segment_evaluation``, store migration 6) is written after the features, so an
evaluation interrupted half-way leaves a state older than the features: the next one then
recomputes a superset of what changed, never less.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
from sqlglot import exp

from .definitions import GroupDef, SegmentDef
from .evaluate import fill_memberships
from .functions import CONTACTS_TABLE, EVENTS_TABLE, BuildContext, Feature, FunctionRegistry
from .query import SegmentQuery, build_query

STATE_TABLE = "segment_evaluation"
FEATURES_TABLE = "segment_features"
CHANGED_TABLE = "_segment_changed"
# Part of the fingerprint: a change to how features are stored invalidates stored ones.
STORAGE_VERSION = "1"
# The instant the fingerprint compiles the rules at: any fixed one far from real data.
FINGERPRINT_AS_OF = datetime(2200, 1, 1, tzinfo=timezone.utc)
# "The incremental set is large": more than this share of the contacts, and more than this
# many (recomputing a few thousand contacts is quick whatever the share).
DEFAULT_MAX_SHARE = 0.25
DEFAULT_MIN_LARGE = 10_000


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_incremental` did: ``mode`` is ``full`` or ``incremental``;
    ``reason`` why it was full; ``recomputed`` the contacts whose features were computed."""

    sizes: dict[str, int]
    mode: str
    reason: str
    recomputed: int


@dataclass(frozen=True)
class _Marks:
    """How far the store's tables went at an evaluation (see the module docstring)."""

    events_rows: int
    events_rowid: int
    ledger_id: int
    suppression_id: int
    status_change_id: int
    erasure_id: int
    clock: datetime

    @classmethod
    def now(cls, con: duckdb.DuckDBPyConnection) -> _Marks:
        row = con.execute(
            """
            SELECT (SELECT count(*) FROM events), (SELECT coalesce(max(rowid), -1) FROM events),
                   (SELECT coalesce(max(id), 0) FROM consent_ledger),
                   (SELECT coalesce(max(id), 0) FROM suppressions),
                   (SELECT coalesce(max(id), 0) FROM status_changes),
                   (SELECT coalesce(max(id), 0) FROM erasures),
                   get_current_timestamp()
            """
        ).fetchall()[0]
        return cls(*row)


def fingerprint(
    segments: Sequence[SegmentDef],
    groups: Mapping[str, GroupDef] | None,
    registry: FunctionRegistry,
) -> str:
    """A digest of everything the evaluation SQL is made of, independent of ``as_of``."""
    key = (
        tuple(s.model_dump_json() for s in segments),
        tuple((g, d.model_dump_json()) for g, d in sorted((groups or {}).items())),
        tuple(registry),  # the functions themselves (a replaced builder is another key)
    )
    if key not in _fingerprints:  # compiling costs ~0.2 s; a process evaluates the same often
        _fingerprints.clear()
        _fingerprints[key] = _digest(segments, groups, registry)
    return _fingerprints[key]


_fingerprints: dict[tuple, str] = {}


def _digest(
    segments: Sequence[SegmentDef], groups: Mapping[str, GroupDef] | None, registry: FunctionRegistry
) -> str:
    query = build_query(segments, groups, FINGERPRINT_AS_OF, registry)
    text = "\n".join([
        STORAGE_VERSION,
        query.stored_features().sql("duckdb"),
        query.select(features_table=FEATURES_TABLE).sql("duckdb"),
        ",".join(s.name for s in query.segments),
    ])
    return hashlib.sha256(text.encode()).hexdigest()


def evaluate_incremental(
    con: duckdb.DuckDBPyConnection,
    segments: Sequence[SegmentDef],
    groups: Mapping[str, GroupDef] | None,
    as_of: datetime,
    registry: FunctionRegistry,
    *,
    max_share: float = DEFAULT_MAX_SHARE,
    min_large: int = DEFAULT_MIN_LARGE,
) -> Evaluation:
    """Evaluate ``segments`` at ``as_of`` into ``segment_membership`` (as
    :func:`~segsync.segments.evaluate.evaluate` does), recomputing only what changed since the
    last call on this store; persist what the next call needs."""
    query = build_query(segments, groups, as_of, registry)
    if not query.segments:
        return Evaluation(fill_memberships(con, query), "full", "no segments", 0)
    marks = _Marks.now(con)
    digest = fingerprint(segments, groups, registry)
    reason = _why_full(con, query, digest, marks)
    recomputed = 0
    if reason is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CHANGED_TABLE} AS "
                    f"{_changed_sql(query, _last(con))}")
        recomputed = _scalar(con, f"SELECT count(*) FROM {CHANGED_TABLE}")
        contacts = _scalar(con, f"SELECT count(*) FROM {CONTACTS_TABLE}")
        if recomputed > max(max_share * contacts, min_large):
            reason = (f"{recomputed} of {contacts} contacts changed "
                      f"(more than {max_share:.0%}: one pass over everyone is cheaper)")
    if reason is None:
        if recomputed:
            changed = exp.select("contact_id", "contact_key").from_(CHANGED_TABLE)
            con.execute(f"DELETE FROM {FEATURES_TABLE} WHERE contact_id IN "
                        f"(SELECT contact_id FROM {CHANGED_TABLE})")
            con.execute(f"INSERT INTO {FEATURES_TABLE} "
                        f"{query.stored_features(changed).sql('duckdb', copy=False)}")
        con.execute(f"DROP TABLE {CHANGED_TABLE}")
    else:
        con.execute(f"CREATE OR REPLACE TABLE {FEATURES_TABLE} AS "
                    f"{query.stored_features().sql('duckdb', copy=False)}")
        recomputed = _scalar(con, f"SELECT count(*) FROM {FEATURES_TABLE}")
    sizes = fill_memberships(con, query, FEATURES_TABLE)
    _save(con, digest, query.as_of, marks)
    return Evaluation(sizes, "full" if reason else "incremental", reason or "", recomputed)


@dataclass(frozen=True)
class _Last:
    as_of: datetime
    marks: _Marks


def _last(con: duckdb.DuckDBPyConnection) -> _Last:
    row = con.execute(
        f"SELECT as_of, events_rows, events_rowid, ledger_id, suppression_id, status_change_id, "
        f"erasure_id, clock FROM {STATE_TABLE}"
    ).fetchall()[0]
    return _Last(row[0], _Marks(*row[1:]))


def _why_full(
    con: duckdb.DuckDBPyConnection, query: SegmentQuery, digest: str, marks: _Marks
) -> str | None:
    """Why this evaluation must be a full one; None when it can be incremental."""
    joined = [f for f in query.features.values() if f.stage == "joined"]
    unknown = [f.name for f in joined if f.moves is None]
    if unknown:
        return "a joined feature does not say how it moves with the clock"
    state = con.execute(f"SELECT fingerprint FROM {STATE_TABLE}").fetchall()
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? AND NOT temporary", [FEATURES_TABLE]
    ).fetchall()[0][0]
    if not state or not exists:
        return "no previous evaluation"
    if state[0][0] != digest:
        return "the segment definitions changed"
    last = _last(con)
    if query.as_of < last.as_of:
        return f"as_of is before the last evaluation's ({last.as_of.isoformat()})"
    if marks.erasure_id != last.marks.erasure_id:
        return "people were erased since the last evaluation"
    added = _scalar(con, f"SELECT count(*) FROM {EVENTS_TABLE} WHERE rowid > ?",
                    [last.marks.events_rowid])
    if marks.events_rows != last.marks.events_rows + added:
        return "events were deleted or compacted since the last evaluation"
    return None


def _changed_sql(query: SegmentQuery, last: _Last) -> str:
    """SELECT ``contact_id, contact_key`` of every contact whose stored features may differ
    between the last evaluation and ``query.as_of`` (see the module docstring)."""
    t0, t1 = last.as_of, query.as_of

    def ts(at: datetime) -> str:
        return BuildContext.timestamp(at).sql("duckdb")

    event_moves = [f"rowid > {last.marks.events_rowid}",
                   f"(occurred_at > {ts(t0)} AND occurred_at <= {ts(t1)})"]
    for f in _windowed(query.features.values()):
        bounds = f"occurred_at > {ts(f.since - (t1 - t0))} AND occurred_at <= {ts(f.since)}"
        if f.event_types is not None:
            types = ", ".join(exp.Literal.string(t).sql("duckdb") for t in sorted(f.event_types))
            bounds = f"type IN ({types}) AND {bounds}"
        event_moves.append(f"({bounds})")
    by_key = [f"SELECT contact_key FROM {CONTACTS_TABLE} c WHERE NOT EXISTS "
              f"(SELECT 1 FROM {FEATURES_TABLE} s WHERE s.contact_id = c.contact_id)"]
    joined = [f for f in query.features.values() if f.stage == "joined"]
    if joined:
        m = last.marks
        by_key += [
            f"SELECT contact_key FROM consent_ledger WHERE id > {m.ledger_id}",
            f"SELECT contact_key FROM suppressions WHERE contact_key IS NOT NULL "
            f"AND (id > {m.suppression_id} OR removed_at >= {ts(m.clock)})",
            f"SELECT contact_key FROM status_changes WHERE id > {m.status_change_id}",
        ]
        by_key += [f.moves(t0, t1).sql("duckdb") for f in joined]  # type: ignore[misc]
    return f"""
        SELECT contact_id, contact_key FROM {CONTACTS_TABLE}
        WHERE contact_id IN (SELECT contact_id FROM {EVENTS_TABLE}
                             WHERE {' OR '.join(event_moves)})
           OR contact_key IN ({' UNION ALL '.join(by_key)})
    """


def _windowed(features) -> list[Feature]:
    """Event features with a window, one per distinct (types, window start)."""
    seen: dict[tuple, Feature] = {}
    for f in features:
        if f.stage == "event" and f.since is not None:
            seen.setdefault((f.event_types, f.since), f)
    return list(seen.values())


def _save(con: duckdb.DuckDBPyConnection, digest: str, as_of: datetime, marks: _Marks) -> None:
    con.execute(f"DELETE FROM {STATE_TABLE}")
    con.execute(
        f"INSERT INTO {STATE_TABLE} (fingerprint, as_of, events_rows, events_rowid, ledger_id, "
        f"suppression_id, status_change_id, erasure_id, clock, evaluated_at) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [digest, as_of, marks.events_rows, marks.events_rowid, marks.ledger_id,
         marks.suppression_id, marks.status_change_id, marks.erasure_id, marks.clock],
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    # fetchall, not fetchone: DuckDB keeps a half-read result open on the connection.
    return int(con.execute(sql, params or []).fetchall()[0][0])

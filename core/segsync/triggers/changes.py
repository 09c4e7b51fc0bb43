"""Segment entries and exits: the current membership against what the triggers last saw.

After a sync run's evaluation (a scheduled or webhook-driven run's too), :func:`record_changes`
compares ``segment_membership`` with ``trigger_baseline`` (store migration 9), and in one
transaction moves the baseline and queues one outbox row per configured trigger and change.
So a crash before the commit leaves the change to be found again by the next evaluation, and
one after it leaves the outbox to be delivered: an entry is never lost, nor queued twice.

A segment's first evaluation is its baseline: its members then did not *enter* (switching
triggers on, or adding a segment, does not start a journey for everyone already in it). Held
segments (that could not be evaluated) keep their baseline; a segment no longer configured
loses it silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import duckdb

from segsync.segments.evaluate import MEMBERSHIP_TABLE
from segsync.store import Store

from .definitions import TriggerDef

ChangeKind = Literal["enter", "exit"]


@dataclass(frozen=True)
class SegmentChange:
    """One person entering or leaving one segment."""

    segment: str
    contact_key: str
    change: ChangeKind


@dataclass(frozen=True)
class SegmentChanges:
    """The entries and exits one run's evaluation found, as ``segsync_segment_changes`` sees them.

    ``origin`` says what started the run: ``"sync"`` (``segsync sync``), or what a long-lived
    process passed (``"schedule"``, ``"webhook"``: an update a service pushed). ``baselined``
    are segments evaluated for the first time: their members are the baseline, not entries.
    ``queued`` counts the outbox rows written per trigger.
    """

    origin: str
    as_of: datetime
    run_id: int
    changes: tuple[SegmentChange, ...] = ()
    baselined: tuple[str, ...] = ()
    queued: dict[str, int] = field(default_factory=dict)

    @property
    def entries(self) -> list[SegmentChange]:
        return [c for c in self.changes if c.change == "enter"]

    @property
    def exits(self) -> list[SegmentChange]:
        return [c for c in self.changes if c.change == "exit"]

    def counts(self) -> dict[str, dict[str, int]]:
        """segment → {"enter": n, "exit": m}, for reports."""
        out: dict[str, dict[str, int]] = {}
        for c in self.changes:
            out.setdefault(c.segment, {"enter": 0, "exit": 0})[c.change] += 1
        return out


def record_changes(
    store: Store,
    segments: Iterable[str],
    triggers: Sequence[TriggerDef],
    *,
    as_of: datetime,
    origin: str,
    run_id: int,
) -> SegmentChanges:
    """Compare ``segment_membership`` with the baseline for ``segments`` (those just evaluated),
    queue the triggers' deliveries and move the baseline, all in one transaction."""
    con = store.con
    evaluated = sorted(set(segments))
    with store.transaction():
        known = {s for (s,) in con.execute("SELECT segment FROM trigger_segments").fetchall()}
        con.execute("DELETE FROM trigger_segments WHERE segment NOT IN (SELECT unnest(?::VARCHAR[]))",
                    [evaluated])  # a segment gone from the configuration: forget its baseline
        con.execute("DELETE FROM trigger_baseline WHERE segment NOT IN (SELECT unnest(?::VARCHAR[]))",
                    [evaluated])
        # Everyone of a new segment is its baseline, not an entry (see the module docstring).
        fresh = [s for s in evaluated if s not in known]
        compared = [s for s in evaluated if s in known]
        rows = _diff(con, compared)
        changes = tuple(SegmentChange(*row) for row in rows)
        queued = _enqueue(con, changes, triggers, as_of=as_of, origin=origin, run_id=run_id)
        _move_baseline(con, compared, changes, fresh)
        if fresh:
            con.execute("INSERT INTO trigger_segments SELECT unnest(?::VARCHAR[]), ?, ?",
                        [fresh, as_of, run_id])
    return SegmentChanges(origin, as_of, run_id, changes, tuple(fresh), queued)


def _diff(con: duckdb.DuckDBPyConnection, segments: list[str]) -> list[tuple]:
    if not segments:
        return []
    scope = "segment IN (SELECT unnest($segments::VARCHAR[]))"
    return con.execute(
        f"""
        WITH now_in AS (SELECT DISTINCT segment, contact_key FROM {MEMBERSHIP_TABLE} WHERE {scope}),
             was_in AS (SELECT segment, contact_key FROM trigger_baseline WHERE {scope})
        SELECT segment, contact_key, 'enter' FROM (SELECT * FROM now_in EXCEPT SELECT * FROM was_in)
        UNION ALL
        SELECT segment, contact_key, 'exit' FROM (SELECT * FROM was_in EXCEPT SELECT * FROM now_in)
        ORDER BY 1, 2, 3
        """,
        {"segments": segments},
    ).fetchall()


def _enqueue(
    con: duckdb.DuckDBPyConnection,
    changes: Sequence[SegmentChange],
    triggers: Sequence[TriggerDef],
    *,
    as_of: datetime,
    origin: str,
    run_id: int,
) -> dict[str, int]:
    queued: dict[str, int] = {}
    for trigger in triggers:
        matching = [c.contact_key for c in changes if c.segment == trigger.segment and c.change == trigger.on]
        if not matching:
            continue
        con.execute(
            """
            INSERT INTO trigger_outbox (trigger, segment, contact_key, change, occurred_at, origin,
                                        run_id, idempotency_key, status, enqueued_at, updated_at)
            SELECT $trigger, $segment, k, $change, $as_of, $origin, $run_id,
                   gen_random_uuid()::VARCHAR, 'pending', now(), now()
            FROM (SELECT unnest($keys::VARCHAR[]) AS k)
            """,
            {"trigger": trigger.name, "segment": trigger.segment, "change": trigger.on, "as_of": as_of,
             "origin": origin, "run_id": run_id, "keys": matching},
        )
        queued[trigger.name] = len(matching)
    return queued


def _move_baseline(
    con: duckdb.DuckDBPyConnection, compared: list[str], changes: Sequence[SegmentChange], fresh: list[str]
) -> None:
    exits = [c for c in changes if c.change == "exit"]
    if exits:
        con.execute(
            "DELETE FROM trigger_baseline b USING "
            "(SELECT unnest($s::VARCHAR[]) AS s, unnest($k::VARCHAR[]) AS k) x "
            "WHERE b.segment = x.s AND b.contact_key = x.k",
            {"s": [c.segment for c in exits], "k": [c.contact_key for c in exits]},
        )
    entries = [c for c in changes if c.change == "enter"]
    if entries:
        con.execute("INSERT INTO trigger_baseline SELECT unnest($s::VARCHAR[]), unnest($k::VARCHAR[])",
                    {"s": [c.segment for c in entries], "k": [c.contact_key for c in entries]})
    if fresh:
        con.execute(
            f"INSERT INTO trigger_baseline SELECT DISTINCT segment, contact_key FROM {MEMBERSHIP_TABLE} "
            "WHERE segment IN (SELECT unnest(?::VARCHAR[]))",
            [fresh],
        )

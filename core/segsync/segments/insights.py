"""Read-only questions about segments, answered in SQL where the memberships are.

Membership questions read ``segment_membership`` (fill it with :func:`evaluate` first, or
:meth:`Engine.evaluate <segsync.engines.Engine.evaluate>` on an external engine); history reads
``segment_snapshots`` and the embedded store's ``runs``. Each question takes a *source*: the
embedded store's connection, or an open external engine (docs/scale.md), where the same SQL runs
rendered for it (:meth:`Engine.transpile <segsync.engines.Engine.transpile>`). Only TEMP tables
are created, so all of this works on a store opened read-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import duckdb

from segsync.engines.base import Source
from segsync.engines.base import source_rows as query
from segsync.store.sql import literal, literal_list

from .evaluate import MEMBERSHIP_TABLE
from .functions import BuildContext
from .definitions import SegmentDef

_DURATION = re.compile(r"^([1-9][0-9]{0,5})([hdw])$")
_UNIT = {"h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str) -> timedelta:
    """``"30d"`` → 30 days (the rule language's duration syntax)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a window such as 30d, 24h or 2w")
    return timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})


def members(source: Source, segment: str, limit: int | None = None) -> list[str]:
    """Contact keys in ``segment``, sorted (so samples are the same every time)."""
    sql = (f"SELECT contact_key FROM {MEMBERSHIP_TABLE} WHERE segment = {literal(segment)} "
           "ORDER BY contact_key")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [k for (k,) in query(source, sql)]


@dataclass(frozen=True)
class Change:
    """Current membership against the latest snapshot (``run_id`` None: no snapshot yet)."""

    run_id: int | None
    entries: int
    exits: int


def change_since_last_run(source: Source, segment: str) -> Change:
    run_id = query(source, "SELECT max(run_id) FROM segment_snapshots")[0][0]
    s, r = literal(segment), "NULL" if run_id is None else int(run_id)
    rows = query(source, f"""
        WITH cur AS (SELECT contact_key FROM {MEMBERSHIP_TABLE} WHERE segment = {s}),
             prev AS (SELECT contact_key FROM segment_snapshots WHERE segment = {s} AND run_id = {r})
        SELECT (SELECT count(*) FROM (SELECT * FROM cur EXCEPT SELECT * FROM prev) AS entering),
               (SELECT count(*) FROM (SELECT * FROM prev EXCEPT SELECT * FROM cur) AS leaving)
        """)[0]
    return Change(None if run_id is None else int(run_id), int(rows[0]), int(rows[1]))


@dataclass(frozen=True)
class Overlap:
    """Contacts in both ``a`` and ``b``; shares are of each segment's size (0 when empty)."""

    a: str
    b: str
    both: int
    share_of_a: float
    share_of_b: float
    exclusive: bool  # same group: overlap is impossible by construction
    shared_destinations: tuple[str, ...]  # destinations both feed

    @property
    def flagged(self) -> bool:
        """Not exclusive, overlapping and shown by the same destination: people get both."""
        return not self.exclusive and self.both > 0 and bool(self.shared_destinations)


def feeds(segment: SegmentDef, destinations: Sequence[str]) -> tuple[str, ...]:
    """Where the runner sends ``segment``: its destinations, or all of them when none named."""
    if not segment.destinations:
        return tuple(destinations)
    return tuple(d for d in destinations if d in segment.destinations)


def overlap(
    source: Source,
    segments: Sequence[SegmentDef],
    sizes: dict[str, int],
    destinations: Sequence[str] = (),
) -> list[Overlap]:
    """Every pair of ``segments`` (in the given order) with its overlap."""
    names = literal_list([s.name for s in segments])
    counts = {
        (a, b): int(n)
        for a, b, n in query(source, f"""
            SELECT a.segment, b.segment, count(*)
            FROM {MEMBERSHIP_TABLE} a JOIN {MEMBERSHIP_TABLE} b
              ON a.contact_key = b.contact_key AND a.segment < b.segment
            WHERE a.segment IN ({names}) AND b.segment IN ({names})
            GROUP BY a.segment, b.segment
            """)
    }
    out = []
    for i, a in enumerate(segments):
        for b in segments[i + 1:]:
            both = counts.get(tuple(sorted((a.name, b.name))), 0)  # type: ignore[call-overload]
            shared = tuple(d for d in feeds(a, destinations) if d in feeds(b, destinations))
            out.append(Overlap(
                a.name, b.name, both,
                both / sizes[a.name] if sizes.get(a.name) else 0.0,
                both / sizes[b.name] if sizes.get(b.name) else 0.0,
                a.group is not None and a.group == b.group,
                shared,
            ))
    return out


@dataclass(frozen=True)
class HistoryRow:
    run_id: int
    as_of: datetime
    size: int
    entries: int  # members not in the previous run that evaluated the segment (all, at first)
    exits: int


def history(con: duckdb.DuckDBPyConnection, segment: str, source: Source | None = None) -> list[HistoryRow]:
    """Size, entries and exits of ``segment`` per run that evaluated it, oldest first.

    The runs are the embedded store's (``con``); the snapshots are read from ``source``: the
    engine the runs evaluated on (default: the store itself)."""
    source = con if source is None else source
    runs = con.execute("SELECT id, as_of, counts FROM runs ORDER BY id").fetchall()
    # A run that found no member leaves no snapshot row; its counts still show it evaluated.
    evaluated = {
        rid for rid, _, counts in runs
        if segment in ((json.loads(counts) if counts else {}).get("segments") or {})
    }
    s = literal(segment)
    evaluated |= {int(r) for (r,) in query(
        source, f"SELECT DISTINCT run_id FROM segment_snapshots WHERE segment = {s}")}
    if not evaluated:
        return []
    # Sizes, entries and exits are counted where the snapshots are; only a row per run leaves.
    ids = [str(r) for r in sorted(evaluated)]
    counted = query(source, f"""
        WITH seq AS (
            SELECT run_id, lag(run_id) OVER (ORDER BY run_id) AS prev
            FROM (VALUES {", ".join(f"({r})" for r in ids)}) AS evaluated(run_id)
        ),
        snap AS (SELECT run_id, contact_key FROM segment_snapshots WHERE segment = {s}),
        marks AS (
            SELECT run_id, contact_key, 1 AS cur, 0 AS prev FROM snap
            UNION ALL
            SELECT seq.run_id, snap.contact_key, 0, 1 FROM seq JOIN snap ON snap.run_id = seq.prev
        ),
        per AS (
            SELECT run_id, contact_key, max(cur) AS cur, max(prev) AS prev FROM marks
            GROUP BY run_id, contact_key
        ),
        taken AS (
            SELECT run_id, max(as_of) AS as_of FROM segment_snapshots
            WHERE run_id IN ({", ".join(ids)}) GROUP BY run_id
        )
        SELECT seq.run_id, taken.as_of,
               count(*) FILTER (WHERE per.cur = 1),
               count(*) FILTER (WHERE per.cur = 1 AND per.prev = 0),
               count(*) FILTER (WHERE per.cur = 0 AND per.prev = 1)
        FROM seq
        LEFT JOIN per ON per.run_id = seq.run_id
        LEFT JOIN taken ON taken.run_id = seq.run_id
        GROUP BY seq.run_id, taken.as_of
        ORDER BY seq.run_id
        """)
    as_of = {rid: at for rid, at, _ in runs}
    return [HistoryRow(int(rid), as_of.get(rid) or taken, int(size), int(entries), int(exits))
            for rid, taken, size, entries, exits in counted]


@dataclass(frozen=True)
class Performance:
    """How a segment's current members behaved in the window before ``as_of``.

    Rates are per send (``email.sent`` events) and 0 without sends: opens, clicks and orders
    count events; unsubscribes and bounces count members with an ``email.unsubscribed`` /
    ``email.bounced`` event or an ``opted_out`` / ``bounced`` email consent entry.
    """

    segment: str
    members: int
    sends: int
    opens: int
    clicks: int
    orders: int
    unsubscribes: int
    bounces: int
    revenue: float

    def rate(self, count: float) -> float:
        return count / self.sends if self.sends else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "open_rate": self.rate(self.opens),
            "click_rate": self.rate(self.clicks),
            "conversion_rate": self.rate(self.orders),
            "unsubscribe_rate": self.rate(self.unsubscribes),
            "bounce_rate": self.rate(self.bounces),
            "revenue_per_email": self.rate(self.revenue),
        }


def report(
    source: Source, names: Sequence[str], as_of: datetime, window: timedelta
) -> list[Performance]:
    """:class:`Performance` of each segment in ``names``, in that order (the events and the
    ledger read where the memberships are: ``source``)."""
    start = BuildContext.timestamp(as_of - window).sql("duckdb")
    end = BuildContext.timestamp(as_of).sql("duckdb")
    rows = query(source, f"""
        WITH m AS (
            SELECT segment, contact_key FROM {MEMBERSHIP_TABLE}
            WHERE segment IN ({literal_list(names)})
        ),
        ev AS (
            SELECT contact_key,
                   count(*) FILTER (WHERE type = 'email.sent') AS sends,
                   count(*) FILTER (WHERE type = 'email.opened') AS opens,
                   count(*) FILTER (WHERE type = 'email.clicked') AS clicks,
                   count(*) FILTER (WHERE type = 'order.completed') AS orders,
                   coalesce(sum(value) FILTER (WHERE type = 'order.completed'), 0) AS revenue,
                   bool_or(type = 'email.unsubscribed') AS unsubscribed,
                   bool_or(type = 'email.bounced') AS bounced
            FROM events WHERE occurred_at > {start} AND occurred_at <= {end}
            GROUP BY contact_key
        ),
        led AS (
            SELECT contact_key, bool_or(status = 'opted_out') AS unsubscribed,
                   bool_or(status = 'bounced') AS bounced
            FROM consent_ledger
            WHERE channel = 'email' AND recorded_at > {start} AND recorded_at <= {end}
            GROUP BY contact_key
        )
        SELECT m.segment, count(*), coalesce(sum(ev.sends), 0), coalesce(sum(ev.opens), 0),
               coalesce(sum(ev.clicks), 0), coalesce(sum(ev.orders), 0),
               count(*) FILTER (WHERE ev.unsubscribed OR led.unsubscribed),
               count(*) FILTER (WHERE ev.bounced OR led.bounced),
               coalesce(sum(ev.revenue), 0)
        FROM m LEFT JOIN ev ON ev.contact_key = m.contact_key
               LEFT JOIN led ON led.contact_key = m.contact_key
        GROUP BY m.segment
        """)
    found = {r[0]: Performance(r[0], *(int(v) for v in r[1:8]), float(r[8])) for r in rows}
    return [found.get(n) or Performance(n, 0, 0, 0, 0, 0, 0, 0, 0.0) for n in names]


__all__ = [
    "Change", "HistoryRow", "Overlap", "Performance", "change_since_last_run", "feeds",
    "history", "members", "overlap", "parse_window", "report",
]

"""Benchmark: incremental segment evaluation vs a full one, on the store of segments_eval.py.

The same generated store, the same 18 segments (bench/segments_eval.py). In one process:

1. ``first``: the incremental engine with no previous state (a full evaluation that also keeps
   every contact's features: what the first sync pays);
2. ``no change``: again at the same ``as_of`` with nothing new;
3. ``clock +1 day``: at ``as_of`` + 1 day with no new event (only windows expiring);
4. ``1% new + clock +1 day``: events/100 new events (dated in that day, skewed over contacts as
   the generator does) and the clock a day on;
5. ``full``: the plain engine (:func:`segsync.segments.evaluate`) at the same instants, which the
   incremental memberships must equal row by row (the bench fails otherwise).

Each incremental measurement starts from a state at ``as_of`` (restored by an untimed
evaluation); the new events are deleted after each repetition.

Usage::

    python bench/segments_incremental.py --contacts 1000000 --events 20000000 --db bench/data/segments-1m.duckdb
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import timedelta
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from segments_eval import AS_OF, generate, h, peak_mib, segments, timed  # noqa: E402

from segsync.segments import default_registry, evaluate  # noqa: E402
from segsync.segments.incremental import FEATURES_TABLE, STATE_TABLE, evaluate_incremental  # noqa: E402


def differing(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"""
        SELECT count(*) FROM ((SELECT * FROM segment_membership EXCEPT ALL SELECT * FROM {table})
                              UNION ALL
                              (SELECT * FROM {table} EXCEPT ALL SELECT * FROM segment_membership))
    """).fetchone()[0]


def add_new_events(con: duckdb.DuckDBPyConnection, n_contacts: int, n: int, start: int) -> None:
    """``n`` events dated in (AS_OF, AS_OF + 1 day], source 'bench-new', like the generator's."""
    as_of = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"
    con.execute(f"""
        INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, value, url,
                            category, properties, campaign_key, contact_id)
        SELECT k.contact_key, e.type, e.occurred_at, 'bench-new', e.id, e.value, e.url,
               e.category, e.properties, coalesce(e.properties ->> '$.campaign_id', 'bench-new' || e.id),
               k.contact_id
        FROM (
            SELECT 'c' || lpad(floor({n_contacts} * pow({h('j', 2654435761)} / 4294967291.0, 2))
                                   ::BIGINT::VARCHAR, 8, '0') || '@example.com' AS contact_key,
                   CASE WHEN r < 350 THEN 'email.sent' WHEN r < 550 THEN 'email.opened'
                        WHEN r < 600 THEN 'email.clicked' WHEN r < 850 THEN 'page.viewed'
                        WHEN r < 880 THEN 'order.completed' WHEN r < 930 THEN 'cart.added'
                        ELSE 'form.submitted' END AS type,
                   {as_of} + to_seconds(1 + {h('j', 3266489917)} % 86399) AS occurred_at,
                   j::VARCHAR AS id,
                   CASE WHEN r BETWEEN 850 AND 929 THEN 5 + ({h('j', 40503)} % 40000) / 100.0 END AS value,
                   CASE WHEN r BETWEEN 600 AND 849 THEN '/shop/shoes' END AS url,
                   CASE WHEN r BETWEEN 600 AND 849 THEN 'shoes' END AS category,
                   CASE WHEN r < 600 THEN '{{"campaign_id": "cmp-new"}}' ELSE '{{}}' END::JSON AS properties
            FROM (SELECT j, {h('j', 374761393)} % 1000 AS r FROM range({start}, {start + n}) t(j))
        ) e JOIN contacts k USING (contact_key)
    """)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    p.add_argument("--db", type=Path, help="the store of segments_eval.py (generated if absent)")
    args = p.parse_args(argv)

    reuse = args.db is not None and args.db.exists()
    con = duckdb.connect(str(args.db) if args.db else ":memory:", config={"threads": args.threads})
    con.execute("SET TimeZone = 'UTC'")
    print(f"duckdb {duckdb.__version__}, python {platform.python_version()}, "
          f"{args.threads} threads, {os.cpu_count()} cpus, store {args.db or 'in memory'}, "
          f"load {os.getloadavg()}")
    if not reuse:
        generate(con, args.contacts, args.events)
    n_c, n_e = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("contacts", "events"))
    n_new = n_e // 100
    print(f"{n_c:,} contacts, {n_e:,} events; 1% = {n_new:,} new events")
    con.execute(f"DELETE FROM events WHERE source = 'bench-new'")
    con.execute(f"DROP TABLE IF EXISTS {FEATURES_TABLE}")
    con.execute(f"DELETE FROM {STATE_TABLE}")

    segs, groups = segments()
    registry = default_registry()
    later = AS_OF + timedelta(days=1)
    results: list[tuple[str, float, float, str, int]] = []
    failures = 0

    def incremental(at):
        return evaluate_incremental(con, segs, groups, at, registry)

    def check(at, label) -> None:
        nonlocal failures
        con.execute("CREATE OR REPLACE TEMP TABLE inc_membership AS SELECT * FROM segment_membership")
        s, rss, _ = timed(lambda: evaluate(con, segs, groups, at, registry), 1)
        results.append((f"full (plain engine) at {label}", s, rss, "full", n_c))
        bad = differing(con, "inc_membership")
        print(f"  {label}: {bad} memberships differ from the full evaluation")
        failures += bad

    s, rss, done = timed(lambda: incremental(AS_OF), 1)
    results.append(("first (no state: full, keeps features)", s, rss, done.mode, done.recomputed))
    check(AS_OF, "as_of")

    s, rss, done = timed(lambda: incremental(AS_OF), args.repeat)
    results.append(("no change, same as_of", s, rss, done.mode, done.recomputed))

    def advance(new: int):
        samples = []
        for rep in range(args.repeat):
            incremental(AS_OF - timedelta(seconds=1))  # untimed: a state before AS_OF (full)
            incremental(AS_OF)  # and at AS_OF (incremental)
            if new:
                add_new_events(con, n_c, new, n_e * 10 + rep * new)
            samples.append(timed(lambda: incremental(later), 1))
            if rep == args.repeat - 1:
                check(later, f"as_of + 1 day, {new:,} new events")
            if new:
                con.execute("DELETE FROM events WHERE source = 'bench-new'")
        samples.sort(key=lambda x: x[0])
        return samples[len(samples) // 2]

    s, rss, done = advance(0)
    results.append(("clock +1 day, no new event", s, rss, done.mode, done.recomputed))
    s, rss, done = advance(n_new)
    results.append((f"1% new events ({n_new:,}) + clock +1 day", s, rss, done.mode, done.recomputed))

    print(f"{'measurement':48} {'seconds':>8} {'peak RSS MiB':>13} {'mode':>12} {'recomputed':>11}")
    for label, s, rss, mode, n in results:
        print(f"{label:48} {s:8.2f} {rss:13,.0f} {mode:>12} {n:>11,}")
    print(f"load after: {os.getloadavg()}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

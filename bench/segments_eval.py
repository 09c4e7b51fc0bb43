"""Benchmark: segment engine vs hand-written DuckDB SQL over a synthetic store.

Generates contacts, events and a consent ledger deterministically inside DuckDB (SQL
generators over range(), integer hashing instead of random(): the same sizes give the same
data on every run and thread count), then in the same process:

1. evaluates 11 representative rules plus one 7-way exclusive group through the engine,
2. evaluates the same rules written by hand in DuckDB SQL for speed (see handwritten_sql),
3. checks both produce identical memberships,
4. times snapshot + diff against a destination that acknowledged the previous day's run.

The data is loaded at schema version 3 and then migrated, so the figures include what
upgrading an existing store costs.

Usage::

    python bench/segments_eval.py                      # 1,000,000 contacts / 20,000,000 events
    python bench/segments_eval.py --contacts 10000 --events 200000 --threads 2 --repeat 1

Both sides run once untimed, then take turns ``--repeat`` times (engine first, then the
hand-written query first, …); times are medians. Peak RSS is the process high-water mark
(VmHWM), reset before each measured run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from segsync.segments import (  # noqa: E402
    GroupDef,
    SegmentDef,
    default_registry,
    diff,
    evaluate,
    snapshot,
)
from segsync.store.migrations import MIGRATIONS  # noqa: E402

AS_OF = datetime(2025, 1, 1, tzinfo=timezone.utc)

RULES = {
    "vip": 'opens(30d) >= 5 and spend(365d) > 500 and visited("/vip-rewards")',
    "lapsed": "days_since(email.opened) > 90 and orders(365d) > 0",
    "hr": 'attr.department in ("HR", "People")',
    "engaged": "open_rate(90d) >= 0.5 and click_rate(90d) >= 0.1",
    "abandoned-cart": "count(cart.added, 24h) > 0 and count(order.completed, 24h) == 0",
    "holdout": 'bucket("spring-test") < 0.10',
    "mailable": 'consentable("email")',
    "shoe-browsers": 'viewed_category("shoes", 30d)',
    "big-na-companies": 'attr.company_size >= 1000 and attr.country in ("US", "CA")',
    "champions": "rfm_recency() >= 4 and rfm_frequency() >= 4",
    "gold-tier": 'attr.tier == "gold"',
}
GROUP = [  # (name, priority, rule); "dormant" is the catch-all
    ("big-spender", 1, "spend(365d) > 1000"),
    ("loyal", 2, "orders(365d) >= 3"),
    ("active-buyer", 3, "orders(90d) >= 1"),
    ("engaged-reader", 4, "opens(30d) >= 3"),
    ("at-risk", 5, "orders() > 0 and days_since(order.completed) > 180"),
    ("new", 6, "days_since(attr.created_at) < 30"),
]


def segments() -> tuple[list[SegmentDef], dict[str, GroupDef]]:
    segs = [SegmentDef(name=n, rule=r) for n, r in RULES.items()]
    segs += [SegmentDef(name=n, group="lifecycle", priority=p, rule=r) for n, p, r in GROUP]
    segs.append(SegmentDef(name="dormant", group="lifecycle"))
    return segs, {"lifecycle": GroupDef(catch_all="dormant")}


# -- data ----------------------------------------------------------------------------------
# h(x, k): a cheap deterministic integer hash (multiply-xorshift), non-negative.
H = "(xor({x}::UBIGINT * {k}::UBIGINT, ({x}::UBIGINT * {k}::UBIGINT) >> 29) % 4294967291)::BIGINT"


def h(x: str, k: int) -> str:
    return H.format(x=x, k=k)


def migrate(con: duckdb.DuckDBPyConnection, versions: range) -> float:
    """Apply the store's migrations in ``versions``; return the seconds they took."""
    t0 = time.perf_counter()
    for m in MIGRATIONS:
        if m.version in versions:
            con.execute("BEGIN")  # one transaction per migration, as the store applies them
            for stmt in m.statements:
                con.execute(stmt)
            con.execute("COMMIT")
    return time.perf_counter() - t0


def generate(con: duckdb.DuckDBPyConnection, n_contacts: int, n_events: int) -> float:
    """Fill a store as of schema version 3, then upgrade it; return the upgrade's seconds.

    Loading at version 3 (the layout before typed event columns) and migrating afterwards
    works for every version of the engine and measures the backfill an existing store pays.
    """
    migrate(con, range(1, 4))
    as_of = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"
    con.execute(f"""
        INSERT INTO contacts (contact_key, first_name, department, country, company_size,
                              created_at, custom, first_seen_at, updated_at, updated_by)
        SELECT 'c' || lpad(i::VARCHAR, 8, '0') || '@example.com',
               'First' || (i % 1000),
               (['HR', 'People', 'Engineering', 'Sales', 'Marketing', 'Finance', 'Support'])
                   [1 + {h('i', 2654435761)} % 7],
               (['US', 'CA', 'DE', 'FR', 'GB', 'BR', 'IN', 'JP'])[1 + {h('i', 40503)} % 8],
               ({h('i', 2246822519)} % 5000)::INTEGER,
               {as_of} - to_seconds(({h('i', 3266489917)} % (3 * 365 * 86400))::BIGINT),
               CASE {h('i', 668265263)} % 4 WHEN 0 THEN '{{"tier": "gold"}}'
                    WHEN 1 THEN '{{"tier": "silver"}}' ELSE '{{}}' END,
               {as_of}, {as_of}, 'bench'
        FROM range({n_contacts}) t(i)
    """)
    # Activity is skewed (contact index = N * u^2): a few heavy users, a long quiet tail.
    # Event mix (per mille): sent 350, opened 200, clicked 50, page.viewed 250,
    # order.completed 30, cart.added 50, form.submitted 70. 1% land after as_of.
    con.execute(f"""
        INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, value,
                            url, category, properties)
        SELECT 'c' || lpad(floor({n_contacts} * pow({h('j', 2654435761)} / 4294967291.0, 2))
                               ::BIGINT::VARCHAR, 8, '0')
                   || '@example.com' AS contact_key,
               CASE WHEN r < 350 THEN 'email.sent' WHEN r < 550 THEN 'email.opened'
                    WHEN r < 600 THEN 'email.clicked' WHEN r < 850 THEN 'page.viewed'
                    WHEN r < 880 THEN 'order.completed' WHEN r < 930 THEN 'cart.added'
                    ELSE 'form.submitted' END AS type,
               {as_of} - to_seconds(({h('j', 3266489917)} % (2 * 365 * 86400))::BIGINT
                                    - CASE WHEN {h('j', 97)} % 100 = 0 THEN 86400 * 3 ELSE 0 END)
                   AS occurred_at,
               'bench', j::VARCHAR,
               CASE WHEN r BETWEEN 850 AND 929 THEN 5 + ({h('j', 40503)} % 40000) / 100.0 END,
               CASE WHEN r BETWEEN 600 AND 849 THEN
                   (['/vip-rewards', '/vip-rewards/faq', '/blog/post', '/pricing', '/shop/shoes',
                     '/shop/bags', '/', '/contact'])[1 + {h('j', 2246822519)} % 8] END,
               CASE WHEN r BETWEEN 600 AND 849 THEN
                   (['shoes', 'bags', 'hats', 'coats', 'blog'])[1 + {h('j', 668265263)} % 5] END,
               -- Email events name their campaign: one every 3 days, so repeated opens and
               -- clicks of one email count once in open_rate/click_rate.
               CASE WHEN r < 600 THEN '{{"campaign_id": "cmp-' ||
                   (({h('j', 3266489917)} % (2 * 365 * 86400)) // (3 * 86400))::VARCHAR || '"}}'
                    ELSE '{{}}' END
        FROM (SELECT j, {h('j', 374761393)} % 1000 AS r FROM range({n_events}) t(j))
    """)
    con.execute(f"""
        INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source,
                                    method, ingested_at)
        SELECT contact_key, 'email', 'marketing', status, ts, 'bench', 'form', ts FROM (
            SELECT contact_key, 'opted_in' AS status,
                   created_at + INTERVAL 1 HOUR AS ts, i
            FROM (SELECT contact_key, created_at, row_number() OVER () AS i FROM contacts)
            WHERE {h('i', 40503)} % 10 < 8
            UNION ALL
            SELECT contact_key, 'opted_out', created_at + INTERVAL 30 DAY, i
            FROM (SELECT contact_key, created_at, row_number() OVER () AS i FROM contacts)
            WHERE {h('i', 2246822519)} % 10 = 0
        )
    """)
    return migrate(con, range(4, 1000))


# -- hand-written baseline -----------------------------------------------------------------
def handwritten_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The same definitions, written by hand to be fast on the store's layout.

    Not a transcription of the engine: every aggregate reads only the rows some rule needs (one
    WHERE listing exactly those, so 24h carts and 90d sends never reach the GROUP BY with two
    years of others), unique opens/clicks come from the few distinct (contact, type, email)
    triples of the last 90 days rather than a DISTINCT aggregate, windows that the WHERE already
    implies are not re-tested, and the group is one CASE.
    """
    a = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"

    def ago(days: float) -> str:
        return f"TIMESTAMPTZ '{(AS_OF - timedelta(days=days)).isoformat()}'"

    # On a store with typed event columns (migration 4) it groups by the integer contact_id and
    # reads campaign_key; on an older store, by the address and from the JSON.
    typed = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'events' "
                        "AND column_name = 'campaign_key'").fetchone()[0]
    # Unique opens/clicks: each email (campaign) once, as open_rate/click_rate define them.
    email = ("campaign_key" if typed
             else "coalesce(properties ->> '$.campaign_id', source || source_event_id)")
    key = "contact_id" if typed else "contact_key"
    return f"""
    WITH ev AS (
        SELECT {key},
            count(*) FILTER (WHERE type = 'email.opened' AND occurred_at > {ago(30)}) AS opens30,
            count(*) FILTER (WHERE type = 'email.sent') AS sends90,
            max(occurred_at) FILTER (WHERE type = 'email.opened') AS last_open,
            max(occurred_at) FILTER (WHERE type = 'order.completed') AS last_order,
            count(*) FILTER (WHERE type = 'order.completed') AS orders_all,
            count(*) FILTER (WHERE type = 'order.completed' AND occurred_at > {ago(365)}) AS orders365,
            count(*) FILTER (WHERE type = 'order.completed' AND occurred_at > {ago(90)}) AS orders90,
            count(*) FILTER (WHERE type = 'order.completed' AND occurred_at > {ago(1)}) AS orders24h,
            sum(value) FILTER (WHERE type = 'order.completed' AND occurred_at > {ago(365)}) AS spend365,
            count(*) FILTER (WHERE type = 'cart.added') AS carts24h,
            count(*) FILTER (WHERE type = 'page.viewed' AND starts_with(url, '/vip-rewards')) AS vip_views,
            count(*) FILTER (WHERE type IN ('page.viewed', 'product.viewed') AND category = 'shoes'
                             AND occurred_at > {ago(30)}) AS shoe_views
        FROM events
        WHERE occurred_at <= {a}
          AND (type IN ('email.opened', 'order.completed')
               OR (type = 'email.sent' AND occurred_at > {ago(90)})
               OR (type = 'cart.added' AND occurred_at > {ago(1)})
               OR (type = 'page.viewed' AND starts_with(url, '/vip-rewards'))
               OR (type IN ('page.viewed', 'product.viewed') AND category = 'shoes'
                   AND occurred_at > {ago(30)}))
        GROUP BY {key}
    ),
    uniq AS (
        SELECT {key}, count(*) FILTER (WHERE type = 'email.opened') AS opens90,
               count(*) FILTER (WHERE type = 'email.clicked') AS clicks90
        FROM (SELECT DISTINCT {key}, type, {email}
              FROM events
              WHERE type IN ('email.opened', 'email.clicked')
                AND occurred_at > {ago(90)} AND occurred_at <= {a})
        GROUP BY {key}
    ),
    -- The consent rule (docs/consent.md) reduced to what this data holds (explicit form
    -- records, one source, no pushes, no suppressions): the latest record, the more
    -- restrictive on equal times.
    consent AS (
        SELECT contact_key,
               arg_max(status, (recorded_at, CASE status WHEN 'complained' THEN 3
                   WHEN 'bounced' THEN 2 WHEN 'opted_out' THEN 1 ELSE 0 END, id)) AS status
        FROM consent_ledger
        WHERE channel = 'email' AND purpose = 'marketing' AND recorded_at <= {a}
        GROUP BY contact_key
    ),
    f AS (
        SELECT c.contact_key, c.department, c.country, c.company_size, c.created_at,
               c.custom ->> '$.tier' AS tier, consent.status,
               coalesce(opens30, 0) AS opens30, coalesce(opens90, 0) AS opens90,
               coalesce(clicks90, 0) AS clicks90, coalesce(sends90, 0) AS sends90,
               last_open, coalesce(orders_all, 0) AS orders_all,
               coalesce(orders365, 0) AS orders365, coalesce(orders90, 0) AS orders90,
               coalesce(orders24h, 0) AS orders24h, coalesce(spend365, 0) AS spend365,
               coalesce(carts24h, 0) AS carts24h, coalesce(vip_views, 0) AS vip_views,
               coalesce(shoe_views, 0) AS shoe_views, last_order,
               ntile(5) OVER (ORDER BY last_order ASC NULLS FIRST, c.contact_key) AS rfm_r,
               ntile(5) OVER (ORDER BY coalesce(orders_all, 0), c.contact_key) AS rfm_f,
               ('0x' || substr(md5('spring-test:' || c.contact_key), 1, 8))::UBIGINT
                   / 4294967296.0 AS bucket
        FROM contacts c
        LEFT JOIN ev ON ev.{key} = c.{key}
        LEFT JOIN uniq ON uniq.{key} = c.{key}
        LEFT JOIN consent ON consent.contact_key = c.contact_key
    )
    SELECT segment, contact_key FROM (
        SELECT contact_key, unnest([
            CASE WHEN opens30 >= 5 AND spend365 > 500 AND vip_views > 0 THEN 'vip' END,
            CASE WHEN (last_open IS NULL OR last_open < {ago(90)}) AND orders365 > 0
                 THEN 'lapsed' END,
            CASE WHEN department IN ('HR', 'People') THEN 'hr' END,
            CASE WHEN sends90 > 0 AND opens90 / sends90 >= 0.5 AND clicks90 / sends90 >= 0.1
                 THEN 'engaged' END,
            CASE WHEN carts24h > 0 AND orders24h = 0 THEN 'abandoned-cart' END,
            CASE WHEN bucket < 0.10 THEN 'holdout' END,
            CASE WHEN status = 'opted_in' THEN 'mailable' END,
            CASE WHEN shoe_views > 0 THEN 'shoe-browsers' END,
            CASE WHEN company_size >= 1000 AND country IN ('US', 'CA') THEN 'big-na-companies' END,
            CASE WHEN rfm_r >= 4 AND rfm_f >= 4 THEN 'champions' END,
            CASE WHEN tier = 'gold' THEN 'gold-tier' END,
            CASE WHEN spend365 > 1000 THEN 'big-spender'
                 WHEN orders365 >= 3 THEN 'loyal'
                 WHEN orders90 >= 1 THEN 'active-buyer'
                 WHEN opens30 >= 3 THEN 'engaged-reader'
                 WHEN orders_all > 0 AND last_order < {ago(180)} THEN 'at-risk'
                 WHEN created_at > {ago(30)} THEN 'new'
                 ELSE 'dormant' END
        ]) AS segment FROM f
    ) WHERE segment IS NOT NULL
    """


# -- measurement ---------------------------------------------------------------------------
def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, repeat: int) -> tuple[float, float, object]:
    """Median wall seconds over ``repeat`` runs, peak RSS MiB during them, last result."""
    times, result = [], None
    reset_peak()
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), peak_mib(), result


def interleaved(engine, handwritten, repeat: int):
    """Medians and peak RSS of both sides, after one untimed warm-up run of each, taking turns
    (engine first, then hand-written first, …) so that neither always runs on the colder
    buffer cache or in the same phase of the machine's load."""
    engine()
    handwritten()
    runs: dict[str, list[tuple[float, float]]] = {"engine": [], "hand": []}
    sizes = None
    for n in range(repeat):
        order = [("engine", engine), ("hand", handwritten)]
        for name, fn in order if n % 2 == 0 else order[::-1]:
            s, rss, result = timed(fn, 1)
            runs[name].append((s, rss))
            if name == "engine":
                sizes = result
    eng = runs["engine"]
    hand = runs["hand"]
    return (statistics.median(s for s, _ in eng), max(r for _, r in eng),
            statistics.median(s for s, _ in hand), max(r for _, r in hand), sizes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    p.add_argument("--db", type=Path, help="keep the generated store in this file and reuse it "
                   "when it exists (e.g. bench/data/segments.duckdb); default: in memory")
    args = p.parse_args(argv)

    reuse = args.db is not None and args.db.exists()
    if args.db is not None:
        args.db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(args.db) if args.db else ":memory:", config={"threads": args.threads})
    con.execute("SET TimeZone = 'UTC'")
    print(f"duckdb {duckdb.__version__}, python {platform.python_version()}, "
          f"{args.threads} threads, {os.cpu_count()} cpus, store {args.db or 'in memory'}")
    t0 = time.perf_counter()
    if not reuse:
        upgrade = generate(con, args.contacts, args.events)
        if args.db is not None:
            con.execute("CHECKPOINT")
    n_c, n_e, n_l = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("contacts", "events", "consent_ledger"))
    how = "reused" if reuse else (f"generated in {time.perf_counter() - t0:.1f} s, of which "
                                  f"{upgrade:.1f} s upgrading from schema version 3")
    print(f"{n_c:,} contacts, {n_e:,} events, {n_l:,} consent rows ({how}; "
          f"RSS peak {peak_mib():,.0f} MiB)")

    segs, groups = segments()
    registry = default_registry()
    sql = handwritten_sql(con)

    def engine() -> dict[str, int]:
        return evaluate(con, segs, groups, AS_OF, registry)

    def handwritten() -> None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE hw_membership AS {sql}")

    eng_s, eng_rss, hw_s, hw_rss, sizes = interleaved(engine, handwritten, args.repeat)
    mismatch = con.execute("""
        SELECT count(*) FROM ((SELECT * FROM segment_membership EXCEPT ALL SELECT * FROM hw_membership)
                              UNION ALL
                              (SELECT * FROM hw_membership EXCEPT ALL SELECT * FROM segment_membership))
    """).fetchone()[0]

    # Diff: the destination acknowledged yesterday's memberships; today's run is diffed.
    yesterday = AS_OF - timedelta(days=1)
    evaluate(con, segs, groups, yesterday, registry)
    con.execute("DELETE FROM acknowledged_memberships WHERE destination = 'bench-esp'")
    con.execute("DELETE FROM segment_snapshots WHERE run_id = 2")
    con.execute("INSERT INTO acknowledged_memberships SELECT 'bench-esp', contact_key, segment, 1, "
                "now() FROM segment_membership")
    evaluate(con, segs, groups, AS_OF, registry)

    def snap_and_diff():
        snapshot(con, 2, AS_OF)
        return diff(con, "bench-esp")

    diff_s, diff_rss, d = timed(lambda: snap_and_diff(), 1)

    total = sum(sizes.values())  # type: ignore[union-attr]
    print(f"segments: {len(segs)} ({len(RULES)} rules + 7-way group), memberships {total:,}")
    for name, n in sizes.items():  # type: ignore[union-attr]
        print(f"  {name:18} {n:>10,}")
    print(f"engine       {eng_s:6.2f} s  peak RSS {eng_rss:,.0f} MiB")
    print(f"hand-written {hw_s:6.2f} s  peak RSS {hw_rss:,.0f} MiB")
    print(f"ratio engine / hand-written: {eng_s / hw_s:.2f}x")
    print(f"memberships differing between engine and hand-written: {mismatch}")
    print(f"snapshot + diff {diff_s:6.2f} s  ({d.entries:,} entries, {d.exits:,} exits)")
    return 1 if mismatch else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Why events have no PRIMARY KEY: dedupe by anti-join vs. a (source, source_event_id) key.

Loads N events, then N more of which half are duplicates, both ways, in one process:

    python bench/event_dedupe.py --rows 2000000
"""

from __future__ import annotations

import argparse
import time

import duckdb

COLUMNS = "contact_key VARCHAR, type VARCHAR, occurred_at TIMESTAMPTZ, source VARCHAR, source_event_id VARCHAR, value DOUBLE"
BATCH = """
    CREATE OR REPLACE TEMP TABLE batch AS
    SELECT 'user' || (hash(i) % 1000000) || '@example.com' AS contact_key, 'email.sent' AS type,
           now() AS occurred_at, 'ev' || i AS source_event_id, i::DOUBLE AS value, i AS _row
    FROM range({start}, {stop}) t(i)
"""
SELECT = "SELECT contact_key, type, occurred_at, 'src', source_event_id, value FROM batch c"
DEDUPE_IN_BATCH = "QUALIFY row_number() OVER (PARTITION BY source_event_id ORDER BY _row) = 1"
STRATEGIES = {
    "primary key + ON CONFLICT": (
        ", PRIMARY KEY (source, source_event_id)",
        f"INSERT INTO events {SELECT} {DEDUPE_IN_BATCH} ON CONFLICT DO NOTHING",
    ),
    "anti-join (segsync)": (
        "",
        f"INSERT INTO events {SELECT} WHERE NOT EXISTS (SELECT 1 FROM events e "
        f"WHERE e.source = 'src' AND e.source_event_id = c.source_event_id) {DEDUPE_IN_BATCH}",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    n = parser.parse_args().rows
    print(f"{'strategy':<28} {'load N (s)':>11} {'load N, half dupes (s)':>23} rows")
    for name, (key, insert) in STRATEGIES.items():
        con = duckdb.connect()
        con.execute(f"CREATE TABLE events ({COLUMNS}{key})")
        times = []
        for start, stop in ((0, n), (n // 2, n + n // 2)):
            con.execute(BATCH.format(start=start, stop=stop))
            began = time.perf_counter()
            con.execute(insert)
            times.append(time.perf_counter() - began)
        rows = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        print(f"{name:<28} {times[0]:>11.2f} {times[1]:>23.2f} {rows}")


if __name__ == "__main__":
    main()

"""Ingestion throughput: N contacts (CSV) and M events (JSONL and CSV) into a fresh store.

Files are generated deterministically by DuckDB itself (no Python loops), then loaded through
the same path ``segsync sync`` uses (``Ingestor`` over a ``FileSlice``). Each figure is the
median of --repeat runs, each into a new store file.

    python bench/ingest.py --contacts 1000000 --events 10000000 --repeat 3
    python bench/ingest.py --contacts 200000 --events 1000000 --bad-line   # the line-by-line path
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from segsync import Batch, FileSlice, Stream
from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.store import Store
from segsync.store.ingest import Ingestor


def generate(folder: Path, contacts: int, events: int) -> dict[str, Path]:
    con = duckdb.connect()
    paths = {"contacts": folder / "contacts.csv", "events_jsonl": folder / "events.jsonl",
             "events_csv": folder / "events.csv"}
    con.execute(f"""
        COPY (
            SELECT CASE WHEN i % 50 = 0 THEN ' User' || i || '@Example.COM ' ELSE 'user' || i || '@example.com' END AS email,
                   'First' || (i % 997) AS first_name, 'Last' || (i % 1009) AS last_name,
                   (['Acme','Globex','Initech','Umbrella'])[1 + i % 4] AS company,
                   (['HR','Sales','Marketing','People','Finance'])[1 + i % 5] AS department,
                   (i % 5000)::VARCHAR AS company_size,
                   (['DE','FR','GB','US','JP'])[1 + i % 5] AS country,
                   (['silver','gold',''])[1 + i % 3] AS tier
            FROM range({contacts}) t(i)
        ) TO '{paths["contacts"]}' (HEADER, DELIMITER ',')
    """)
    event_rows = f"""
        SELECT 'user' || (hash(i) % {contacts}) || '@example.com' AS email,
               (['email.sent','email.opened','email.clicked','page.viewed','order.completed'])[1 + i % 5] AS type,
               strftime(TIMESTAMP '2024-01-01' + to_seconds((i * 7919) % 63072000), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
               'ev' || i AS id,
               CASE WHEN i % 5 = 4 THEN round((i % 50000) / 100.0, 2) END AS value,
               CASE WHEN i % 5 = 4 THEN 'EUR' END AS currency,
               CASE WHEN i % 5 = 3 THEN '/p/' || (i % 300) END AS url
        FROM range({events}) t(i)
    """
    con.execute(f"COPY ({event_rows}) TO '{paths['events_jsonl']}' (FORMAT json)")
    con.execute(f"COPY ({event_rows}) TO '{paths['events_csv']}' (HEADER)")
    con.close()
    return paths


def load(store_path: Path, stream: Stream, file: FileSlice) -> tuple[float, int, int]:
    with Store(store_path) as store:
        ingestor = Ingestor(store.con, connection="bench", run_id=None, event_types=EVENT_TYPES)
        started = time.perf_counter()
        with store.transaction():
            result = ingestor.ingest(Batch(stream, None, file=file))
        return time.perf_counter() - started, result.loaded, result.rejected


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bad-line", action="store_true",
                        help="end each file with one line that is not UTF-8: the line-by-line path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="segsync-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        paths = generate(folder, args.contacts, args.events)
        if args.bad_line:
            for path in paths.values():
                with path.open("ab") as handle:
                    handle.write(b"bad\xff\n")
        expected_rejected = 1 if args.bad_line else 0
        print(f"generated in {time.perf_counter() - started:.1f}s: "
              + ", ".join(f"{k} {p.stat().st_size / 1e6:.0f} MB" for k, p in paths.items()))
        cases = [
            ("contacts (CSV)", Stream.CONTACTS, FileSlice(paths["contacts"], "csv"), args.contacts),
            ("events (JSONL)", Stream.EVENTS, FileSlice(paths["events_jsonl"], "jsonl"), args.events),
            ("events (CSV)", Stream.EVENTS, FileSlice(paths["events_csv"], "csv"), args.events),
        ]
        print(f"{'case':<16} {'rows':>11} {'median s':>9} {'rows/s':>11}  runs")
        for name, stream, file, rows in cases:
            times = []
            for run in range(args.repeat):
                store_path = folder / f"store-{name[:6]}-{run}.duckdb"
                seconds, loaded, rejected = load(store_path, stream, file)
                assert rejected == expected_rejected, f"{name}: {rejected} rejected"
                times.append(seconds)
                store_path.unlink()
            median = statistics.median(times)
            print(f"{name:<16} {loaded:>11,} {median:>9.2f} {rows / median:>11,.0f}  "
                  + " ".join(f"{t:.2f}" for t in times))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the process: {peak:.0f} MiB; python {sys.version.split()[0]}, duckdb {duckdb.__version__}")


if __name__ == "__main__":
    main()

"""Ingestion throughput and memory: N contacts (CSV) and M events (JSONL and CSV) into a fresh
store.

Files are generated deterministically by DuckDB itself (no Python loops), then loaded through
the same path ``segsync sync`` uses (``Ingestor`` over a ``FileSlice``). Each load runs in a
fresh interpreter into a new store file, so each case has its own peak RSS (``ru_maxrss`` of
that process: Python, DuckDB's buffers and whatever the load stages). Figures are medians of
--repeat runs.

    python bench/ingest.py --contacts 1000000 --events 10000000 --repeat 3
    python bench/ingest.py --contacts 200000 --events 1000000 --bad-line   # the line-by-line path
    python bench/ingest.py --events 10000000 --baseline <checkout>/core     # another revision, in turn

``--baseline`` loads every case with another revision's core too (its ``core`` folder, e.g. from
``git archive <commit> core``), one run of each in turn so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


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


def load(store_path: Path, stream_name: str, path: Path, fmt: str) -> dict:
    """One load in this process (the subprocess side)."""
    from segsync import Batch, FileSlice, Stream
    from segsync.default_plugins.event_types import EVENT_TYPES
    from segsync.store import Store
    from segsync.store.ingest import Ingestor

    try:  # the memory limit `segsync sync` sets (a revision from before it has none)
        from segsync.config import DEFAULT_MEMORY_LIMIT
        store = Store(store_path, memory_limit=DEFAULT_MEMORY_LIMIT)
    except ImportError:
        store = Store(store_path)
    with store:
        ingestor = Ingestor(store.con, connection="bench", run_id=None, event_types=EVENT_TYPES)
        started = time.perf_counter()
        with store.transaction():
            result = ingestor.ingest(Batch(Stream(stream_name), None, file=FileSlice(path, fmt)))
        seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "loaded": result.loaded, "rejected": result.rejected,
            "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}


def in_subprocess(core: str | None, store_path: Path, stream_name: str, path: Path, fmt: str) -> dict:
    env = dict(os.environ)
    if core:
        env["PYTHONPATH"] = core
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(store_path), stream_name, str(path), fmt],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    store_path.unlink(missing_ok=True)
    return json.loads(out)


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        store_path, stream_name, path, fmt = sys.argv[2:6]
        print(json.dumps(load(Path(store_path), stream_name, Path(path), fmt)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bad-line", action="store_true",
                        help="end each file with one line that is not UTF-8: the line-by-line path")
    parser.add_argument("--baseline", help="another revision's core folder, measured in turn")
    parser.add_argument("--cases", default="contacts,jsonl,csv", help="which loads to run")
    args = parser.parse_args()
    revisions = {"this": None, **({"baseline": args.baseline} if args.baseline else {})}
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
        cases = {
            "contacts": ("contacts (CSV)", "contacts", paths["contacts"], "csv", args.contacts),
            "jsonl": ("events (JSONL)", "events", paths["events_jsonl"], "jsonl", args.events),
            "csv": ("events (CSV)", "events", paths["events_csv"], "csv", args.events),
        }
        print(f"{'revision':<9} {'case':<16} {'rows':>11} {'median s':>9} {'rows/s':>11} {'peak MiB':>9} {'CPU s':>8}  runs (s)")
        medians: dict[tuple[str, str], float] = {}
        for key in args.cases.split(","):
            name, stream_name, path, fmt, rows = cases[key]
            runs: dict[str, list[dict]] = {revision: [] for revision in revisions}
            for run in range(args.repeat):
                for revision, core in revisions.items():
                    figures = in_subprocess(core, folder / f"store-{run}.duckdb", stream_name, path, fmt)
                    assert figures["rejected"] == expected_rejected, f"{name}: {figures['rejected']} rejected"
                    runs[revision].append(figures)
            for revision, figures in runs.items():
                median = statistics.median(f["seconds"] for f in figures)
                medians[revision, key] = median
                peak = statistics.median(f["peak_rss_mib"] for f in figures)
                cpu = statistics.median(f.get("cpu", 0) for f in figures)
                print(f"{revision:<9} {name:<16} {figures[0]['loaded']:>11,} {median:>9.2f} {rows / median:>11,.0f} "
                      f"{peak:>9,.0f} {cpu:>8.1f}  " + " ".join(f"{f['seconds']:.2f}" for f in figures), flush=True)
        for revision in revisions:
            if (revision, "jsonl") in medians and (revision, "csv") in medians:
                print(f"{revision}: JSONL / CSV = {medians[revision, 'jsonl'] / medians[revision, 'csv']:.2f}")
    print(f"python {sys.version.split()[0]}, duckdb {duckdb.__version__}, load {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Benchmark: what the transfer's high-water mark costs a sync on PostgreSQL (docs/scale.md#a-sync-on-an-external-engine).

Before appending, each sync reads, per table it writes (events, consent ledger), whether the
engine's table holds rows, its ``max(run_id)`` and the count of that run's rows, and compares
the count with the store (segsync.engines.transfer._runs_lacking). Here: ``--events`` rows
over ten runs appended to two schemas of one throwaway local cluster (plugins/postgres), one
with the ``run_id`` index segsync creates and one without it; the mark is read on each,
taking turns (the order rotates each round), medians of ``--repeat`` runs after one warm-up.
Wall seconds and CPU seconds (this process plus the PostgreSQL backend and its parallel
workers) are printed: under a shared machine's load, CPU seconds are the steadier figure.

Usage::

    python bench/transfer_marks.py --events 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines import Meter, backend_meter, own_meter, turns  # noqa: E402  (the shared meters)

from segsync.engines.layout import CANONICAL_TABLES  # noqa: E402
from segsync.engines.transfer import _runs_lacking  # noqa: E402
from segsync.store import Store  # noqa: E402
from segsync_postgres.cluster import LocalCluster  # noqa: E402
from segsync_postgres.engine import PostgresEngine, PostgresSettings  # noqa: E402

RUNS = 10
AT = datetime(2024, 1, 1, tzinfo=timezone.utc)


def rows(n: int, run: int | None = None):
    columns = list(CANONICAL_TABLES["events"])
    for i in range(n):
        r = run if run is not None else 1 + i * RUNS // n
        values = {"contact_key": f"p{i % 50_000}@example.com", "contact_id": i % 50_000,
                  "type": "email.opened", "occurred_at": AT, "source": "bench",
                  "source_event_id": str(i), "properties": "{}", "run_id": r}
        yield tuple(values.get(c) for c in columns)


def both(meters: tuple[Meter, Meter]) -> Meter:
    return Meter(lambda: [m.reset() for m in meters], lambda: max(m.peak() for m in meters),
                 lambda: sum(m.cpu() for m in meters))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as folder:
        cluster = LocalCluster(Path(folder) / "pg")
        cluster.start()
        try:
            store = Store(":memory:")
            latest = args.events - (RUNS - 1) * args.events // RUNS  # rows of run 10
            columns = list(CANONICAL_TABLES["events"])
            sides = {}
            for name in ("with index", "without index"):
                engine = PostgresEngine(PostgresSettings(url=cluster.url, schema_name=name.replace(" ", "_")),
                                        Path(folder))
                engine.open()
                engine.create_tables()
                if name == "without index":
                    engine.execute("DROP INDEX events_run_id")
                t0 = time.perf_counter()
                engine.append("events", columns, rows(args.events))
                engine.execute("ANALYZE events")
                print(f"{name}: {args.events} events appended in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr)
                pid = engine.rows("SELECT pg_backend_pid()")[0][0]
                sides[name] = ((lambda e=engine: _runs_lacking(store.con, e, "events")),
                               both((own_meter(), backend_meter(pid))))
            # The store holds run 10's rows too, so the mark finds nothing missing.
            store.con.execute(f"INSERT INTO events (contact_key, contact_id, type, occurred_at, source, "
                              f"source_event_id, campaign_key, run_id) SELECT 'x', 1, 'email.opened', "
                              f"TIMESTAMPTZ '2024-01-01', 'bench', i::VARCHAR, 'bench', {RUNS} "
                              f"FROM range({latest}) t(i)")
            figures = turns(sides, args.repeat)
            print(f"load average at end: {os.getloadavg()}")
            print("| events on the engine | mark with the run_id index: wall s (CPU s) | without: wall s (CPU s) | ratio (CPU) |")
            w, wo = figures["with index"], figures["without index"]
            assert w.result == wo.result == RUNS + 1, (w.result, wo.result)
            print(f"| {args.events:,} | {w.wall:.3f} ({w.cpu:.3f}) | {wo.wall:.3f} ({wo.cpu:.3f}) | "
                  f"{wo.cpu / w.cpu if w.cpu else float('inf'):.1f} |")
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

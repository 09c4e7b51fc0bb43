"""Benchmark: segment evaluation and effective consent per engine (DuckDB, PostgreSQL).

The data is bench/segments_eval.py's synthetic store (same generator, same 12 rules plus a
7-way exclusive group), built in DuckDB, then appended to PostgreSQL the way a sync appends
ingested rows (segsync.engines.transfer: COPY). Per size, in one process:

1. the append to PostgreSQL (COPY) and ANALYZE, timed once;
2. evaluation of every segment on each engine (the engine's own ``evaluate``: memberships into
   its table), engines taking turns (DuckDB first, then PostgreSQL first, …), medians of
   ``--repeat`` runs after one untimed warm-up each; both must give identical memberships;
3. effective consent (default policy) on each engine, likewise.

Peak memory: DuckDB runs in this process (VmHWM, reset before each run); PostgreSQL's is its
backend process's high-water mark (``pg_backend_pid()``, /proc; reset likewise; needs the
server on this machine, as the throwaway cluster is). Sizes scale events with contacts (20 per
contact).

Usage::

    python bench/engines.py --contacts 100000 300000 1000000 --repeat 3
    python bench/engines.py --contacts 100000 --url postgresql://me@127.0.0.1:5432/bench

Without ``--url`` a throwaway local cluster (plugins/postgres) is started and removed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import segments_eval  # noqa: E402  (the shared generator and rules)
from segments_eval import AS_OF, generate, peak_mib, reset_peak  # noqa: E402

from segsync.consent.policies import DEFAULT  # noqa: E402
from segsync.engines.duckdb import DuckDBEngine  # noqa: E402
from segsync.engines.transfer import transfer  # noqa: E402
from segsync.segments import default_registry  # noqa: E402
from segsync.segments.query import build_query  # noqa: E402
from segsync.store import Store  # noqa: E402
from segsync_postgres.cluster import LocalCluster  # noqa: E402
from segsync_postgres.engine import PostgresEngine, PostgresSettings  # noqa: E402


def backend_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def backend_reset(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def measure(fn, reset, peak) -> tuple[float, float, object]:
    reset()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, peak(), result


def turns(sides: dict, repeat: int) -> dict[str, tuple[float, float, object]]:
    """name -> (median seconds, max peak MiB, last result); one warm-up each, then taking turns."""
    for fn, _, _ in sides.values():
        fn()
    runs: dict[str, list] = {name: [] for name in sides}
    names = list(sides)
    for n in range(repeat):
        for name in names if n % 2 == 0 else names[::-1]:
            runs[name].append(measure(*sides[name]))
    return {name: (statistics.median(r[0] for r in rs), max(r[1] for r in rs), rs[-1][2])
            for name, rs in runs.items()}


def one_size(n: int, url: str, repeat: int, out) -> None:
    store = Store(":memory:", migrations=())
    t0 = time.perf_counter()
    generate(store.con, n, n * 20)
    gen_s = time.perf_counter() - t0
    segs, groups = segments_eval.segments()
    registry = default_registry()
    schema = f"bench_{n}"
    with DuckDBEngine(DuckDBEngine.Settings(), Path("."), store=store) as duck, \
            PostgresEngine(PostgresSettings(url=url, schema_name=schema), Path(".")) as pg:
        pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        pg.execute(f"CREATE SCHEMA {schema}")
        pg.create_tables()
        t0 = time.perf_counter()
        sent = transfer(store.con, pg)
        pg.execute("ANALYZE")
        copy_s = time.perf_counter() - t0
        pid = pg.rows("SELECT pg_backend_pid()")[0][0]
        queries = {e.name: build_query(segs, groups, AS_OF, registry, dialect=e.dialect) for e in (duck, pg)}
        evaluation = turns({
            "duckdb": (lambda: duck.evaluate(queries["duckdb"]), reset_peak, peak_mib),
            "postgres": (lambda: pg.evaluate(queries["postgres"]), lambda: backend_reset(pid),
                         lambda: backend_peak_mib(pid)),
        }, repeat)
        same = duck.members() == pg.members()
        consent = turns({
            "duckdb": (lambda: duck.effective_consent(DEFAULT, as_of=AS_OF, clock_skew=timedelta(minutes=5)),
                       reset_peak, peak_mib),
            "postgres": (lambda: pg.effective_consent(DEFAULT, as_of=AS_OF, clock_skew=timedelta(minutes=5)),
                         lambda: backend_reset(pid), lambda: backend_peak_mib(pid)),
        }, repeat)
        same_consent = consent["duckdb"][2] == consent["postgres"][2]
        pg.execute(f"DROP SCHEMA {schema} CASCADE")
    store.close()
    d, p = evaluation["duckdb"], evaluation["postgres"]
    cd, cp = consent["duckdb"], consent["postgres"]
    line = (f"| {n:,} | {n * 20:,} | {gen_s:.1f} | {copy_s:.1f} ({sum(sent.values()):,} rows) | "
            f"{d[0]:.2f} / {d[1]:.0f} | {p[0]:.2f} / {p[1]:.0f} | {p[0] / d[0]:.2f} | "
            f"{cd[0]:.2f} | {cp[0]:.2f} | {'yes' if same and same_consent else 'NO'} | "
            f"{os.getloadavg()[0]:.1f} |")
    print(line, file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", help="an existing PostgreSQL (default: a throwaway local cluster)")
    args = parser.parse_args(argv)
    print(f"command: python bench/engines.py {' '.join(argv or sys.argv[1:])}")
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    print("| contacts | events | generate s | COPY to PostgreSQL s | DuckDB eval s / peak MiB | "
          "PostgreSQL eval s / backend peak MiB | PG/DuckDB | DuckDB consent s | PG consent s | "
          "identical | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    cluster = None
    url = args.url
    if url is None:
        cluster = LocalCluster()
        url = cluster.start()
    try:
        for n in args.contacts:
            one_size(n, url, args.repeat, sys.stdout)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the Spark engine (local mode) beside the embedded DuckDB store, same data and rules.

The companion of ``engines.py`` (DuckDB and PostgreSQL), with its measuring helpers: the data is
``segments_eval.py``'s synthetic store (same generator, same rules and 7-way group), built in
DuckDB, then exported to Parquet folders: the lakehouse a Spark user already has. The Spark
engine reads them in place through ``[store.tables]`` (``parquet:PATH``: nothing is copied
into segsync's tables). Per size, in one process:

1. one sync's round on each engine: evaluate every segment (memberships into the engine's
   table), snapshot them, and the membership changes against the previous day's snapshot (the
   only rows that come back); engines taking turns (DuckDB first, then Spark first, …), medians
   of ``--repeat`` rounds after one untimed warm-up each; both must give identical sizes and
   changes;
2. effective consent (default policy) on each engine, likewise; identical rows required.

Peak memory is the high-water RSS (VmHWM, reset before each run) of this process and, for
Spark, of its JVM too (local mode: a child process). The load average is printed per size: the
machine is shared.

Usage::

    python bench/engines_spark.py --contacts 100000 --repeat 3
    python bench/engines_spark.py --contacts 100000 1000000 --repeat 1 --master local[2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import segments_eval  # noqa: E402  (the shared generator and rules)
from engines import turns  # noqa: E402  (the shared measuring)
from segments_eval import AS_OF, generate, peak_mib, reset_peak  # noqa: E402

from segsync.consent.policies import DEFAULT  # noqa: E402
from segsync.engines import CANONICAL_TABLES, USER_TABLES  # noqa: E402
from segsync.engines.duckdb import DuckDBEngine  # noqa: E402
from segsync.engines.transfer import JSON_COLUMNS  # noqa: E402
from segsync.segments import default_registry  # noqa: E402
from segsync.segments.query import build_query  # noqa: E402
from segsync.store import Store  # noqa: E402
from segsync_spark.engine import SparkEngine, SparkSettings  # noqa: E402


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def jvm_pids() -> list[int]:
    """Java processes under this one (local mode: the JVM spark-submit started)."""
    out, todo = [], _children(os.getpid())
    while todo:
        pid = todo.pop()
        todo += _children(pid)
        try:
            if b"java" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                out.append(pid)
        except OSError:
            pass
    return out


def reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peaks_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def export(store: Store, folder: Path) -> dict[str, str]:
    """The store's user tables as Parquet folders; the [store.tables] mapping onto them."""
    tables = {}
    folder.mkdir(parents=True)
    for table in USER_TABLES:
        cols = ", ".join(f"{c}::VARCHAR AS {c}" if (table, c) in JSON_COLUMNS else c
                         for c in CANONICAL_TABLES[table])
        target = folder / table
        store.con.execute(f"COPY (SELECT {cols} FROM {table}) TO '{target}' "
                          "(FORMAT parquet, PER_THREAD_OUTPUT true)")
        tables[table] = f"parquet:{target}"
    return tables


def one_size(n: int, master: str, repeat: int, out) -> None:
    work = Path(tempfile.mkdtemp(prefix="segsync-bench-spark-"))
    store = Store(":memory:", migrations=())
    t0 = time.perf_counter()
    generate(store.con, n, n * 20)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables = export(store, work / "lake")
    export_s = time.perf_counter() - t0
    segs, groups = segments_eval.segments()
    registry = default_registry()
    yesterday = AS_OF - timedelta(days=1)
    settings = SparkSettings(master=master, location=str(work / "spark-tables"), tables=tables)
    with DuckDBEngine(DuckDBEngine.Settings(), work, store=store) as duck, \
            SparkEngine(settings, work) as spark:
        spark.create_tables()
        pids = [os.getpid(), *jvm_pids()]
        runs = iter(range(2, 10_000))
        queries = {}
        for e in (duck, spark):  # the previous day's run, snapshot 1
            queries[e.name] = build_query(segs, groups, AS_OF, registry, dialect=e.dialect)
            e.evaluate(build_query(segs, groups, yesterday, registry, dialect=e.dialect))
            e.snapshot(1, yesterday)

        def sync_round(engine):
            def run():
                sizes = engine.evaluate(queries[engine.name])
                engine.snapshot(next(runs), AS_OF)
                return sizes, engine.membership_changes(1)
            return run

        rounds = turns({
            "duckdb": (sync_round(duck), reset_peak, peak_mib),
            "spark": (sync_round(spark), lambda: reset_peaks(pids), lambda: peaks_mib(pids)),
        }, repeat)
        same = rounds["duckdb"][2] == rounds["spark"][2]

        def consent(engine):
            return lambda: engine.effective_consent(DEFAULT, as_of=AS_OF, clock_skew=timedelta(minutes=5))

        consents = turns({
            "duckdb": (consent(duck), reset_peak, peak_mib),
            "spark": (consent(spark), lambda: reset_peaks(pids), lambda: peaks_mib(pids)),
        }, repeat)
        same_consent = consents["duckdb"][2] == consents["spark"][2]
        changes = len(rounds["duckdb"][2][1])
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    d, s = rounds["duckdb"], rounds["spark"]
    cd, cs = consents["duckdb"], consents["spark"]
    line = (f"| {n:,} | {n * 20:,} | {gen_s:.1f} + {export_s:.1f} | {changes:,} | "
            f"{d[0]:.2f} / {d[1]:.0f} | {s[0]:.2f} / {s[1]:.0f} | {s[0] / d[0]:.1f} | "
            f"{cd[0]:.2f} / {cd[1]:.0f} | {cs[0]:.2f} / {cs[1]:.0f} | "
            f"{'yes' if same and same_consent else 'NO'} | {os.getloadavg()[0]:.1f} |")
    print(line, file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)
    print(f"command: python bench/engines_spark.py {' '.join(argv or sys.argv[1:])}")
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}, Spark {args.master}")
    print("| contacts | events | generate + export to Parquet s | changes | "
          "DuckDB round s / peak MiB | Spark round s / peak MiB (Python + JVM) | Spark/DuckDB | "
          "DuckDB consent s / MiB | Spark consent s / MiB | identical | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.contacts:
        one_size(n, args.master, args.repeat, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

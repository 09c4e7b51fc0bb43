"""Benchmark: the Spark engine (local mode) against the embedded DuckDB store, same data and rules.

The store is generated as in ``segments_eval.py`` (deterministic, in DuckDB), then exported to
Parquet folders: the lakehouse a Spark user already has. The Spark engine reads them in place
through ``[store.tables]`` (``parquet:PATH``; nothing is copied into segsync's tables) and runs
one round of what a sync asks of it: evaluate every segment (11 rules + a 7-way group) into
``segment_membership``, snapshot it, and the membership changes against the previous day's
snapshot (the only rows that come back). The DuckDB side runs the same round on the store
(``evaluate``, ``snapshot``, ``diff`` against yesterday's acknowledged memberships).

Both run once untimed, then take turns ``--repeat`` times (DuckDB first, then Spark first, …);
times are medians. Peak memory is the high-water RSS (VmHWM, reset before each measured round)
of this process plus, for Spark, of its JVM (a child process in local mode). The load average
is printed before and after: the machine is shared.

Usage::

    python bench/spark_engine.py --contacts 100000 --events 2000000 --repeat 3
    python bench/spark_engine.py --contacts 1000000 --events 20000000 --repeat 1 --master local[2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[0] / "core"))

from segments_eval import AS_OF, generate, segments  # noqa: E402

from segsync.engines import USER_TABLES  # noqa: E402
from segsync.segments import default_registry, diff, evaluate, snapshot  # noqa: E402
from segsync.segments.query import build_query  # noqa: E402
from segsync_spark.engine import SparkEngine, SparkSettings  # noqa: E402

JSON_COLUMNS = {("contacts", "custom"), ("events", "properties")}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


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
    """Java processes under this one (local mode: spark-submit's JVM)."""
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


def reset_peak(pids: list[int]) -> None:
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def export(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, str]:
    """The store's user tables as Parquet folders; the [store.tables] mapping onto them."""
    from segsync.engines import CANONICAL_TABLES

    tables = {}
    for table in USER_TABLES:
        cols = ", ".join(f"{c}::VARCHAR AS {c}" if (table, c) in JSON_COLUMNS else c
                         for c in CANONICAL_TABLES[table])
        target = folder / table
        target.mkdir(parents=True)
        con.execute(f"COPY (SELECT {cols} FROM {table}) TO '{target}' "
                    "(FORMAT parquet, PER_THREAD_OUTPUT true)")
        tables[table] = f"parquet:{target}"
    return tables


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--repeat", type=int, default=3, help="rounds per side (median)")
    args = p.parse_args(argv)

    print(f"duckdb {duckdb.__version__}, python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"DuckDB {args.threads} threads, Spark {args.master}; {load()}")
    work = Path(tempfile.mkdtemp(prefix="segsync-bench-spark-"))
    con = duckdb.connect(str(work / "store.duckdb"), config={"threads": args.threads})
    con.execute("SET TimeZone = 'UTC'")
    t0 = time.perf_counter()
    generate(con, args.contacts, args.events)
    tables = export(con, work / "lake")
    n_c, n_e, n_l = (con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in USER_TABLES)
    print(f"{n_c:,} contacts, {n_e:,} events, {n_l:,} consent rows "
          f"(generated and exported to Parquet in {time.perf_counter() - t0:.1f} s)")

    segs, groups = segments()
    registry = default_registry()
    yesterday = AS_OF - timedelta(days=1)

    # DuckDB: yesterday's memberships acknowledged by a destination, then today's round.
    evaluate(con, segs, groups, yesterday, registry)
    con.execute("INSERT INTO acknowledged_memberships SELECT 'bench-esp', contact_key, segment, 1, "
                "now() FROM segment_membership")
    runs = iter(range(2, 10_000))

    def duckdb_round():
        sizes = evaluate(con, segs, groups, AS_OF, registry)
        snapshot(con, next(runs), AS_OF)
        d = diff(con, "bench-esp")
        return sizes, d.entries + d.exits

    settings = SparkSettings(master=args.master, location=str(work / "spark-tables"), tables=tables)
    spark_engine = SparkEngine(settings, work)
    t0 = time.perf_counter()
    spark_engine.open()
    print(f"Spark session started and tables registered in {time.perf_counter() - t0:.1f} s")
    query_yesterday = build_query(segs, groups, yesterday, registry, dialect="spark")
    query_today = build_query(segs, groups, AS_OF, registry, dialect="spark")
    spark_engine.evaluate(query_yesterday)
    spark_engine.snapshot(1, yesterday)
    spark_runs = iter(range(2, 10_000))

    def spark_round():
        sizes = spark_engine.evaluate(query_today)
        spark_engine.snapshot(next(spark_runs), AS_OF)
        return sizes, len(spark_engine.membership_changes(1))

    pids = {"duckdb": [os.getpid()], "spark": [os.getpid(), *jvm_pids()]}
    print(f"JVM processes: {pids['spark'][1:] or 'none found'}")
    results = {"duckdb": duckdb_round(), "spark": spark_round()}  # warm-up, untimed
    same = results["duckdb"] == results["spark"]
    times: dict[str, list[float]] = {"duckdb": [], "spark": []}
    peaks: dict[str, float] = {"duckdb": 0.0, "spark": 0.0}
    rounds = {"duckdb": duckdb_round, "spark": spark_round}
    print(f"before the measured rounds: {load()}")
    for n in range(args.repeat):
        order = ["duckdb", "spark"] if n % 2 == 0 else ["spark", "duckdb"]
        for name in order:
            reset_peak(pids[name])
            t0 = time.perf_counter()
            result = rounds[name]()
            times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks[name], peak_mib(pids[name]))
            same = same and result == results["duckdb"]
    print(f"after: {load()}")
    sizes, changes = results["duckdb"]
    print(f"segments {len(segs)}, memberships {sum(sizes.values()):,}, changes vs yesterday {changes:,}")
    for name in ("duckdb", "spark"):
        print(f"{name:7} evaluate + snapshot + diff: median {statistics.median(times[name]):7.2f} s "
              f"(runs {', '.join(f'{t:.2f}' for t in times[name])}), peak RSS {peaks[name]:,.0f} MiB"
              + (" (Python + JVM)" if name == "spark" else ""))
    print(f"ratio spark / duckdb: {statistics.median(times['spark']) / statistics.median(times['duckdb']):.2f}x")
    print(f"same memberships and changes on both: {same}")
    spark_engine.close()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

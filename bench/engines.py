"""Benchmark: segment evaluation and effective consent per engine (DuckDB, PostgreSQL, Spark).

The data is bench/segments_eval.py's synthetic store (same generator, same 11 rules plus a
7-way exclusive group; 20 events per contact), generated once per size in DuckDB and kept
under ``--dir`` (a DuckDB file, Parquet folders for Spark, CSV files for PostgreSQL), so a
rerun reads it instead of generating it again. Per size, in one process:

1. the embedded store (DuckDB, in memory) is filled from the cache; PostgreSQL (``COPY`` of the
   CSV files, then ``ANALYZE``; timed once) and Spark (reading the Parquet folders in place
   through ``[store.tables]``: the lakehouse case, nothing copied) are made ready;
2. evaluation of every segment on each engine (the engine's own ``evaluate``: memberships into
   its ``segment_membership``), engines taking turns (the order rotates each round), medians of
   ``--repeat`` runs after one untimed warm-up each (none with ``--no-warm-up``);
3. effective consent (default policy) on each engine, likewise;
4. the memberships and the consent rows of every engine are compared with DuckDB's row by row
   ("identical"): PostgreSQL's memberships are fetched; Spark's (its session's cached view)
   are written to a scratch Parquet folder that DuckDB reads (nothing big is collected to
   Spark's driver).

Wall seconds and CPU seconds are both printed (under a shared machine's load, CPU seconds are
the steadier figure). CPU: DuckDB, this process; PostgreSQL, its backend plus the parallel
workers it started (reaped by the postmaster); Spark, its JVM plus this process. Peak memory
(high-water RSS, VmHWM, reset before each run): DuckDB, this process (the in-memory store's
data included); PostgreSQL, its backend (shared buffers it touched included, workers not);
Spark, its JVM (local mode: the driver, which is also the executor) plus what this process
grew by (the rows collected through the gateway).

Spark runs with ``--master`` (default ``local[2]``) and ``--spark-conf KEY=VALUE`` settings on
top of the plugin's local defaults; the defaults here are ``spark.driver.memory=4g`` (the JVM's
heap; Spark's 1g default was not tried at 1M contacts) and the plugin's 4 shuffle partitions
with adaptive execution (docs/scale.md#spark).

Usage::

    python bench/engines.py --contacts 100000 300000 --repeat 3 --dir DIR
    python bench/engines.py --contacts 1000000 --repeat 1 --no-warm-up --engines duckdb spark --dir DIR
    python bench/engines.py --contacts 100000 --url postgresql://me@127.0.0.1:5432/bench

Without ``--url`` a throwaway local PostgreSQL cluster (plugins/postgres) is started and
removed; without ``--dir`` the data is generated into a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import segments_eval  # noqa: E402  (the shared generator and rules)
from segments_eval import AS_OF, generate  # noqa: E402

from segsync.consent.policies import DEFAULT  # noqa: E402
from segsync.engines import CANONICAL_TABLES, USER_TABLES  # noqa: E402
from segsync.engines.duckdb import DuckDBEngine  # noqa: E402
from segsync.engines.transfer import JSON_COLUMNS, copy_state  # noqa: E402
from segsync.segments import default_registry  # noqa: E402
from segsync.segments.query import build_query  # noqa: E402
from segsync.store import Store  # noqa: E402

ENGINES = ("duckdb", "postgres", "spark")
SPARK_CONF = {"spark.driver.memory": "4g"}
TICK = os.sysconf("SC_CLK_TCK")


# -- processes: peak memory and CPU from /proc ---------------------------------------------

def _status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _stat(pid: int | str) -> list[str]:
    # Fields after the command name (which may hold spaces): state, ppid, …; utime is [11].
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_s(pid: int | str, *, children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (with ``children``: of its reaped children)."""
    f = _stat(pid)
    return (int(f[13]) + int(f[14]) if children else int(f[11]) + int(f[12])) / TICK


def reset_peak(pid: int | str) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(entry.name)[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
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


@dataclass
class Meter:
    """How one engine's runs are measured: peak memory (MiB) and CPU seconds."""

    reset: Callable[[], None]
    peak: Callable[[], float]
    cpu: Callable[[], float]


def own_meter() -> Meter:
    return Meter(lambda: reset_peak("self"), lambda: _status_kib("self", "VmHWM") / 1024,
                 time.process_time)


def backend_meter(pid: int) -> Meter:
    postmaster = int(_stat(pid)[1])
    return Meter(lambda: reset_peak(pid), lambda: _status_kib(pid, "VmHWM") / 1024,
                 lambda: cpu_s(pid) + cpu_s(postmaster, children=True))


def jvm_meter(jvms: list[int]) -> Meter:
    rss_at_reset = [0]

    def reset() -> None:
        for pid in [*jvms, "self"]:
            reset_peak(pid)
        rss_at_reset[0] = _status_kib("self", "VmRSS")

    def peak() -> float:
        grown = _status_kib("self", "VmHWM") - rss_at_reset[0]
        return (sum(_status_kib(pid, "VmHWM") for pid in jvms) + max(grown, 0)) / 1024

    return Meter(reset, peak, lambda: sum(cpu_s(pid) for pid in jvms) + time.process_time())


@dataclass
class Figures:
    wall: float  # median seconds
    cpu: float  # median CPU seconds
    peak: float  # max MiB
    result: object  # of the last run

    def cell(self) -> str:
        return f"{self.wall:.2f} ({self.cpu:.1f}) / {self.peak:.0f}"


def progress(what: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def measure(fn: Callable[[], object], meter: Meter) -> tuple[float, float, float, object]:
    meter.reset()
    c0, t0 = meter.cpu(), time.perf_counter()
    result = fn()
    wall, cpu = time.perf_counter() - t0, meter.cpu() - c0
    return wall, cpu, meter.peak(), result


def turns(sides: dict[str, tuple[Callable[[], object], Meter]], repeat: int,
          warm_up: bool = True) -> dict[str, Figures]:
    """One untimed warm-up each (unless not ``warm_up``), then ``repeat`` rounds with the
    engines' order rotating."""
    for name, (fn, _) in sides.items() if warm_up else ():
        t0 = time.perf_counter()
        fn()
        progress(f"warm-up {name} {time.perf_counter() - t0:.1f} s")
    runs: dict[str, list] = {name: [] for name in sides}
    names = list(sides)
    for n in range(repeat):
        for name in names[n % len(names):] + names[:n % len(names)]:
            runs[name].append(measure(*sides[name]))
            progress(f"{name} {runs[name][-1][0]:.1f} s (CPU {runs[name][-1][1]:.1f} s)")
    return {name: Figures(statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs),
                          max(r[2] for r in rs), rs[-1][3]) for name, rs in runs.items()}


# -- the data, generated once per size -------------------------------------------------------

def _columns(table: str) -> str:
    return ", ".join(f"{c}::VARCHAR AS {c}" if (table, c) in JSON_COLUMNS else c
                     for c in CANONICAL_TABLES[table])


def _once(target: Path, make: Callable[[Path], None]) -> Path:
    """``target`` made by ``make`` into a scratch name, then renamed: a cache entry is whole."""
    if not target.exists():
        scratch = target.with_name(target.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        if scratch.exists():
            scratch.unlink()
        make(scratch)
        scratch.rename(target)
    return target


class Data:
    """One size's data under ``folder``: the store (DuckDB file), Parquet folders, CSV files."""

    def __init__(self, folder: Path, contacts: int) -> None:
        self.folder = folder / f"{contacts}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.contacts = contacts
        self.generate_s: float | None = None  # None: read from the cache

    def store(self) -> Store:
        """The embedded store, in memory, filled from the cached file (generated when missing)."""
        store = Store(":memory:", migrations=())

        def make(path: Path) -> None:
            t0 = time.perf_counter()
            generate(store.con, self.contacts, self.contacts * 20)
            self.generate_s = time.perf_counter() - t0
            store.con.execute(f"ATTACH '{path}' AS cache")
            store.con.execute("COPY FROM DATABASE memory TO cache")
            store.con.execute("DETACH cache")

        path = self.folder / "store.duckdb"
        if path.exists():
            store.con.execute(f"ATTACH '{path}' AS cache (READ_ONLY)")
            store.con.execute("DROP TABLE schema_migrations")  # the cache's copy replaces it
            store.con.execute("COPY FROM DATABASE cache TO memory")
            store.con.execute("DETACH cache")
        else:
            _once(path, make)
        return store

    def parquet(self, store: Store) -> dict[str, str]:
        """The user tables as Parquet folders; the [store.tables] mapping onto them."""
        tables = {}
        for table in USER_TABLES:
            def make(path: Path, table: str = table) -> None:
                path.mkdir(parents=True)
                store.con.execute(f"COPY (SELECT {_columns(table)} FROM {table}) TO '{path}' "
                                  "(FORMAT parquet, PER_THREAD_OUTPUT true, OVERWRITE_OR_IGNORE)")
            tables[table] = f"parquet:{_once(self.folder / 'parquet' / table, make)}"
        return tables

    def csv(self, store: Store) -> dict[str, Path]:
        """The user tables as CSV files (canonical column order, JSON as text)."""
        (self.folder / "csv").mkdir(exist_ok=True)
        files = {}
        for table in USER_TABLES:
            def make(path: Path, table: str = table) -> None:
                store.con.execute(f"COPY (SELECT {_columns(table)} FROM {table}) TO '{path}' "
                                  "(FORMAT csv, HEADER false)")
            files[table] = _once(self.folder / "csv" / f"{table}.csv", make)
        return files


def copy_csv(pg, files: dict[str, Path]) -> int:
    """Each CSV file into its PostgreSQL table with one COPY … FROM STDIN; rows copied."""
    from psycopg import sql as pgsql

    rows = 0
    with pg.con.transaction(), pg.con.cursor() as cur:
        for table, path in files.items():
            statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                pgsql.Identifier(table),
                pgsql.SQL(", ").join(map(pgsql.Identifier, CANONICAL_TABLES[table])))
            with cur.copy(statement) as copy, path.open("rb") as f:
                while block := f.read(1 << 20):
                    copy.write(block)
            rows += cur.rowcount
    return rows


# -- one size ---------------------------------------------------------------------------------

def spark_members_differ(store: Store, spark, work: Path) -> int:
    """Rows in one membership and not the other: DuckDB's table vs Spark's (its session's
    cached view, written out to Parquet for DuckDB to read: nothing collected to the driver)."""
    folder = work / "spark-members"
    spark.spark.table("segment_membership").write.mode("overwrite").parquet(str(folder))
    files = f"{folder}/*.parquet"
    return store.con.execute(f"""
        SELECT count(*) FROM (
            (SELECT segment, contact_key FROM segment_membership
             EXCEPT ALL SELECT segment, contact_key FROM read_parquet('{files}'))
            UNION ALL
            (SELECT segment, contact_key FROM read_parquet('{files}')
             EXCEPT ALL SELECT segment, contact_key FROM segment_membership))
    """).fetchone()[0]


def one_size(n: int, args, url: str | None, folder: Path) -> str:
    load_before = os.getloadavg()
    data = Data(folder, n)
    store = data.store()
    prep = [f"generated in {data.generate_s:.1f} s" if data.generate_s is not None else "data from the cache"]
    segs, groups = segments_eval.segments()
    registry = default_registry()
    engines, meters = {}, {}
    work = Path(tempfile.mkdtemp(prefix="segsync-bench-engines-"))
    try:
        engines["duckdb"] = DuckDBEngine(DuckDBEngine.Settings(), work, store=store).__enter__()
        meters["duckdb"] = own_meter()
        if "postgres" in args.engines:
            from segsync_postgres.engine import PostgresEngine, PostgresSettings

            schema = f"bench_{n}"
            files = data.csv(store)
            pg = engines["postgres"] = PostgresEngine(
                PostgresSettings(url=url, schema_name=schema), work).__enter__()
            pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            pg.execute(f"CREATE SCHEMA {schema}")
            pg.create_tables()
            t0 = time.perf_counter()
            copied = copy_csv(pg, files)
            copy_state(store.con, pg)
            pg.execute("ANALYZE")
            prep.append(f"PostgreSQL COPY of {copied:,} rows + ANALYZE {time.perf_counter() - t0:.1f} s")
            meters["postgres"] = backend_meter(pg.rows("SELECT pg_backend_pid()")[0][0])
        if "spark" in args.engines:
            from segsync_spark.engine import SparkEngine, SparkSettings

            tables = data.parquet(store)
            settings = SparkSettings(master=args.master, location=str(work / "spark-tables"),
                                     tables=tables, conf={**SPARK_CONF, **dict(args.spark_conf)})
            t0 = time.perf_counter()
            spark = engines["spark"] = SparkEngine(settings, work).__enter__()
            spark.create_tables()
            prep.append(f"Spark session + tables {time.perf_counter() - t0:.1f} s")
            meters["spark"] = jvm_meter(jvm_pids())
        progress(f"{n:,} contacts: {'; '.join(prep)}; evaluation:")
        queries = {name: build_query(segs, groups, AS_OF, registry, dialect=e.dialect)
                   for name, e in engines.items()}
        evaluation = turns({name: (lambda e=e, q=queries[name]: e.evaluate(q), meters[name])
                            for name, e in engines.items()}, args.repeat, args.warm_up)
        differ = {"postgres": lambda: engines["postgres"].members() != engines["duckdb"].members(),
                  "spark": lambda: spark_members_differ(store, engines["spark"], work) != 0}
        same = {name: evaluation[name].result == evaluation["duckdb"].result and not differ[name]()
                for name in engines if name != "duckdb"}
        progress("effective consent:")
        consent = turns({name: (lambda e=e: e.effective_consent(
            DEFAULT, as_of=AS_OF, clock_skew=timedelta(minutes=5)), meters[name])
            for name, e in engines.items()}, args.repeat, args.warm_up)
        for name in same:
            same[name] = same[name] and consent[name].result == consent["duckdb"].result
        members = sum(evaluation["duckdb"].result.values())
        consent_rows = len(consent["duckdb"].result)
    finally:
        for e in reversed(list(engines.values())):
            if e.name == "postgres":
                e.execute(f"DROP SCHEMA IF EXISTS bench_{n} CASCADE")
            e.__exit__(None, None, None)
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    d = evaluation["duckdb"]

    def cells(figures: dict[str, Figures], name: str) -> str:
        return figures[name].cell() if name in figures else "–"

    ratios = " / ".join(f"{evaluation[e].wall / d.wall:.2f} ({evaluation[e].cpu / d.cpu:.2f})"
                        if e in evaluation else "–" for e in ENGINES[1:])
    verdict = ", ".join(f"{e} {'yes' if ok else 'NO'}" for e, ok in same.items()) or "–"
    return (f"| {n:,} | {n * 20:,} | {members:,} | {consent_rows:,} | "
            + " | ".join(cells(evaluation, e) for e in ENGINES) + f" | {ratios} | "
            + " | ".join(cells(consent, e) for e in ENGINES)
            + f" | {verdict} | {load_before[0]:.1f} → {os.getloadavg()[0]:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="measure the first run (at 1M, a warm-up costs as much as a run)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                        help="DuckDB always runs: the others are compared with it")
    parser.add_argument("--dir", type=Path, help="keep the generated data here and reuse it")
    parser.add_argument("--url", help="an existing PostgreSQL (default: a throwaway local cluster)")
    parser.add_argument("--master", default="local[2]", help="Spark's master URL")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                        type=lambda s: tuple(s.split("=", 1)),
                        help=f"a Spark setting (repeatable; defaults: {SPARK_CONF})")
    args = parser.parse_args(argv)
    args.engines = [e for e in ENGINES if e == "duckdb" or e in args.engines]
    print(f"command: python bench/engines.py {' '.join(argv or sys.argv[1:])}")
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    print("| contacts | events | memberships | consent rows | "
          + " | ".join(f"{e} eval s (CPU s) / peak MiB" for e in ENGINES)
          + " | PG/DuckDB, Spark/DuckDB wall (CPU) | "
          + " | ".join(f"{e} consent s (CPU s) / peak MiB" for e in ENGINES)
          + " | identical to DuckDB | load before → after |")
    print("|---" * 13 + "|", flush=True)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="segsync-bench-data-"))
    cluster = None
    url = args.url
    try:
        if "postgres" in args.engines and url is None:
            from segsync_postgres.cluster import LocalCluster

            cluster = LocalCluster()
            url = cluster.start()
        for n in args.contacts:
            print(one_size(n, args, url, folder), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the whole `segsync sync` from files into a files destination, at scale.

    .venv/bin/python bench/sync_whole.py [--contacts 1000000] [--events 20000000] [--dir DIR]

Generates (with DuckDB, deterministically) ``--contacts`` contacts, one consent record each
(90 % opted in by form, 10 % opted out) and ``--events`` events (opens, clicks, sends, page
views and orders over two years, skewed: contact index = N·u²) as CSV files, and a project with
five segments over them (event windows, spend, recency, an attribute) pushed as tags to one
files destination. Then runs the real command line, each in its own process:

1. the first sync (everything pulled, evaluated, one audience written);
2. a re-run with no change;
3. a run after 1 % of the contacts changed: new events for 1 % of the contacts appended to the
   events file, and a new company for another 1 % appended to the contacts file.

Printed per run: wall seconds, CPU seconds (user + system) and peak RSS of the `segsync`
process (``ru_maxrss`` from ``wait4``; CPU time says what a run costs when the machine is
shared), the run's status and what it loaded and wrote. ``--dir`` keeps the project (the generated files are reused when present).
``--breakdown`` runs each sync through ``bench/sync_breakdown.py`` instead (the same runner in
its own process, each stage timed, its peak RSS per stage) and prints the stages too.

``--baseline CHECKOUT`` measures another revision beside this one (a folder holding its
``core`` and ``connectors/files``, e.g. ``git archive <commit> core connectors/files``): a second
project next to ``--dir`` (``<dir>-baseline``, its ``data`` a link to the same files) whose runs
import that revision, each run right after this revision's, on the same input files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

CONFIG = """
[store]
path = "store.duckdb"

[connections.shop]
type = "files"
contacts = "data/contacts.csv"
consent = "data/consent.csv"
events = "data/events.csv"

[connections.upload]
type = "files"
output = "out/audience"

[[segments]]
name = "engaged"
rule = "opens(30d) >= 2"

[[segments]]
name = "clickers"
rule = "clicks(90d) >= 1"

[[segments]]
name = "buyers"
rule = "spend(365d) > 100"

[[segments]]
name = "browsers"
rule = 'visited("/pricing") and orders(90d) == 0'

[[segments]]
name = "acme"
rule = 'attr.company == "Acme"'
"""

AS_OF = "2026-01-01T00:00:00Z"


def generate(root: Path, contacts: int, events: int) -> None:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (root / "segsync.toml").write_text(CONFIG)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"""
        COPY (SELECT 'c' || i || '@example.com' AS email, 'N' || (i % 97) AS first_name,
                     (['Acme','Globex','Initech','Umbrella'])[1 + i % 4] AS company,
                     (['DE','FR','GB','US','JP'])[1 + i % 5] AS country
              FROM range({contacts}) t(i))
        TO '{data / "contacts.csv"}' (HEADER)
    """)
    con.execute(f"""
        COPY (SELECT 'c' || i || '@example.com' AS email,
                     CASE WHEN i % 10 = 0 THEN 'opted_out' ELSE 'opted_in' END AS status,
                     '2024-01-01T00:00:00Z' AS timestamp, 'form' AS method
              FROM range({contacts}) t(i))
        TO '{data / "consent.csv"}' (HEADER)
    """)
    con.execute(f"""
        COPY (SELECT email, type, timestamp, id, value, currency, url FROM (
            SELECT 'c' || floor({contacts} * pow((hash(i) % 1000003) / 1000003.0, 2))::BIGINT || '@example.com' AS email,
                   (['email.sent','email.opened','email.clicked','page.viewed','order.completed'])[1 + i % 5] AS type,
                   strftime(TIMESTAMP '2024-01-01' + to_seconds((i * 7919) % 63072000), '%Y-%m-%dT%H:%M:%SZ') AS timestamp,
                   'ev' || i AS id,
                   CASE WHEN i % 5 = 4 THEN round((i % 50000) / 100.0, 2) END AS value,
                   CASE WHEN i % 5 = 4 THEN 'EUR' END AS currency,
                   CASE WHEN i % 5 = 3 THEN (['/pricing','/compare','/'])[1 + i % 3] END AS url
            FROM range({events}) t(i)))
        TO '{data / "events.csv"}' (HEADER)
    """)
    con.close()


def change_one_percent(root: Path, contacts: int, events: int) -> None:
    """New events for 1 % of the contacts, a new company for another 1 % (appended rows)."""
    data = root / "data"
    con = duckdb.connect()
    step = 100
    rows = con.execute(f"""
        SELECT 'c' || (i * {step}) || '@example.com', 'email.opened',
               strftime(TIMESTAMP '2025-12-31 12:00:00' - to_seconds(i % 3600), '%Y-%m-%dT%H:%M:%SZ'),
               'new' || i
        FROM range({contacts // step}) t(i)
    """).fetchall()
    with (data / "events.csv").open("a") as out:
        out.writelines(f"{e},{t},{ts},{i},,,\n" for e, t, ts, i in rows)
    with (data / "contacts.csv").open("a") as out:
        out.writelines(f"c{i * step + 1}@example.com,N,Hooli,DE\n" for i in range(contacts // step))
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--dir", help="keep the project here (files reused when present)")
    parser.add_argument("--breakdown", action="store_true",
                        help="time each stage of each run (bench/sync_breakdown.py)")
    parser.add_argument("--baseline", help="another revision's checkout (core, connectors/files), measured in turn")
    args = parser.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="segsync-whole-"))
    projects = {"this": (root, None)}
    if args.baseline:
        checkout = Path(args.baseline).resolve()
        path = os.pathsep.join(str(checkout / part) for part in ("core", "connectors/files"))
        projects["baseline"] = (root.with_name(root.name + "-baseline"), path)
    try:
        sizes = root / "data" / "generated.json"
        if not sizes.exists():
            started = time.perf_counter()
            generate(root, args.contacts, args.events)
            files = sorted((root / "data").glob("*.csv"))
            sizes.write_text(json.dumps({p.name: p.stat().st_size for p in files}))
            print(f"generated in {time.perf_counter() - started:.0f} s: "
                  + ", ".join(f"{p.name} {p.stat().st_size / 1e6:,.0f} MB" for p in files))
        else:
            # A kept project: undo the rows an earlier 1 % run appended.
            for name, size in json.loads(sizes.read_text()).items():
                os.truncate(root / "data" / name, size)
        for project, _ in projects.values():
            if project != root:  # the baseline's project: this one's files
                project.mkdir(exist_ok=True)
                (project / "segsync.toml").write_text(CONFIG)
                if not (project / "data").exists():
                    (project / "data").symlink_to(root.resolve() / "data", target_is_directory=True)
            for path in (project / "store.duckdb", project / "out"):
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        print(f"load before: {os.getloadavg()}")
        for name in ("first sync", "no change", "1% changed"):
            if name == "1% changed":
                change_one_percent(root, args.contacts, args.events)
            for revision, (project, core) in projects.items():
                _print_run(f"{name} ({revision})" if args.baseline else name, _measured(project, args.breakdown, core))
        print(f"load after: {os.getloadavg()}")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
            if args.baseline:
                shutil.rmtree(projects["baseline"][0], ignore_errors=True)


def _print_run(name: str, figures: dict) -> None:
    """One run's line: wall, CPU, peak RSS, status, what it loaded and wrote (and its stages)."""
    report = figures["report"]
    if "peak_rss_mib" in report:  # the breakdown resets the kernel's peak per stage: its own figure
        figures["peak_rss_mib"] = report["peak_rss_mib"]
    destinations = {d.get("destination", d.get("name")): {k: d.get(k) for k in ("status", "planned", "records_written", "write_calls")}
                    for d in report.get("destinations", [])}
    sources = {s["name"]: s.get("loaded") for s in report.get("sources", [])}
    print(f"{name:<11} {figures['wall']:7.1f} s  CPU {figures['cpu']:7.1f} s  peak RSS {figures['peak_rss_mib'] or 0:7,.0f} MiB  "
          f"exit {figures['exit']}  status {report.get('status')}  loaded {sources}  {destinations}"
          + (f"  error {report['error']}" if "error" in report else ""), flush=True)
    for stage, figure in report.get("stages", {}).items():
        print(f"    {stage:<36} {figure['seconds']:8.2f} s"
              + (f"  CPU {figure['cpu_seconds']:7.2f} s" if "cpu_seconds" in figure else "")
              + f"  {figure['calls']:>5} calls"
              + (f"  peak RSS {figure['peak_rss_mib']:7,.0f} MiB" if "peak_rss_mib" in figure else ""))


def _measured(root: Path, breakdown: bool = False, core: str | None = None) -> dict:
    """One `segsync sync` in its own process: wall time and that process's peak RSS.
    ``core``: another revision's folders (PYTHONPATH), imported instead of the installed ones."""
    command = ([sys.executable, str(Path(__file__).with_name("sync_breakdown.py")), str(root), "--as-of", AS_OF]
               if breakdown else [sys.executable, "-m", "segsync", "sync", "--json", "--as-of", AS_OF])
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command,
            cwd=root, stdout=subprocess.PIPE, stderr=err,
            env=dict(os.environ, SEGSYNC_PLUGINS="files", **({"PYTHONPATH": core} if core else {})),
        )
        # communicate() reaps the child without its rusage: read the output, then wait4 it.
        stdout = process.stdout.read() if process.stdout else b""
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    text = stdout.decode()
    report = json.loads(text) if text.strip().startswith("{") else {"error": stderr.decode()[-2000:]}
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "exit": process.returncode, "report": report}


if __name__ == "__main__":
    main()

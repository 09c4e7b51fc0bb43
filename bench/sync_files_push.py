"""Benchmark: the first sync of many contacts into a files destination, and how often it
rewrites the audience; then a run where 1 % of the contacts changed.

    .venv/bin/python bench/sync_files_push.py [--contacts 200000] [--repeat 3]
                                               [--baseline <checkout>]

A files source with ``--contacts`` contacts (all opted in by form, one segment) feeds one files
destination. Each repetition runs the first sync in a fresh project and a fresh interpreter and
records: the wall and CPU time of the sync, the wall and CPU time of its push stage (diff read,
gate, write, acknowledgement, the audience's commit), how many times the audience was replaced
(both files written once counts as one rewrite) and the peak RSS of the process. Then a new
first name for every 100th contact is appended to the contacts file and the sync runs again in
the same process: its wall and CPU time and its push's (``one_pct_*``). CPU time (user +
system of the process) is what a run costs when the machine is shared; wall time is not.

``--baseline`` measures another revision too: a checkout holding ``core`` and
``connectors/files`` (e.g. ``git archive <commit> core connectors/files``; a ``core`` folder
alone is taken as the core with this checkout's files connector), one repetition of each in
turn so both see the same machine load, and prints the ratios.
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

CONFIG = """
[store]
path = "store.duckdb"

[connections.shop]
type = "files"
contacts = "data/contacts.csv"
consent = "data/consent.csv"

[connections.upload]
type = "files"
output = "out/audience"

[[segments]]
name = "gold"
rule = 'attr.tier == "gold"'
"""


def write_project(root: Path, contacts: int) -> None:
    (root / "data").mkdir()
    (root / "segsync.toml").write_text(CONFIG)
    with (root / "data/contacts.csv").open("w") as out:
        out.write("email,first_name,tier\n")
        out.writelines(f"c{i}@example.com,N{i % 97},{'gold' if i % 4 == 0 else ''}\n" for i in range(contacts))
    with (root / "data/consent.csv").open("w") as out:
        out.write("email,status,timestamp,method\n")
        out.writelines(f"c{i}@example.com,opted_in,2024-01-01T00:00:00Z,form\n" for i in range(contacts))


def _changed_contacts(root: Path, contacts: int) -> None:
    """1 % of the contacts get a new first name (rows appended to the contacts file)."""
    with (root / "data/contacts.csv").open("a") as out:
        out.writelines(f"c{i}@example.com,M{i % 89},{'gold' if i % 4 == 0 else ''}\n" for i in range(0, contacts, 100))


def one_sync(contacts: int) -> dict:
    """The first sync of a fresh project, then a run after 1 % changed, in this process."""
    import segsync_files.audience as audience
    from segsync.config import load_config
    from segsync.plugins import PluginHost
    from segsync.progress import Reporter
    from segsync.sync import runner as runner_module
    from segsync.sync.runner import RunOptions, Runner

    files_written = []
    atomic_write = audience._atomic_write

    def counted(path, fill):
        files_written.append(path.name)
        return atomic_write(path, fill)

    audience._atomic_write = counted
    pushes: list[tuple[float, float]] = []  # (wall, CPU) of each destination's push stage
    push = runner_module.push

    def timed_push(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return push(*args, **kwargs)
        finally:
            pushes.append((time.perf_counter() - wall, time.process_time() - cpu))

    runner_module.push = timed_push

    def run(root: Path) -> tuple[float, float, object]:
        runner = Runner(load_config(root / "segsync.toml"), PluginHost(), Reporter(quiet=True))
        wall, cpu = time.perf_counter(), time.process_time()
        summary = runner.run(RunOptions())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if summary.status != "succeeded":
            raise SystemExit(f"the sync ended {summary.status}: {summary.errors}")
        return wall, cpu, summary

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, contacts)
        wall, cpu, summary = run(root)
        first_push = pushes[-1]
        written = summary.destinations[0].records_written
        rewrites = files_written.count("audience.jsonl")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        _changed_contacts(root, contacts)
        pct_wall, pct_cpu, pct = run(root)
    return {"wall": wall, "cpu": cpu, "push": first_push[0], "push_cpu": first_push[1], "rewrites": rewrites,
            "written": written, "peak_rss_mib": peak,
            "one_pct_wall": pct_wall, "one_pct_cpu": pct_cpu, "one_pct_push": pushes[-1][0],
            "one_pct_push_cpu": pushes[-1][1], "one_pct_written": pct.destinations[0].records_written}


def in_subprocess(checkout: str | None, contacts: int) -> dict:
    env = dict(os.environ, SEGSYNC_PLUGINS="files")
    if checkout:
        root = Path(checkout)
        paths = [root / "core", root / "connectors/files"] if (root / "core").is_dir() else [root]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths if p.is_dir())
    out = subprocess.run([sys.executable, __file__, "--one", "--contacts", str(contacts)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another revision's core folder, measured in turn")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_sync(args.contacts)))
        return
    revisions = {"this": None, **({"baseline": args.baseline} if args.baseline else {})}
    runs: dict[str, list[dict]] = {name: [] for name in revisions}
    print(f"load average before: {os.getloadavg()}")
    for _ in range(args.repeat):
        for name, checkout in revisions.items():
            runs[name].append(in_subprocess(checkout, args.contacts))
            print(f"  {name}: {json.dumps({k: round(v, 2) for k, v in runs[name][-1].items()})}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print(f"{args.contacts} contacts, first sync into a files destination and a 1 % run, "
          f"{args.repeat} repetition(s), medians")
    keys = ("wall", "cpu", "push", "push_cpu", "peak_rss_mib", "one_pct_wall", "one_pct_cpu", "one_pct_push",
            "one_pct_push_cpu")
    medians = {}
    for name, figures in runs.items():
        medians[name] = {k: statistics.median(f[k] for f in figures) for k in keys}
        m = medians[name]
        rewrites = sorted({f["rewrites"] for f in figures})
        print(f"{name:9} first sync {m['wall']:6.1f} s (CPU {m['cpu']:6.1f} s)  push {m['push']:6.1f} s "
              f"(CPU {m['push_cpu']:6.1f} s, {m['push_cpu'] / figures[0]['written'] * 1e6:5.1f} µs a change)  "
              f"rewrites {rewrites}  peak RSS {m['peak_rss_mib']:.0f} MiB  written {figures[0]['written']}")
        print(f"{'':9} 1 % run    {m['one_pct_wall']:6.1f} s (CPU {m['one_pct_cpu']:6.1f} s)  "
              f"push {m['one_pct_push']:6.1f} s (CPU {m['one_pct_push_cpu']:6.1f} s)  "
              f"written {figures[0]['one_pct_written']}")
    if args.baseline:
        for k in keys:
            print(f"ratio this/baseline {k}: {medians['this'][k] / medians['baseline'][k]:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: the first sync of many contacts into a files destination, and how often it
rewrites the audience.

    .venv/bin/python bench/sync_files_push.py [--contacts 200000] [--repeat 3]
                                               [--baseline <checkout>/core]

A files source with ``--contacts`` contacts (all opted in by form, one segment) feeds one files
destination. Each repetition runs the first sync in a fresh project and a fresh interpreter and
records: the wall time of the sync, the time in its push phase (progress phase ``push upload``:
gate, write, acknowledgement), how many times the audience was replaced (both files written
once counts as one rewrite) and the peak RSS of the process.

``--baseline`` measures another revision of the core too (its ``core`` folder, e.g. from
``git archive <commit> core``), one repetition of each in turn so both see the same machine
load, and prints the ratios.
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


def one_sync(contacts: int) -> dict:
    """The first sync of a fresh project, in this process."""
    import segsync_files.audience as audience
    from segsync.config import load_config
    from segsync.plugins import PluginHost
    from segsync.progress import Reporter
    from segsync.sync.runner import RunOptions, Runner

    files_written = []
    atomic_write = audience._atomic_write

    def counted(path, fill):
        files_written.append(path.name)
        return atomic_write(path, fill)

    audience._atomic_write = counted
    pushing: dict[str, float] = {}

    def listen(phase: str, done: int, total: int | None) -> None:
        if phase.startswith("push "):
            pushing.setdefault("start", time.perf_counter())
            pushing["last"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, contacts)
        reporter = Reporter(quiet=True)
        reporter.listeners.append(listen)
        runner = Runner(load_config(root / "segsync.toml"), PluginHost(), reporter)
        start = time.perf_counter()
        summary = runner.run(RunOptions())
        wall = time.perf_counter() - start
        if summary.status != "succeeded":
            raise SystemExit(f"the sync ended {summary.status}: {summary.errors}")
        written = summary.destinations[0].records_written
    return {"wall": wall, "push": pushing["last"] - pushing["start"], "rewrites": files_written.count("audience.jsonl"),
            "written": written, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_subprocess(core: str | None, contacts: int) -> dict:
    env = dict(os.environ, SEGSYNC_PLUGINS="files")
    if core:
        env["PYTHONPATH"] = core
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
    for _ in range(args.repeat):
        for name, core in revisions.items():
            runs[name].append(in_subprocess(core, args.contacts))
    print(f"{args.contacts} contacts, first sync into a files destination, {args.repeat} repetition(s)")
    medians = {}
    for name, figures in runs.items():
        medians[name] = {k: statistics.median(f[k] for f in figures) for k in ("wall", "push", "peak_rss_mib")}
        rewrites = sorted({f["rewrites"] for f in figures})
        print(f"{name:9} sync {medians[name]['wall']:7.1f} s  push {medians[name]['push']:7.1f} s  "
              f"rewrites {rewrites}  peak RSS {medians[name]['peak_rss_mib']:.0f} MiB  "
              f"written {figures[0]['written']}")
    if args.baseline:
        for k in ("wall", "push", "peak_rss_mib"):
            print(f"ratio this/baseline {k}: {medians['this'][k] / medians['baseline'][k]:.2f}")


if __name__ == "__main__":
    main()

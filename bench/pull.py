"""The pull stage of a whole sync on its own: contacts, consent and events files into a new store.

    .venv/bin/python bench/pull.py --contacts 200000 --events 4000000 [--dir DIR] [--repeat 2]
    .venv/bin/python bench/pull.py ... --baseline <checkout>/core:<checkout>/connectors/files  # interleaved
    .venv/bin/python bench/pull.py ... --profile FILE                  # cProfile of one first pull
    .venv/bin/python bench/pull.py ... --steps                         # each ingestion step's CPU
    .venv/bin/python bench/pull.py ... --this <checkout>/core:<checkout>/connectors/files   # a frozen copy

The project and its files are ``bench/sync_whole.py``'s (the same generator: ``--contacts``
contacts, one consent record each, ``--events`` events, all CSV). Each pull runs in a fresh
interpreter through the runner's own stage (``segsync.sync.pull.pull`` over the files
connector), in one process per revision and case:

* ``first``: every file into a new store;
* ``1%``: after ``first``, 1 % of the contacts get new events and another 1 % a new company
  (rows appended to the files, as ``sync_whole.py`` does), and the same store pulls again; the
  files are cut back to their original size afterwards so a later round starts alike.

Printed per run: wall and CPU seconds (user + system of the process: what a run costs on a
shared machine), peak RSS (``ru_maxrss``), rows loaded; then the medians, the ratio of the
revisions' medians, and the load average. With ``--baseline`` the revisions alternate run by
run (interleaved), so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_whole import change_one_percent, generate  # noqa: E402


# The steps of ``Ingestor`` timed by ``--steps`` (those a revision has).
STEPS = ("_stage", "_resolve_emails", "_validate_contacts", "_validate_events", "_validate_consent",
         "_record_errors", "_ensure_contacts", "_merge_contacts", "_merge_events", "_merge_consent")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _time_steps(steps: dict[str, list[float]]) -> None:
    """Wrap each ingestion step to add its wall and CPU seconds (all threads) to ``steps``."""
    from segsync.store.ingest import Ingestor

    for name in STEPS:
        original = getattr(Ingestor, name, None)
        if original is None:
            continue

        def timed(self, *args, _original=original, _name=name, **kwargs):
            wall, cpu = time.perf_counter(), _cpu()
            try:
                return _original(self, *args, **kwargs)
            finally:
                figure = steps.setdefault(_name, [0.0, 0.0])
                figure[0] += time.perf_counter() - wall
                figure[1] += _cpu() - cpu

        setattr(Ingestor, name, timed)


def pull_once(project: Path, profile: str | None) -> dict:
    """One pull of every source of ``project`` into its store (the subprocess side)."""
    os.chdir(project)
    steps: dict[str, list[float]] = {}
    if os.environ.get("SEGSYNC_BENCH_STEPS"):
        _time_steps(steps)
    from segsync.config import load_config
    from segsync.plugins import PluginHost
    from segsync.progress import Reporter
    from segsync.store import Store
    from segsync.sync.pull import pull
    from segsync.sync.runner import Runner

    host = PluginHost()
    config = load_config(str(project / "segsync.toml"), host)
    runner = Runner(config, host, Reporter(quiet=True))
    connectors = {name: c for name, c in runner.connectors().items() if runner._pulls(name, c)}
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    loaded: dict[str, int] = {}
    with Store(config.store_path, memory_limit=config.store_memory_limit) as store:
        for name, connector in connectors.items():
            report = pull(store, connector, config.connections[name].type, None,
                          host.event_types(), Reporter(quiet=True))
            assert report.status == "ok", (report.status, report.error)
            for stream, rows in report.loaded.items():
                loaded[stream] = loaded.get(stream, 0) + rows
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": time.perf_counter() - started,
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "peak_rss_mib": after.ru_maxrss / 1024, "loaded": loaded,
            "steps": {name: [round(w, 2), round(c, 2)] for name, (w, c) in steps.items()}}


def in_subprocess(core: str | None, project: Path, profile: str | None = None, steps: bool = False) -> dict:
    env = dict(os.environ)
    if steps:
        env["SEGSYNC_BENCH_STEPS"] = "1"
    if core:
        env["PYTHONPATH"] = core
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(project), profile or ""],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(pull_once(Path(sys.argv[2]), sys.argv[3] or None)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--dir", help="keep the generated files here (reused when present)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--baseline", help="another revision's core and files connector folders (a PYTHONPATH), measured in turn")
    parser.add_argument("--this", help="this revision's folders (a PYTHONPATH, e.g. a `git archive` of it) "
                        "instead of the installed tree, so editing the tree cannot change a run")
    parser.add_argument("--no-append", action="store_true", help="only the first pull")
    parser.add_argument("--profile", help="write a cProfile of this revision's first pull here")
    parser.add_argument("--steps", action="store_true",
                        help="print each ingestion step's wall and CPU seconds (summed over files and parts; the merges include _ensure_contacts)")
    args = parser.parse_args()
    revisions = {"this": args.this, **({"baseline": args.baseline} if args.baseline else {})}
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="segsync-pull-"))
    data = root / "files"
    if not (data / "data" / "events.csv").exists():
        started = time.perf_counter()
        generate(data, args.contacts, args.events)
        print(f"generated in {time.perf_counter() - started:.1f}s", flush=True)
    sizes = {p: p.stat().st_size for p in (data / "data").iterdir()}
    print(f"load before: {os.getloadavg()}", flush=True)
    runs: dict[tuple[str, str], list[dict]] = {}
    try:
        for round_ in range(args.repeat):
            projects = {}
            for revision, core in revisions.items():
                project = root / f"{revision}-{round_}"
                shutil.rmtree(project, ignore_errors=True)
                project.mkdir()
                shutil.copy(data / "segsync.toml", project)
                (project / "data").symlink_to(data / "data")
                projects[revision] = project
                figures = in_subprocess(core, project, args.profile if revision == "this" and round_ == 0 else None,
                                        steps=args.steps)
                runs.setdefault((revision, "first"), []).append(figures)
                print(f"{revision:<9} first  {figures['wall']:8.1f} s wall {figures['cpu']:8.1f} CPU-s "
                      f"{figures['peak_rss_mib']:8.0f} MiB  {figures['loaded']}  load {os.getloadavg()[0]:.1f}", flush=True)
                for name, (wall, cpu) in figures["steps"].items():
                    print(f"          {name:<20} {wall:8.2f} s wall {cpu:8.2f} CPU-s", flush=True)
            if args.no_append:
                for project in projects.values():
                    shutil.rmtree(project)
                continue
            change_one_percent(data, args.contacts, args.events)
            for revision, core in revisions.items():
                figures = in_subprocess(core, projects[revision])
                runs.setdefault((revision, "1%"), []).append(figures)
                print(f"{revision:<9} 1%     {figures['wall']:8.1f} s wall {figures['cpu']:8.1f} CPU-s "
                      f"{figures['peak_rss_mib']:8.0f} MiB  {figures['loaded']}  load {os.getloadavg()[0]:.1f}", flush=True)
                shutil.rmtree(projects[revision])
            for path, size in sizes.items():
                os.truncate(path, size)
    finally:
        for path, size in sizes.items():
            if path.stat().st_size != size:
                os.truncate(path, size)
        if not args.dir:
            shutil.rmtree(root)
    print(f"\n{args.contacts:,} contacts + consent, {args.events:,} events; medians of {args.repeat}")
    for case in ("first", "1%"):
        for revision in revisions:
            figures = runs.get((revision, case))
            if not figures:
                continue
            print(f"{revision:<9} {case:<6} wall {statistics.median(f['wall'] for f in figures):8.1f} s  "
                  f"CPU {statistics.median(f['cpu'] for f in figures):8.1f} s  "
                  f"peak {max(f['peak_rss_mib'] for f in figures):8.0f} MiB")
        if args.baseline and runs.get(("baseline", case)):
            for what in ("wall", "cpu"):
                ratio = (statistics.median(f[what] for f in runs["this", case])
                         / statistics.median(f[what] for f in runs["baseline", case]))
                print(f"          {case:<6} this / baseline {what}: {ratio:.2f}")
    print(f"python {sys.version.split()[0]}, load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

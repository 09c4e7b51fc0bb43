"""Benchmark: the no-change re-run and the 1 % run of a files → files sync, this revision against
another, interleaved.

    .venv/bin/python bench/sync_nochange.py --baseline <checkout>/core [--contacts 200000]
        [--events 4000000] [--repeat 3] [--dir DIR]

Generates the project of ``bench/sync_whole.py`` (same CSV files, same five segments, one files
destination) once, then for each revision (``this``: the installed core; ``baseline``: the
``core`` folder given, e.g. from ``git archive <commit> core``) makes its own copy and runs the
first sync. Each repetition then restores both projects to their state after the first sync
(store and audience copied back) and runs, alternating which revision goes first:

1. a re-run with no change (the input files are untouched: the pull reads nothing);
2. a run after 1 % of the contacts changed (``sync_whole.change_one_percent``: new events for 1 %,
   a new company for another 1 %, appended to the same files each time).

Each run is ``bench/sync_breakdown.py`` in its own process (stages timed); printed per run: wall
and CPU seconds (user + system, from ``wait4``), peak RSS, the stages, ``os.getloadavg()`` before
it, and the medians and this/baseline ratios per kind of run. CPU seconds are what to compare on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sync_whole  # noqa: E402  (the project, the 1 % change and the measurement)


def _restore(project: Path, saved: Path, sizes: dict[str, int]) -> None:
    for name in ("store.duckdb", "out"):
        target = project / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        source = saved / name
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.exists():
            shutil.copy2(source, target)
    for name, size in sizes.items():
        data = project / "data" / name
        if data.stat().st_size != size:  # an earlier 1 % run appended: cut it off again
            os.truncate(data, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="another revision's core folder")
    parser.add_argument("--this", help="this revision's core folder (default: the installed one)")
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", help="work here (kept); default: a temporary folder")
    args = parser.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="segsync-nochange-"))
    revisions = {"baseline": str(Path(args.baseline).resolve()),
                 "this": str(Path(args.this).resolve()) if args.this else None}
    try:
        generated = root / "generated"
        if not (generated / "data" / "generated.json").exists():
            sync_whole.generate(generated, args.contacts, args.events)
            files = sorted((generated / "data").glob("*.csv"))
            (generated / "data" / "generated.json").write_text(json.dumps({p.name: p.stat().st_size for p in files}))
        sizes = json.loads((generated / "data" / "generated.json").read_text())
        print(f"{args.contacts:,} contacts, {args.events:,} events; load before: {os.getloadavg()}", flush=True)
        for name, core in revisions.items():
            project = root / name
            shutil.rmtree(project, ignore_errors=True)
            shutil.copytree(generated, project)
            first = sync_whole._measured(project, True, core)
            _print(name, "first sync", first)
            saved = root / f"{name}.saved"
            shutil.rmtree(saved, ignore_errors=True)
            saved.mkdir()
            _restore(saved, project, {})  # copies store and audience into saved/
        figures: dict[tuple[str, str], list[dict]] = {}
        for rep in range(args.repeat):
            order = list(revisions) if rep % 2 == 0 else list(reversed(revisions))
            for kind in ("no change", "1% changed"):
                for name in order:
                    project = root / name
                    _restore(project, root / f"{name}.saved", sizes)
                    if kind == "1% changed":
                        sync_whole.change_one_percent(project, args.contacts, args.events)
                    load = os.getloadavg()
                    measured = sync_whole._measured(project, True, revisions[name])
                    measured["load"] = load
                    figures.setdefault((name, kind), []).append(measured)
                    _print(name, f"{kind} (rep {rep + 1})", measured)
        print("medians:")
        for kind in ("no change", "1% changed"):
            medians = {name: {k: statistics.median(m[k] for m in figures[(name, kind)])
                              for k in ("wall", "cpu", "peak_rss_mib")} for name in revisions}
            for name in revisions:
                m = medians[name]
                print(f"  {kind:<11} {name:<9} wall {m['wall']:7.2f} s  CPU {m['cpu']:7.2f} s  "
                      f"peak RSS {m['peak_rss_mib']:7,.0f} MiB")
            print(f"  {kind:<11} this/baseline: wall {medians['this']['wall'] / medians['baseline']['wall']:.2f}  "
                  f"CPU {medians['this']['cpu'] / medians['baseline']['cpu']:.2f}  "
                  f"peak RSS {medians['this']['peak_rss_mib'] / medians['baseline']['peak_rss_mib']:.2f}")
        print(f"load after: {os.getloadavg()}")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


def _print(name: str, run: str, figures: dict) -> None:
    report = figures["report"]
    peak = report.get("peak_rss_mib", figures["peak_rss_mib"])
    figures["peak_rss_mib"] = peak
    planned = {d.get("destination", d.get("name")): d.get("planned") for d in report.get("destinations", [])}
    print(f"{name:<9} {run:<22} wall {figures['wall']:7.2f} s  CPU {figures['cpu']:7.2f} s  peak RSS {peak:7,.0f} MiB  "
          f"status {report.get('status')}  planned {planned}  load {figures.get('load', '')}"
          + (f"  error {report['error']}" if "error" in report else ""), flush=True)
    for stage, figure in report.get("stages", {}).items():
        print(f"    {stage:<36} {figure['seconds']:8.2f} s")


if __name__ == "__main__":
    main()

"""Where one `segsync sync` spends its time and memory, stage by stage.

    .venv/bin/python bench/sync_breakdown.py PROJECT_DIR [--as-of ISO] [--profile FILE]

Runs one sync of the project in ``PROJECT_DIR`` in this process (the same runner `segsync sync`
uses, every installed plugin) with each stage of the run timed: pull, evaluate (and its
incremental evaluation and snapshot), effective consent, diff, push (and, inside it, reading
the diff, the gate, the hook's copies, the connector's write and the acknowledgement), and the
run's finish. For each top-level stage it also records the process's peak RSS while the stage
ran (Linux: the peak is reset through ``/proc/self/clear_refs`` before each stage). Prints one
JSON object: ``stages`` (wall and CPU seconds, calls, peak RSS in MiB), ``wall``, ``cpu``, ``peak_rss_mib`` and the
run's ``status``, ``sources`` and ``destinations`` (as in ``sync --json``). ``--profile`` writes a cProfile of the whole run to
``FILE`` (read it with ``python -m pstats``).

`bench/sync_whole.py --breakdown` runs this script for each of its three runs.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import resource
import time
from datetime import datetime
from pathlib import Path


def _peak_rss_mib() -> float:
    """The process's peak RSS since the last reset (VmHWM), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
    except OSError:
        pass


class Stages:
    """Cumulative wall time per stage; the peak RSS of each top-level stage."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, float]] = {}
        self._depth = 0
        self._peak_before_resets = 0.0  # the process's peak, kept across the resets

    def overall_peak_mib(self) -> float:
        return max(self._peak_before_resets, _peak_rss_mib())

    def wrap(self, owner: object, attribute: str, name: str, *, generator: bool = False) -> None:
        original = getattr(owner, attribute)
        stages = self
        if generator:
            @functools.wraps(original)
            def timed_generator(*args, **kwargs):
                iterator = original(*args, **kwargs)
                while True:
                    with stages.stage(name):
                        try:
                            item = next(iterator)
                        except StopIteration:
                            return
                    yield item
            setattr(owner, attribute, timed_generator)
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            with stages.stage(name):
                return original(*args, **kwargs)
        setattr(owner, attribute, timed)

    def stage(self, name: str):
        stages = self

        class _Stage:
            def __enter__(self):
                self.top = stages._depth == 0
                stages._depth += 1
                if self.top:
                    stages._peak_before_resets = stages.overall_peak_mib()
                    _reset_peak()
                self.started = time.perf_counter()
                self.cpu = time.process_time()

            def __exit__(self, *exc):
                elapsed = time.perf_counter() - self.started
                cpu = time.process_time() - self.cpu
                stages._depth -= 1
                figure = stages.figures.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "calls": 0})
                figure["seconds"] += elapsed
                figure["cpu_seconds"] += cpu
                figure["calls"] += 1
                if self.top:
                    figure["peak_rss_mib"] = max(figure.get("peak_rss_mib", 0.0), _peak_rss_mib())
                return False

        return _Stage()


def instrument(stages: Stages) -> None:
    """Time the stages where the runner calls them (module attributes it imported)."""
    from segsync.consent.rules import EffectiveConsent
    from segsync.segments import memberships
    from segsync.store import Store
    from segsync.sync import ack, gate, push, runner
    from segsync.sync.diff import DestinationDiff

    stages.wrap(runner, "pull", "pull")
    stages.wrap(runner, "evaluate_memberships", "evaluate")
    stages.wrap(memberships, "evaluate_incremental", "evaluate: features and memberships")
    stages.wrap(memberships, "snapshot", "evaluate: snapshot")
    stages.wrap(EffectiveConsent, "build", "effective consent")
    stages.wrap(DestinationDiff, "build", "diff")
    stages.wrap(runner, "push", "push")
    stages.wrap(DestinationDiff, "batches", "push: read the diff", generator=True)
    stages.wrap(gate.Gate, "split", "push: gate")
    stages.wrap(gate.GatedConnector, "handed_over", "push: the hook's copies")
    stages.wrap(gate.GatedConnector, "write", "push: gated write")
    stages.wrap(ack.Acknowledgement, "written", "push: acknowledge")
    stages.wrap(ack.Acknowledgement, "refused", "push: acknowledge")
    stages.wrap(ack.Acknowledgement, "commit_pending", "push: acknowledge")
    try:
        from segsync_files.audience import AudienceWrite
    except ImportError:
        pass
    else:
        stages.wrap(AudienceWrite, "write", "push: files audience page")
        stages.wrap(AudienceWrite, "commit", "push: files audience commit")
    stages.wrap(ack.Acknowledgement, "finish", "finish destination")
    stages.wrap(Store, "finish_run", "finish run")
    del push  # imported so the wrappers above see the same module objects the runner uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--as-of", default="2026-01-01T00:00:00Z")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    args = parser.parse_args()
    os.chdir(args.project)

    from segsync.config import load_config
    from segsync.plugins import PluginHost
    from segsync.progress import Reporter
    from segsync.sync.runner import RunOptions, Runner

    stages = Stages()
    instrument(stages)
    host = PluginHost()
    config = load_config(str(args.project / "segsync.toml"), host)
    as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
    runner = Runner(config, host, Reporter(quiet=True))
    profiler = cProfile.Profile() if args.profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    summary = runner.run(RunOptions(as_of=as_of))
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    run = summary.to_dict()
    print(json.dumps({
        "wall": round(wall, 2),
        "cpu": round(cpu, 2),
        "peak_rss_mib": round(stages.overall_peak_mib()),
        "status": run["status"],
        "sources": run["sources"],
        "destinations": run["destinations"],
        "stages": {name: {k: round(v, 2) for k, v in figure.items()} for name, figure in stages.figures.items()},
    }, default=str))


if __name__ == "__main__":
    main()

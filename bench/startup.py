"""Start-up time of the ``segsync`` command line (see RESULTS-startup.md).

For each command (``segsync --help``, ``segsync plugins``, ``segsync runs`` on a small synced
project) it measures, in fresh processes, the wall-clock time of ``--runs`` runs (median, min,
max) and, once with ``python -X importtime``, the total import time and which heavy libraries
were imported. Every installed connector is loaded (no ``SEGSYNC_PLUGINS`` allow-list).

    .venv/bin/python bench/startup.py                          # the tree installed in the venv
    .venv/bin/python bench/startup.py --before ../main-before  # and another checkout, interleaved

``--before`` puts that checkout's ``core/`` and ``connectors/*/`` first on ``PYTHONPATH``, so the
same interpreter and libraries run the other code.

The commands run with the modules' bytecode cached, as an installed user runs them (pip compiles
a wheel's modules when it installs them; an editable checkout writes its ``__pycache__`` on the
first run): ``PYTHONDONTWRITEBYTECODE`` is dropped from the environment, and the warm-up run of
each command writes the cache. With it set, every run would compile the project's own modules
from source again (0.03-0.04 s of each command here, bench/RESULTS-startup.md), which no installed
user pays.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("duckdb", "sqlglot", "pydantic", "pydantic_settings", "rich", "requests",
         "mailchimp_marketing", "sib_api_v3_sdk")
# What the console script runs (`segsync = "segsync.cli:main"`).
SEGSYNC = [sys.executable, "-c", "import sys; sys.argv[0] = 'segsync'; from segsync.cli import main; main()"]


def environment(tree: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SEGSYNC_") and k != "PYTHONDONTWRITEBYTECODE"}
    if tree is not None:
        paths = [tree / "core", *sorted(p for p in (tree / "connectors").iterdir() if p.is_dir())]
        env["PYTHONPATH"] = os.pathsep.join(str(p.resolve()) for p in paths)
    return env


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run. The CPU time hardly moves with
    the machine's load, the wall-clock time does: on a busy machine compare the CPU column."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*SEGSYNC, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):  # 3: `runs` of a run with rejections is fine
        raise SystemExit(f"segsync {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return elapsed, cpu


def import_profile(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[str]]:
    """Total import time (s) of one run, and the heavy libraries it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", *SEGSYNC[1:], *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    total = 0
    imported = set()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        self_us, cumulative_us, indent, module = match.groups()
        if len(indent) == 1:  # a top-level import: its cumulative time counts once
            total += int(cumulative_us)
        imported.add(module)
    return total / 1e6, [m for m in HEAVY if m in imported]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path,
                        help="also measure this checkout (e.g. main before a change), interleaved")
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()
    trees = {"after": environment(None)}
    if options.before is not None:
        trees = {"before": environment(options.before), **trees}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        # One project, made by the installed tree, for every measurement.
        for args in (["init", "."], ["sync"]):
            subprocess.run([*SEGSYNC, *args], cwd=project, env=trees["after"], capture_output=True)
        load = os.getloadavg()
        print(f"{os.cpu_count()} cores; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"{options.runs} runs per command and tree, interleaved")
        print("| command | tree | median s | min s | max s | median CPU s | imports s | heavy libraries imported |")
        print("|---|---|---|---|---|---|---|---|")
        for args in (["--help"], ["plugins"], ["runs"]):
            samples: dict[str, list[float]] = {name: [] for name in trees}
            cpu: dict[str, list[float]] = {name: [] for name in trees}
            for name, env in trees.items():
                timed(args, project, env)  # warm the file cache
            for _ in range(options.runs):
                for name, env in trees.items():
                    wall, used = timed(args, project, env)
                    samples[name].append(wall)
                    cpu[name].append(used)
            for name, env in trees.items():
                imports, heavy = import_profile(args, project, env)
                print(f"| `segsync {' '.join(args)}` | {name} | {statistics.median(samples[name]):.3f} | "
                      f"{min(samples[name]):.3f} | {max(samples[name]):.3f} | {statistics.median(cpu[name]):.3f} | "
                      f"{imports:.3f} | "
                      f"{', '.join(heavy) or '-'} |")
            if "before" in samples:
                ratio = statistics.median(samples["before"]) / statistics.median(samples["after"])
                cpu_ratio = statistics.median(cpu["before"]) / statistics.median(cpu["after"])
                print(f"| `segsync {' '.join(args)}` | before / after | {ratio:.1f}x | | | {cpu_ratio:.1f}x | | |")
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: the sync run's stages (evaluate, effective consent, diff, gate, push, acknowledge)
over many contacts and several destinations, with a connector that answers at once.

    .venv/bin/python bench/sync_stages.py [--contacts 100000] [--destinations 3] [--repeat 3]
                                          [--baseline <checkout>/core]

A files source with ``--contacts`` contacts (90 % opted in by form, 10 % opted out) and three
segments feeds ``--destinations`` in-process destinations whose ``write`` answers ``ok`` for
every change without any I/O, so the figures are segsync's own cost. Each repetition runs, in a
fresh project: the first sync (everyone subscribed is added everywhere), a second sync with no
change (nothing planned), and a third after 10 % of the contacts opted out (each an
unsubscribe everywhere). Each repetition runs in a fresh interpreter. Printed: the median wall
time of each sync and of the time spent in the push phases (the progress phases
``push <destination>``: gate, hook, write and acknowledgement; the diff is built before them).

``--baseline`` measures another revision of the core too (its ``core`` folder, e.g. from
``git archive <commit> core``), one repetition of each in turn so both see the same machine
load, and prints the ratios; the script finds the runner where that revision keeps it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from segsync import Capability, Connector, ConnectorSettings, ContactChange, Outcome, WriteResult, hookimpl
from segsync.config import load_config
from segsync.plugins import PluginHost
from segsync.progress import Reporter

try:
    from segsync.sync.runner import RunOptions, Runner
except ImportError:  # a revision from before the sync package
    from segsync.runner import RunOptions, Runner  # type: ignore[no-redef]


class InstantConnector(Connector):
    """Answers ok for every change, at once."""

    type_name = "instant"
    capabilities = frozenset({Capability.WRITE_CONTACTS, Capability.WRITE_MEMBERSHIPS,
                              Capability.WRITE_CONSENT, Capability.DELETE_CONTACTS})
    Settings = ConnectorSettings
    max_batch_size = 10_000

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        return WriteResult([Outcome.ok(c.contact_key) for c in changes], calls=1)


class InstantPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(InstantConnector)


def write_project(root: Path, contacts: int, destinations: int) -> None:
    data = root / "data"
    data.mkdir()
    tiers = ("gold", "silver", "bronze", "")
    with (data / "contacts.csv").open("w") as out:
        out.write("email,first_name,country,tier\n")
        for i in range(contacts):
            out.write(f"c{i}@example.com,N{i % 97},{'DE' if i % 3 else 'FR'},{tiers[i % 4]}\n")
    with (data / "consent.csv").open("w") as out:
        out.write("email,status,timestamp,method\n")
        for i in range(contacts):
            status = "opted_out" if i % 10 == 0 else "opted_in"
            out.write(f"c{i}@example.com,{status},2024-01-01T00:00:00Z,form\n")
    config = [
        '[store]\npath = "store.duckdb"\n',
        '[connections.shop]\ntype = "files"\ncontacts = "data/contacts.csv"\nconsent = "data/consent.csv"\n',
        *(f'[connections.d{n}]\ntype = "instant"\n' for n in range(destinations)),
        '[[segments]]\nname = "gold"\nrule = \'attr.tier == "gold"\'\n',
        '[[segments]]\nname = "french"\nrule = \'attr.country == "FR"\'\n',
        '[[segments]]\nname = "gold-french"\nrule = \'in_segment("gold") and in_segment("french")\'\n',
    ]
    (root / "segsync.toml").write_text("\n".join(config))


def opt_out_tenth(root: Path, contacts: int) -> None:
    with (root / "data" / "consent.csv").open("a") as out:
        for i in range(1, contacts, 10):
            out.write(f"c{i}@example.com,opted_out,2024-06-01T00:00:00Z,email_link\n")


def timed_sync(root: Path) -> tuple[float, float, dict[str, dict[str, int]]]:
    """Wall time of one sync, the part of it in push phases, and what each destination planned."""
    pushing: dict[str, float] = {}

    def listen(phase: str, done: int, total: int | None) -> None:
        if phase.startswith("push "):
            pushing.setdefault(phase, time.perf_counter())
            pushing[phase + " last"] = time.perf_counter()

    reporter = Reporter(quiet=True)
    reporter.listeners.append(listen)
    runner = Runner(load_config(root / "segsync.toml"), PluginHost(extra_plugins=[InstantPlugin()]), reporter)
    start = time.perf_counter()
    summary = runner.run(RunOptions())
    wall = time.perf_counter() - start
    push = sum(pushing[p + " last"] - pushing[p] for p in pushing if not p.endswith(" last"))
    if summary.status != "succeeded":
        raise SystemExit(f"the sync ended {summary.status}: {summary.errors}")
    return wall, push, {d.name: d.planned for d in summary.destinations}


SYNCS = ("first", "unchanged", "10% opted out")


def one_repetition(contacts: int, destinations: int) -> dict[str, dict]:
    """The three syncs of one fresh project: wall time, time in push phases, planned changes."""
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, contacts, destinations)
        for name in SYNCS:
            if name == "10% opted out":
                opt_out_tenth(root, contacts)
            wall, push, planned = timed_sync(root)
            figures[name] = {"wall": wall, "push": push, "planned": next(iter(planned.values()), {})}
    return figures


def in_subprocess(core: str | None, contacts: int, destinations: int) -> dict[str, dict]:
    """One repetition in a fresh interpreter, with ``core`` (a checkout's core folder) first on the path."""
    env = dict(os.environ, PYTHONPATH=core) if core else dict(os.environ)
    out = subprocess.run([sys.executable, __file__, "--one", "--contacts", str(contacts),
                          "--destinations", str(destinations)],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--destinations", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another revision's core folder, measured in turn with this one")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["SEGSYNC_PLUGINS"] = "files"
    if args.one:
        print(json.dumps(one_repetition(args.contacts, args.destinations)))
        return
    revisions = {"this tree": None, **({"baseline": args.baseline} if args.baseline else {})}
    runs: dict[str, list[dict]] = {name: [] for name in revisions}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeat):
        for name, core in revisions.items():  # in turn, so both see the same load
            runs[name].append(in_subprocess(core, args.contacts, args.destinations))
    print(f"{args.contacts:,} contacts, {args.destinations} destinations, {args.repeat} repetitions per "
          f"revision (in turn); load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| sync | planned per destination | revision | median wall | median in push phases |")
    print("|---|---|---|---|---|")
    medians = {}
    for sync in SYNCS:
        for name in revisions:
            wall = statistics.median(r[sync]["wall"] for r in runs[name])
            push = statistics.median(r[sync]["push"] for r in runs[name])
            medians[sync, name] = (wall, push)
            print(f"| {sync} | {runs[name][0][sync]['planned']} | {name} | {wall:.2f} s | {push:.2f} s |")
    if args.baseline:
        print()
        print("| sync | wall: this tree / baseline | push phases: this tree / baseline |")
        print("|---|---|---|")
        for sync in SYNCS:
            (wall, push), (base_wall, base_push) = medians[sync, "this tree"], medians[sync, "baseline"]
            ratio = f"{push / base_push:.2f}" if base_push else "-"
            print(f"| {sync} | {wall / base_wall:.2f} | {ratio} |")


if __name__ == "__main__":
    main()

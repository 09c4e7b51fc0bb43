"""Push 100,000 contacts with memberships in 5 lists to the Brevo emulator and count calls.

    .venv/bin/python bench/brevo_push.py [--contacts 100000] [--latency 0.1] [--unthrottled] [--in-process]
                                         [--import-workers 4] [--poll 1.0]

Runs the real connector (through sib-api-v3-sdk) against the emulator, which adds ``--latency``
seconds to every request, enforces Brevo's general-tier rate limits unless ``--unthrottled``,
and processes imports in the background (0.5 s + 100,000 rows/s each, ``--import-workers`` at
once). The emulator runs in a process of its own (``EmulatorProcess``) so that the connector's
CPU is measured apart from it; ``--in-process`` runs it in this process (the earlier set-up).
Prints calls by operation, the lower bound of calls, wall time, the floor the documented rate
limits put on the calls made, and the ceiling of the push (see ``ceiling`` below), CPU of the
connector and of the emulator, and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from pydantic import SecretStr
from segsync.connector import ContactChange
from segsync.testing.emulator.process import EmulatorProcess

from segsync_brevo import BrevoConnector, BrevoSettings
from segsync_brevo.emulator import BrevoEmulator
from segsync_brevo.limits import GENERAL_TIER, IMPORT_MAX_BYTES, bucket_for

IMPORT_DELAY = 0.5  # seconds each import takes at the emulator before its rows...
IMPORT_ROWS_PER_SECOND = 100_000  # ...at this rate
LISTS = ("vip", "churn_risk", "newsletter", "high_value", "trial")


def changes(n: int) -> list[ContactChange]:
    out = []
    for i in range(n):
        segments = tuple(name for bit, name in enumerate(LISTS) if (i * 2654435761 >> (bit + 3)) & 1)
        out.append(
            ContactChange(
                contact_key=f"user{i:06d}@example.com",
                op="upsert",
                status="subscribed",
                attributes={"first_name": f"First{i}", "last_name": f"Last{i}", "country": "FR"},
                tags=segments,
                tags_add=segments,
            )
        )
    return out


class InProcess:
    """The emulator in this process (the benchmark's earlier set-up)."""

    def __init__(self, **options) -> None:
        self.emulator = BrevoEmulator(**options)

    def __enter__(self) -> InProcess:
        self.emulator.start()
        self.url = self.emulator.url
        return self

    def __exit__(self, *_exc: object) -> None:
        self.emulator.stop()

    def clear_log(self) -> None:
        self.emulator.clear_log()

    def log(self) -> list[dict]:
        return [{"path": e.path, "method": e.method, "status": e.status, "request_bytes": e.request_bytes,
                 "started": e.started, "ended": e.ended} for e in self.emulator.requests()]

    def lists(self) -> dict[str, int]:
        return {l.name: len(l.members) for l in self.emulator.state.lists.values()}

    def contacts(self) -> int:
        return sum(1 for c in self.emulator.state.contacts.values() if c.email.startswith("user"))

    def cpu(self) -> float | None:
        return None  # shares this process's CPU time


class OwnProcess:
    """The emulator in a child process: its CPU is not the benchmark's."""

    def __init__(self, **options) -> None:
        self.process = EmulatorProcess("segsync_brevo.emulator:BrevoEmulator", **options)
        self.key = options["api_key"]

    def __enter__(self) -> OwnProcess:
        self.process.start()
        self.url = self.process.url
        return self

    def __exit__(self, *_exc: object) -> None:
        self.process.stop()

    def clear_log(self) -> None:
        self.started = time.monotonic()  # the child's log is kept; later entries are the write's

    def log(self) -> list[dict]:
        return [e for e in self.process.log() if e.get("api", True) and e["started"] >= self.started]

    def _get(self, path: str) -> dict:
        request = urllib.request.Request(f"{self.url}{path}", headers={"api-key": self.key})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def lists(self) -> dict[str, int]:
        return {l["name"]: l["uniqueSubscribers"] for l in self._get("/contacts/lists?limit=50")["lists"]}

    def contacts(self) -> int:
        return int(self._get("/contacts?limit=1")["count"]) - 1  # less the account's own address

    def cpu(self) -> float | None:
        return self.process.cpu_seconds()


def main() -> None:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--unthrottled", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="run the emulator in this process")
    parser.add_argument("--import-workers", type=int, default=None,
                        help="imports the emulator processes at once (default: the emulator's)")
    parser.add_argument("--poll", type=float, default=None, help="the connector's import_poll_seconds")
    args = parser.parse_args()
    batch = changes(args.contacts)
    memberships = sum(len(c.tags_add) for c in batch)
    options = {"api_key": "bench", "latency": args.latency, "import_delay": IMPORT_DELAY,
               "import_rows_per_second": IMPORT_ROWS_PER_SECOND}
    if args.unthrottled:
        options["rate_limits"] = None
    if args.import_workers is not None:
        options["import_workers"] = args.import_workers
    with (InProcess if args.in_process else OwnProcess)(**options) as emulator:
        extra = {} if args.poll is None else {"import_poll_seconds": args.poll}
        settings = BrevoSettings(api_key=SecretStr("bench"), host=emulator.url, **extra)
        connector = BrevoConnector("bench", settings, Path(tempfile.gettempdir()))
        connector.fix()  # COUNTRY is not a default Brevo attribute
        # The write starts with the contacts bucket's window fresh, as the ceiling assumes (the
        # calls of fix() above would otherwise leave a window of theirs open into the write).
        time.sleep(GENERAL_TIER["contacts"][0][1])
        rows_per_import: list[int] = []  # what each import carries, for the ceiling below
        send_import = connector.api.import_contacts

        def import_contacts(rows, **kwargs):  # noqa: ANN001, ANN202 - a recording wrapper
            rows_per_import.append(len(rows))
            return send_import(rows, **kwargs)

        connector.api.import_contacts = import_contacts
        emulator.clear_log()
        setup_calls = connector.api.calls
        emulator_cpu_started = emulator.cpu()
        started, cpu_started = time.monotonic(), time.process_time()
        result = connector.write(batch)
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        emulator_cpu = None if emulator_cpu_started is None else emulator.cpu() - emulator_cpu_started
        log = emulator.log()
        assert all(o.status == "ok" for o in result.outcomes), "some contacts were not written"
        stored = emulator.contacts()
        members = {name: n for name, n in emulator.lists().items() if name in LISTS}
        connector.close()
    by_op = dict(connector.api.calls_by_op)
    for op in ("get_attributes", "create_attribute"):
        by_op.pop(op, None)
    # Lower bound: every contact's row once plus one email per membership, packed into 10 MB
    # imports (each needs at least one process poll), plus the unavoidable setup reads/creates.
    row_bytes = sum(len(json.dumps({"email": c.contact_key, "attributes": {"FIRSTNAME": "x"}})) for c in batch[:1]) * len(batch)
    email_bytes = sum(len(json.dumps({"email": c.contact_key})) for c in batch[:1]) * memberships
    min_imports = math.ceil((row_bytes + email_bytes) / IMPORT_MAX_BYTES)
    setup = by_op.get("get_lists", 0) + by_op.get("get_folders", 0) + by_op.get("create_folder", 0) + by_op.get("create_list", 0)
    minimum = setup + 2 * min_imports
    # What the documented limits alone impose on the calls made (contacts: 10/s; others: per hour).
    per_bucket: dict[str, int] = {}
    for entry in log:
        bucket = bucket_for(entry["path"])
        per_bucket[bucket] = per_bucket.get(bucket, 0) + 1
    floor = 0.0
    for bucket, count in per_bucket.items():
        for limit, window in (() if args.unthrottled else GENERAL_TIER[bucket]):
            floor = max(floor, (math.ceil(count / limit) - 1) * window)
    # The ceiling of the push: what no client can beat against this service (``ceiling``
    # below): the set-up calls in the rounds their dependencies allow, the imports as early as
    # the contacts bucket's windows let them in, processed as the emulator models it, in the
    # best order, and a poll answered the instant the last one completes.
    imports = [e for e in log if e["path"] == "/v3/contacts/import"]
    workers = args.import_workers or 4  # the emulator's default import_workers
    rounds = [n for n in (by_op.get("get_lists", 0) + by_op.get("get_folders", 0), by_op.get("create_folder", 0),
                          by_op.get("create_list", 0)) if n]
    window = None if args.unthrottled else GENERAL_TIER["contacts"][0]
    ceiling = max(floor, _ceiling(rounds, rows_per_import, args.latency, window, workers))
    # The ceiling recorded before set-up calls went side by side: 9 set-up calls one after
    # another, the imports 0.1 s apart, processing without the windows (for comparison only).
    processing = _makespan([IMPORT_DELAY + n / IMPORT_ROWS_PER_SECOND for n in rows_per_import], workers)
    sends = max(0, len(imports) - 1) * (0.0 if args.unthrottled else 0.1)
    serial_ceiling = max(floor, setup * args.latency + sends + args.latency + processing + args.latency)
    figures = {
        "contacts": args.contacts,
        "memberships": memberships,
        "latency_s": args.latency,
        "rate_limits": "none" if args.unthrottled else "general tier",
        "emulator": "in-process" if args.in_process else "own process",
        "calls_total": result.calls,
        "calls_by_op": by_op,
        "calls_minimum": minimum,
        "naive_list_add_calls": math.ceil(args.contacts / 150) + sum(math.ceil(n / 150) for n in members.values() if n),
        "wall_s": round(wall, 2),
        "rate_limit_floor_s": floor,
        "ceiling_s": round(ceiling, 2),
        "wall_over_ceiling": round(wall / ceiling, 2) if ceiling else None,
        "ceiling_serial_setup_s": round(serial_ceiling, 2),
        "wall_over_serial_setup_ceiling": round(wall / serial_ceiling, 2) if serial_ceiling else None,
        "rows_per_import": rows_per_import,
        "connector_cpu_s": round(cpu, 2),
        "emulator_cpu_s": None if emulator_cpu is None else round(emulator_cpu, 2),
        "request_bytes": sum(e["request_bytes"] for e in log),
        "stored_contacts": stored,
        "list_members": members,
        "pacer_waits": connector.api.pacer.waits,
        "status_429": sum(1 for e in log if e["status"] == 429),
        "setup_calls_before_write": setup_calls,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        # Each request of the write: seconds from the write's start to its arrival and answer.
        "timeline": [f"{e['method']} {e['path']} {e['status']} {e['started'] - started:.2f}-{e['ended'] - started:.2f}"
                     for e in sorted(log, key=lambda e: e["started"])],
    }
    print(json.dumps(figures, indent=2))


def _ceiling(rounds: list[int], rows: list[int], latency: float, window: tuple[int, float] | None,
             workers: int) -> float:
    """The earliest the last import can be completed. Set-up: ``rounds`` of calls sent side by
    side, each round after the one before (reads of the lists and folders, then the folder's
    create, then the lists' creates, which need it). Every call is counted by the emulator's
    fixed window of the contacts bucket (``window``: requests, seconds; the first count opens
    it) when it arrives, ``latency`` after it is sent; a call the window has no room for
    arrives when the next one opens. Imports are accepted when they arrive (parsing costs a
    perfect service nothing) and processed in that order, ``workers`` at once, each for
    IMPORT_DELAY + rows / IMPORT_ROWS_PER_SECOND; the best of every order of sending them."""
    state = {"start": None, "count": 0}

    def arrive(at: float) -> float:
        if window is None:
            return at
        limit, seconds = window
        if state["start"] is not None and at < state["start"]:
            at = state["start"]  # the window the call is counted in opened after it was sent
        if state["start"] is not None and at >= state["start"] + seconds:
            state["start"], state["count"] = None, 0
        if state["start"] is not None and state["count"] >= limit:
            at = state["start"] + seconds
            state["start"], state["count"] = None, 0
        if state["start"] is None:
            state["start"] = at
        state["count"] += 1
        return at

    sent = 0.0
    for calls in rounds:
        sent = max(arrive(sent + latency) for _ in range(calls))  # the round's last answer
    after_setup = dict(state)
    best = math.inf
    orders = itertools.permutations(rows) if len(rows) <= 8 else [sorted(rows, reverse=True)]
    for order in set(orders):
        state.update(after_setup)
        accepted = [arrive(sent + latency) for _ in order]
        best = min(best, _makespan_from(accepted, [IMPORT_DELAY + n / IMPORT_ROWS_PER_SECOND for n in order], workers))
    return best if rows else sent


def _makespan_from(accepted: list[float], durations: list[float], workers: int) -> float:
    """When the last job ends, each started on arrival (``accepted``, in that order) or when one
    of ``workers`` frees up."""
    free = [0.0] * max(1, workers)
    end = 0.0
    for at, duration in sorted(zip(accepted, durations), key=lambda job: job[0]):
        free.sort()
        free[0] = max(free[0], at) + duration
        end = max(end, free[0])
    return end


def _makespan(durations: list[float], workers: int) -> float:
    """When the last of ``durations`` ends, run in order by ``workers`` at once."""
    ends = [0.0] * max(1, workers)
    for duration in durations:
        ends.sort()
        ends[0] += duration
    return max(ends)


if __name__ == "__main__":
    main()

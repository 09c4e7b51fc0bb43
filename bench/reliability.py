"""Reliability soak: many SIGKILLs of the real `segsync sync` while 30% of requests fail.

    .venv/bin/python bench/reliability.py [--contacts 3000] [--rounds 4] [--kills 20]
        [--fault-rate 0.3] [--latency 0.02] [--seed 1] [--mc-connections 2]

The harness of tests/test_reliability_kill.py and tests/test_reliability_faults.py, larger: the
demo's synthetic business (``--contacts`` people, their events and consent; half of the
suppressed people start out mailable in both ESPs) is synced in ``--rounds`` rounds (each round
after the first appends opt-outs of mailable people and sign-ups). Each round's sync is SIGKILLed
at seeded points (pull, evaluate or push; ``--kills`` in all, spread over the rounds) and
restarted until a run succeeds, with ``--fault-rate`` of all requests to both emulators failing
(429, 5xx, timeouts after which the request is applied, connection resets, in turn). A second
project gets the same rounds without kills or faults. Prints the figures for
bench/RESULTS-reliability.md (JSON on stdout, progress on stderr): runs, kill points per phase, faults per kind, records checked,
records lost, suppressed people ever sent as mailable, re-sends per kill, duration.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/ package

from tests.reliability import (  # noqa: E402
    Emulators,
    KillPoint,
    Project,
    Settings,
    attempts_per_request,
    final_suppression_breaches,
    resends_per_kill,
    retry_after_breaches,
    run_sync,
    suppressed_subscribes,
    sync_until_complete,
    writes,
)

PHASES = ("pull", "evaluate", "push")


def kill_points(seed: int) -> Iterator[KillPoint]:
    rng = random.Random(seed)
    while True:
        phase = rng.choice(PHASES)
        if phase == "push":
            yield KillPoint("push", writes=rng.randint(1, 5))
        elif phase == "pull":
            yield KillPoint("pull", delay=rng.uniform(0.0, 2.0))
        else:
            yield KillPoint("evaluate", delay=rng.uniform(0.0, 0.5))


def differing(left: dict, right: dict) -> int:
    """Addresses whose state differs, or that only one side holds."""
    return sum(1 for key in left.keys() | right.keys() if left.get(key) != right.get(key))


def soak(args: argparse.Namespace, base: Path) -> dict:
    common = dict(contacts=args.contacts, seed=args.seed, latency=args.latency,
                  mc_max_connections=args.mc_connections, client_timeout=1.0, timeout_delay=1.5)
    clean_settings = Settings(**common)
    faulty_settings = Settings(**common, fault_rate=args.fault_rate, fault_seed=args.seed)
    plan = kill_points(args.seed)
    began = time.perf_counter()
    runs, breaches, clean_runs = [], [], []
    with Emulators(clean_settings) as clean, Emulators(faulty_settings) as faulty:
        clean_project = Project(base / "clean", clean, clean_settings)
        clean_project.seed_suppressed_as_mailable()
        project = Project(base / "soak", faulty, faulty_settings)
        project.seed_suppressed_as_mailable()
        opt_outs, sign_ups = max(1, args.contacts // 50), max(1, args.contacts // 30)
        for number in range(args.rounds):
            if number:
                for p in (clean_project, project):
                    p.append_changes(number, opt_outs=opt_outs, new_contacts=sign_ups)
            clean_runs.append(run_sync(clean_project, number))
            suppressed = project.suppressed()
            # Kill points a round did not reach (it finished first) move on to the next rounds.
            done = sum(r.killed for r in runs)
            budget = -(-(args.kills - done) // (args.rounds - number))
            round_runs = sync_until_complete(project, itertools.islice(plan, budget), max_runs=100)
            breaches += suppressed_subscribes([r for run in round_runs for r in run.requests], suppressed)
            runs += round_runs
            print(f"round {number}: {len(round_runs)} runs, {sum(r.killed for r in round_runs)} kills, "
                  f"{time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
        # Both settle once more (the echo of each last push is pulled), then are compared.
        settle = [run_sync(clean_project, args.rounds), run_sync(project, len(runs))]
        seconds = time.perf_counter() - began
        clean_mc, clean_brevo, mc, brevo = (clean.mailchimp_view(), clean.brevo_view(),
                                            faulty.mailchimp_view(), faulty.brevo_view())
        clean_store, store = clean_project.store_view(), project.store_view()
        suppressed = project.suppressed()
        final = final_suppression_breaches(faulty, suppressed)
        injected = faulty.faults_injected()
        bounds = project.resend_bounds()
        clean_lists, lists = clean.brevo_list_names(), faulty.brevo_list_names()
        mc_peak, mc_concurrency = faulty.mc.peak_in_flight, faulty.mc.max_concurrency()
        requests = [r for run in runs for r in run.requests]
    kills = [r for r in runs if r.killed]
    resends = resends_per_kill(runs)
    records = writes(requests)
    throttled, early = retry_after_breaches(requests, faulty_settings.retry_after)
    attempts = [max(attempts_per_request(r for r in run.requests if r.method != "GET").values(), default=0)
                for run in runs]
    return {
        "command": " ".join(["bench/reliability.py", *sys.argv[1:]]),
        "contacts": args.contacts, "rounds": args.rounds, "fault_rate": args.fault_rate,
        "runs": len(runs), "runs_unfinished_not_killed": sum(1 for r in runs if not r.killed and not r.finished),
        "last_runs_finished": all(r.finished for r in settle + clean_runs),
        "exit_codes": dict(Counter(r.returncode for r in runs)),
        "kills": len(kills),
        "kills_planned_by_phase": dict(Counter(r.planned.phase for r in kills)),
        "kills_landed_by_phase": dict(Counter(r.phase_at_kill for r in kills)),
        "faults_injected": {esp: dict(c) for esp, c in injected.items()},
        "requests": {esp: sum(1 for r in requests if r.system == esp) for esp in ("mc", "brevo")},
        "max_attempts_of_one_write_in_a_run": max(attempts, default=0),
        "injected_429s": throttled, "retries_sooner_than_retry_after": len(early),
        "mc_peak_in_flight": mc_peak, "mc_max_concurrency": mc_concurrency,
        "mc_refused_by_connection_limit": sum(1 for r in requests if not r.admitted),
        "record_writes_checked": len(records),
        "records_checked": {"mc": len(mc), "brevo": len(brevo), "events": store["events"],
                            "acknowledged": len(store["acknowledged"])},
        "lost_or_different": {"mc": differing(mc, clean_mc), "brevo": differing(brevo, clean_brevo),
                              "events": abs(store["events"] - clean_store["events"]),
                              "acknowledged": len(set(store["acknowledged"]) ^ set(clean_store["acknowledged"])),
                              "memberships": len(set(store["memberships"]) ^ set(clean_store["memberships"]))},
        "duplicate_events": store["duplicate_events"],
        "brevo_lists": {"clean": clean_lists, "soak": lists},
        "suppressed_people": len(suppressed),
        "suppressed_sent_as_mailable": len(breaches),
        "suppressed_mailable_at_end": final,
        "resends_per_kill_max": {esp: max((r[esp] for r in resends), default=0) for esp in ("mc", "brevo")},
        "resends_total": {esp: sum(r[esp] for r in resends) for esp in ("mc", "brevo")},
        "resend_bound_declared": bounds,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mc-connections", type=int, default=2)
    args = parser.parse_args()
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        figures = soak(args, Path(tmp))
    figures["uptime_before"] = load_before
    figures["uptime_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

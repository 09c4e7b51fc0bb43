"""Crash safety, proven with SIGKILL: the real `segsync sync` killed across pull, evaluate and push.

The emulators (Mailchimp and Brevo, 50 ms added to every request) run in this process, so they
outlive each killed sync. A project with 2,000 contacts, ~100,000 events and consent with
opt-outs, bounces and complaints (half of those people mailable in both ESPs before the first
sync) is synced once without interruption (the baseline), and once
more from scratch with SIGKILLs at seeded points, restarted until a run completes. Checked on
the emulators' state, their request logs (every body) and the store:

* nothing lost: both ESPs and the store end exactly as after the clean run;
* no event duplicated in the store;
* no suppressed person (opt-out, bounce, complaint) ever sent as mailable, in any request;
* a kill re-sends at most one write batch per ESP (``write_concurrency × write_batch_size``).

The soak with more kills, more data and faults is ``bench/reliability.py``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from .reliability import (
    Emulators,
    KillPoint,
    Project,
    RunResult,
    Settings,
    final_suppression_breaches,
    resends_per_kill,
    run_sync,
    suppressed_subscribes,
    sync_until_complete,
    writes,
)

# Two Mailchimp connections: a kill mid-push then finds a few of the audience's ~8 write
# requests in flight, not all of them.
SETTINGS = Settings(contacts=2000, seed=3, latency=0.05, mc_max_connections=2)
KILL_SEED = 20240917


def kill_points(seed: int) -> Iterator[KillPoint]:
    """One kill while pulling, one around evaluation, two while pushing."""
    rng = random.Random(seed)
    yield KillPoint("pull", delay=rng.uniform(0.3, 1.5))
    yield KillPoint("evaluate", delay=rng.uniform(0.0, 0.3))
    yield KillPoint("push", writes=rng.randint(1, 6))
    yield KillPoint("push", writes=rng.randint(1, 4))


class Outcome:
    def __init__(self, base: Path) -> None:
        with Emulators(SETTINGS) as clean:
            self.baseline_project = Project(base / "clean", clean, SETTINGS)
            self.baseline_project.seed_suppressed_as_mailable()
            self.baseline = run_sync(self.baseline_project, 0)
            self.baseline_settle = run_sync(self.baseline_project, 1)
            self.baseline.requests = clean.requests_since(0.0, 0.0)
            self.baseline_mc = clean.mailchimp_view()
            self.baseline_brevo = clean.brevo_view()
            self.baseline_store = self.baseline_project.store_view()
        with Emulators(SETTINGS) as killed:
            self.project = Project(base / "killed", killed, SETTINGS)
            self.seeded = self.project.seed_suppressed_as_mailable()
            self.runs: list[RunResult] = sync_until_complete(self.project, kill_points(KILL_SEED), max_runs=8)
            # Both sides sync once more: each last push's echo (what the ESPs now report) is
            # pulled, so the stores are compared settled.
            self.settle = run_sync(self.project, len(self.runs))
            self.mc = killed.mailchimp_view()
            self.brevo = killed.brevo_view()
            self.brevo_lists = killed.brevo_list_names()
            self.store = self.project.store_view()
            self.suppressed = self.project.suppressed()
            self.final_breaches = final_suppression_breaches(killed, self.suppressed)
            self.bounds = self.project.resend_bounds()

    @property
    def kills(self) -> list[RunResult]:
        return [r for r in self.runs if r.killed]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return Outcome(tmp_path_factory.mktemp("kill"))


def test_the_clean_run_and_the_last_restart_succeed(outcome: Outcome) -> None:
    for run in (outcome.baseline, outcome.baseline_settle, outcome.runs[-1], outcome.settle):
        assert run.finished, run.stdout + run.stderr
    # The kills happened (pull first; the rest wherever their point fell) and each was a real
    # SIGKILL, not an exit.
    assert len(outcome.kills) >= 2, [(r.planned, r.killed) for r in outcome.runs]
    assert outcome.kills[0].phase_at_kill == "pull"
    assert all(r.returncode == -9 for r in outcome.kills)


def test_nothing_is_lost_both_esps_and_the_store_end_as_after_one_clean_run(outcome: Outcome) -> None:
    assert len(outcome.baseline_mc) > 1500 and len(outcome.baseline_brevo) > 1500  # not vacuous
    assert outcome.mc == outcome.baseline_mc
    assert outcome.brevo == outcome.baseline_brevo
    assert outcome.brevo_lists == ["buyers", "pricing", "readers", "segsync"]
    for key in ("contacts", "events", "acknowledged", "memberships"):
        assert outcome.store[key] == outcome.baseline_store[key], key


def test_no_event_is_duplicated_in_the_store(outcome: Outcome) -> None:
    assert outcome.store["events"] == outcome.project.counts["events"] - 1  # one deliberately broken row
    assert outcome.store["duplicate_events"] == 0


def test_no_suppressed_person_is_ever_sent_as_mailable(outcome: Outcome) -> None:
    suppressed = outcome.suppressed
    requests = [r for run in outcome.runs for r in run.requests]
    sent = {w.email for w in writes(requests)}
    # Opt-outs, bounces and complaints are in the data; half of them started out mailable in
    # both ESPs and were written (unsubscribed, blocklisted), the others are never added.
    assert len(suppressed) > 100 and suppressed & sent == outcome.seeded
    assert [(w.system, w.email, w.request.path) for w in suppressed_subscribes(requests, suppressed)] == []
    assert suppressed_subscribes(outcome.baseline.requests, suppressed) == []
    assert outcome.final_breaches == {"mc": [], "brevo": []}


def test_a_kill_resends_at_most_one_write_batch_per_esp(outcome: Outcome) -> None:
    resends = resends_per_kill(outcome.runs)
    assert len(resends) == len(outcome.kills)
    # Each connector declares its write batch; without one, a whole write is acknowledged at once.
    assert outcome.bounds["mc"] is not None, "the Mailchimp connector declares no write batch"
    for per_kill in resends:
        for esp, count in per_kill.items():
            bound = outcome.bounds[esp]
            assert bound is None or count <= bound, (esp, count, bound, resends)

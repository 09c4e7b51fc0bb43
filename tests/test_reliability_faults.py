"""Faults, proven with the real CLI: 30% of all requests to both emulators fail, and a sync
repeated until it succeeds ends exactly where a sync without faults ends, over two rounds of
input (the first sync; then opt-outs of mailable people and new sign-ups).

Every API request either emulator gets (every endpoint the connectors use: pulls, creates,
imports, batch updates, tag and list writes, process polls) draws from a seeded generator: 30%
fail, the kinds in turn: 429 (``Retry-After`` / ``x-sib-ratelimit-reset`` 0.2 s), a bare 500/502/503,
a timeout (the answer is held 1.5 s, past the client's 1 s timeout, and the request is applied
anyway) and a connection reset; and on top, scripted, the first create of a Brevo list times
out, and Mailchimp's first batch-subscribe (which creates the tags its members carry) times out,
the next one is reset and the one after is refused with a 429 (the push makes few Mailchimp
calls, too few for the random draws alone to act out every kind there). Checked on the emulators' state and request logs:

* correct final state: both ESPs hold what one clean sync leaves (no list or tag created twice),
  and no suppressed person was ever sent as mailable;
* bounded retries: within a run no write request is sent more than ``max_attempts`` (6) times,
  and the sync succeeds within 6 runs;
* limits kept: never more than 10 requests in progress at the Mailchimp emulator, none refused
  by its connection limit, and every retry after a 429 waits at least the time the 429 asked.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .reliability import (
    LIST_ID,
    Emulators,
    Project,
    Request,
    RunResult,
    Settings,
    attempts_per_request,
    final_suppression_breaches,
    retry_after_breaches,
    run_sync,
    suppressed_subscribes,
)

CLEAN = Settings(contacts=1000, seed=5, latency=0.01, client_timeout=1.0)
FAULTY = Settings(contacts=1000, seed=5, latency=0.01, client_timeout=1.0, fault_rate=0.3, fault_seed=11,
                  retry_after=0.2, timeout_delay=1.5)
MAX_RUNS = 6  # per round
# Round 0 is the first sync; round 1 brings 40 opt-outs of mailable people and 60 sign-ups.
ROUNDS = ((0, 0), (40, 60))


class Outcome:
    def __init__(self, base: Path) -> None:
        with Emulators(CLEAN) as clean, Emulators(FAULTY) as faulty:
            clean_project = Project(base / "clean", clean, CLEAN)
            clean_project.seed_suppressed_as_mailable()
            self.project = Project(base / "faulty", faulty, FAULTY)
            # On top of the random faults: the first create of a Brevo list and the first
            # Mailchimp batch-subscribe (its members' tags are created by it) lose their answer
            # (applied, but the client times out), so they are retried; the next batch-subscribe
            # is reset, the one after it refused with a 429 (Retry-After).
            scripted = [
                ("brevo", faulty.brevo.add_fault(kind="timeout", method="POST", path="^/v3/contacts/lists$",
                                                 delay=FAULTY.timeout_delay)),
                ("mc", faulty.mc.inject("timeout", delay=FAULTY.timeout_delay, method="POST",
                                        path=f"^/lists/{LIST_ID}$")),
                ("mc", faulty.mc.inject("reset", method="POST", path=f"^/lists/{LIST_ID}$")),
                ("mc", faulty.mc.inject("error", error="TooManyRequests", retry_after=FAULTY.retry_after,
                                        method="POST", path=f"^/lists/{LIST_ID}$")),
            ]
            self.seeded = self.project.seed_suppressed_as_mailable()
            self.clean_runs: list[RunResult] = []
            self.rounds: list[list[RunResult]] = []  # the faulty project's runs, per round
            self.suppressed: list[set[str]] = []  # per round, as the input says
            for number, (opt_outs, new_contacts) in enumerate(ROUNDS):
                if number:
                    clean_project.append_changes(number, opt_outs=opt_outs, new_contacts=new_contacts)
                    self.project.append_changes(number, opt_outs=opt_outs, new_contacts=new_contacts)
                self.suppressed.append(self.project.suppressed())
                self.clean_runs.append(run_sync(clean_project, number))
                self.rounds.append(self._until_success(faulty))
            self.clean_mc, self.clean_brevo = clean.mailchimp_view(), clean.brevo_view()
            self.clean_lists = clean.brevo_list_names()
            self.mc, self.brevo = faulty.mailchimp_view(), faulty.brevo_view()
            self.lists = faulty.brevo_list_names()
            self.injected = faulty.faults_injected()
            for esp, fault in scripted:
                self.injected[esp]["429" if fault.error == "TooManyRequests" else fault.kind] += fault.fired
            self.peak_in_flight = faulty.mc.peak_in_flight
            self.mc_max_concurrency = faulty.mc.max_concurrency()
            self.final_breaches = final_suppression_breaches(faulty, self.suppressed[-1])

    def _until_success(self, faulty: Emulators) -> list[RunResult]:
        runs: list[RunResult] = []
        for index in range(MAX_RUNS):
            started = time.monotonic()
            run = run_sync(self.project, index)
            run.requests = faulty.requests_since(started)
            runs.append(run)
            if run.finished:
                break
        return runs

    @property
    def runs(self) -> list[RunResult]:
        return [run for runs in self.rounds for run in runs]

    @property
    def requests(self) -> list[Request]:
        return [r for run in self.runs for r in run.requests]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return Outcome(tmp_path_factory.mktemp("faults"))


def test_faults_of_every_kind_were_injected_at_both_esps(outcome: Outcome) -> None:
    for run in outcome.clean_runs:
        assert run.finished, run.stdout + run.stderr
    for esp in ("mc", "brevo"):
        assert set(outcome.injected[esp]) == {"429", "5xx", "timeout", "reset"}, outcome.injected
    statuses = {(r.system, r.status) for r in outcome.requests}
    assert {("mc", 429), ("brevo", 429), ("mc", 0), ("brevo", 0)} <= statuses


def test_a_repeated_sync_succeeds_and_ends_as_a_clean_sync_does(outcome: Outcome) -> None:
    for runs in outcome.rounds:
        last = runs[-1]
        assert last.finished, [(r.returncode, r.stdout[-2000:]) for r in runs]
    assert len(outcome.clean_mc) > 900
    assert outcome.mc == outcome.clean_mc
    assert outcome.brevo == outcome.clean_brevo


def test_a_create_whose_answer_was_lost_creates_nothing_twice(outcome: Outcome) -> None:
    assert outcome.clean_lists == ["buyers", "pricing", "readers", "segsync"]
    assert outcome.lists == outcome.clean_lists


def test_no_suppressed_person_is_ever_sent_as_mailable_under_faults(outcome: Outcome) -> None:
    assert outcome.seeded and outcome.seeded <= outcome.suppressed[0]
    # Round 1's opt-outs were mailable in round 0: from round 1 on, never again.
    assert len(outcome.suppressed[1] - outcome.suppressed[0]) == ROUNDS[1][0]
    for runs, suppressed in zip(outcome.rounds, outcome.suppressed):
        requests = [r for run in runs for r in run.requests]
        assert [(w.system, w.email, w.request.path) for w in suppressed_subscribes(requests, suppressed)] == []
    assert outcome.final_breaches == {"mc": [], "brevo": []}


def test_retries_are_bounded(outcome: Outcome) -> None:
    # 6 attempts per request (the connectors' max_attempts); a write failed 6 times is sent
    # again only by the next run.
    for run in outcome.runs:
        writes = [r for r in run.requests if r.method != "GET"]
        attempts = attempts_per_request(writes)
        assert max(attempts.values()) <= FAULTY.max_attempts, attempts.most_common(3)


def test_mailchimp_connection_limit_and_retry_after_are_kept(outcome: Outcome) -> None:
    assert outcome.peak_in_flight <= 10 and outcome.mc_max_concurrency <= 10
    assert [(r.method, r.path) for r in outcome.requests if not r.admitted] == []
    throttled, early = retry_after_breaches(outcome.requests, FAULTY.retry_after)
    assert throttled >= 5
    assert [(r.system, r.method, r.path, r.ended, retry.started, retry.status) for r, retry in early] == []

"""The harness behind the kill and fault tests and ``bench/reliability.py``.

A project syncs the demo's synthetic business (``segsync.scaffold.write_sample_data``: contacts,
two years of events, consent with opt-outs, bounces and complaints, a few broken rows) from files
into the Mailchimp and Brevo emulators, with segments pushed as Mailchimp tags and Brevo lists.
Syncs are the real CLI in a child process (``python -m segsync sync``); the emulators run in the
calling process, so they outlive a killed sync and their state and request logs (bodies kept)
are read directly.

The request logs are turned into per-record writes (:class:`Write`), which is what the
guarantees are checked on: which records each run sent, which were sent again after a kill,
and whether any request ever asked for a suppressed person to be mailable.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from segsync.config import load_config
from segsync.model import normalize_email
from segsync.plugins import PluginHost
from segsync.scaffold import write_sample_data
from segsync.store import Store
from segsync.sync.runner import Runner
from segsync.testing.faults import RandomFaults
from segsync_brevo.emulator import BrevoEmulator
from segsync_brevo.settings import DEFAULT_ATTRIBUTES
from segsync_mailchimp.emulator import MailchimpEmulator

MC_KEY = "0123456789abcdef0123456789abcdef-us1"
BREVO_KEY = "brevo-reliability-key"
LIST_ID = "aud0001"
# Event times are fixed, and the segments use whole-history rules, so memberships do not
# depend on when a run happens: an interrupted sequence must end where one clean run ends.
DATA_NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)  # before every record in the data
SUPPRESSED = frozenset({"opted_out", "bounced", "complained"})
SEGMENTS = """
    [[segments]]
    name = "readers"
    rule = "opens() >= 10"
    [segments.destinations.mc]
    tag = "readers"
    [segments.destinations.brevo]
    list = "readers"

    [[segments]]
    name = "buyers"
    rule = "spend() > 100"
    [segments.destinations.mc]
    tag = "buyers"
    [segments.destinations.brevo]
    list = "buyers"

    [[segments]]
    name = "pricing"
    rule = 'visited("/pricing")'
    [segments.destinations.mc]
    tag = "pricing"
    [segments.destinations.brevo]
    list = "pricing"
"""


@dataclass
class Settings:
    """What differs between the CI tests and the soak."""

    contacts: int = 2000
    seed: int = 3
    latency: float = 0.02  # seconds added to every emulator request
    fault_rate: float = 0.0
    fault_seed: int = 0
    retry_after: float = 0.2  # Retry-After / x-sib-ratelimit-reset on injected 429s
    client_timeout: float = 5.0  # per request, both connectors
    timeout_delay: float = 2.0  # how long an injected timeout holds its answer
    max_attempts: int = 6  # per request, both connectors
    mc_max_connections: int = 10


class Emulators:
    """Both emulators in this process, bodies kept, optionally failing a share of requests."""

    def __init__(self, settings: Settings) -> None:
        def faults(offset: int) -> RandomFaults | None:
            if not settings.fault_rate:
                return None
            return RandomFaults(settings.fault_rate, seed=settings.fault_seed + offset,
                                retry_after=settings.retry_after, timeout_delay=settings.timeout_delay)

        self.mc = MailchimpEmulator(api_key=MC_KEY, latency=settings.latency,
                                    random_faults=faults(0), keep_bodies=True)
        self.mc.state.create_audience(LIST_ID)
        self.brevo = BrevoEmulator(api_key=BREVO_KEY, latency=settings.latency, import_delay=0.02,
                                   random_faults=faults(1), keep_bodies=True)
        # The account as `segsync check --fix` leaves it: every mapped attribute exists.
        for name in DEFAULT_ATTRIBUTES.values():
            if name not in ("FIRSTNAME", "LASTNAME"):
                self.brevo.state.add_attribute(name)

    def __enter__(self) -> Emulators:
        self.mc.start()
        self.brevo.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mc.stop()
        self.brevo.stop()

    def seed_mailable(self, emails: Iterable[str]) -> None:
        """Put people in both ESPs as mailable, opted in long before any consent record in the
        data (as another tool left them): segsync must unsubscribe and blocklist the suppressed."""
        for email in emails:
            self.mc.state.seed_member(LIST_ID, email, "subscribed", timestamp_signup=LONG_AGO,
                                      timestamp_opt=LONG_AGO, source="Hosted Signup Form")
            self.brevo.state.seed_contact(email, modified_at=LONG_AGO)

    def faults_injected(self) -> dict[str, Counter[str]]:
        return {name: (faults.injected.copy() if faults else Counter())
                for name, faults in (("mc", self.mc.random_faults), ("brevo", self.brevo.faults.random))}

    def mailchimp_view(self) -> dict[str, tuple]:
        """Audience: address -> (status, merge fields holding a value, tags)."""
        state = self.mc.state
        with state.lock:
            audience = state.audiences[LIST_ID]
            return {m.email_address.lower(): (m.status,
                                              tuple(sorted((k, v) for k, v in m.merge_fields.items() if v not in ("", None))),
                                              tuple(sorted(state.tag_names(LIST_ID, m))))
                    for m in audience.members.values()}

    def brevo_view(self) -> dict[str, tuple]:
        """Account: address -> (blocklisted, attributes, list names)."""
        state = self.brevo.state
        with state.lock:
            return {c.email.lower(): (c.email_blacklisted, tuple(sorted(c.attributes.items())),
                                      tuple(sorted(state.lists[i].name for i in c.list_ids)))
                    for c in state.contacts.values()}

    def brevo_list_names(self) -> list[str]:
        with self.brevo.state.lock:
            return sorted(found.name for found in self.brevo.state.lists.values())

    # -- the request logs as records -------------------------------------------------------

    def requests_since(self, monotonic_start: float, monotonic_end: float = float("inf")) -> list[Request]:
        """API requests that started in the window, from both logs (both on time.monotonic()),
        in order of arrival."""
        out = [Request("mc", r.method, r.path, urlencode(sorted(r.query.items()), doseq=True), r.status,
                       r.fault, r.body, r.started, r.ended, r.admitted, r.started - monotonic_start)
               for r in self.mc.calls(admitted_only=False) if monotonic_start <= r.started < monotonic_end]
        out += [Request("brevo", e.method, e.path, e.query_string, e.status, e.fault, e.body, e.started, e.ended,
                        True, e.started - monotonic_start)
                for e in self.brevo.requests() if monotonic_start <= e.started < monotonic_end]
        return sorted(out, key=lambda r: r.offset)


@dataclass(frozen=True)
class Request:
    system: str  # mc | brevo
    method: str
    path: str
    query: str
    status: int  # 0: no answer (connection dropped or reset)
    fault: str | None
    body: str | None
    started: float  # that emulator's own clock
    ended: float
    admitted: bool  # False: refused by Mailchimp's connection limit
    offset: float  # seconds since the window started

    @property
    def applied(self) -> bool:
        """Did the service carry it out? (An injected timeout answers 2xx after the client
        gave up: done, but the client never heard.)"""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Write:
    """One record in one write request: which system, what kind of write, whose, and what."""

    system: str
    kind: str  # member | tag | delete (mc); contact | list | delete (brevo)
    email: str
    target: str  # the tag's segment id or the list id with + or -, else ""
    subscribes: bool  # asks for the person to be mailable
    request: Request

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.system, self.kind, self.email, self.target


def writes(requests: Iterable[Request]) -> list[Write]:
    """Per-record writes in the requests, in order. Brevo flags a person mailable only by an
    explicit un-blocklisting, or by an import without the blocklist flag while they are not
    blocklisted already (an import can set the flag but never clear it)."""
    out: list[Write] = []
    blocklisted: dict[str, bool] = {}
    for r in requests:
        if r.method not in ("POST", "PUT", "PATCH", "DELETE"):
            continue
        body = json.loads(r.body) if r.body else {}
        parts = r.path.strip("/").split("/")
        if r.system == "mc":
            if r.method == "POST" and len(parts) == 2 and parts[0] == "lists":
                for m in body.get("members") or ():
                    out.append(Write("mc", "member", m["email_address"].lower(), "",
                                     m.get("status") in ("subscribed", "pending"), r))
            elif r.method == "POST" and len(parts) == 4 and parts[2] == "segments":
                for sign, name in (("+", "members_to_add"), ("-", "members_to_remove")):
                    out += [Write("mc", "tag", e.lower(), sign + parts[3], False, r) for e in body.get(name) or ()]
            elif parts[-1] == "delete-permanent" or (r.method == "DELETE" and "members" in parts):
                out.append(Write("mc", "delete", parts[3], "", False, r))
            continue
        if r.path == "/v3/contacts/import":
            flag = bool(body.get("emailBlacklist"))
            for row in body.get("jsonBody") or ():
                email = row["email"].lower()
                out.append(Write("brevo", "contact", email, "", not flag and not blocklisted.get(email, False), r))
                if r.applied and flag:
                    blocklisted[email] = True
        elif r.path == "/v3/contacts/batch":
            for entry in body.get("contacts") or ():
                email = entry["email"].lower()
                flag = entry.get("emailBlacklisted")
                out.append(Write("brevo", "contact", email, "", flag is False, r))
                if flag is not None and r.applied:
                    blocklisted[email] = flag
        elif r.path.startswith("/v3/contacts/lists/") and parts[-1] in ("add", "remove"):
            sign = "+" if parts[-1] == "add" else "-"
            out += [Write("brevo", "list", e.lower(), sign + parts[3], False, r) for e in body.get("emails") or ()]
        elif r.method == "DELETE" and parts[:2] == ["v3", "contacts"] and len(parts) == 3:
            out.append(Write("brevo", "delete", parts[2].lower(), "", False, r))
    return out


# -- the project --------------------------------------------------------------------------------


class Project:
    def __init__(self, root: Path, emulators: Emulators, settings: Settings) -> None:
        self.root = root
        self.emulators = emulators
        self.settings = settings
        root.mkdir(parents=True, exist_ok=True)
        self.counts = write_sample_data(root / "data", contacts=settings.contacts, seed=settings.seed, now=DATA_NOW)
        s = settings
        (root / "segsync.toml").write_text(textwrap.dedent(f"""
            [store]
            path = "store.duckdb"

            [connections.shop]
            type = "files"
            contacts = "data/contacts.csv"
            events = "data/events.jsonl"
            consent = "data/consent.csv"

            [connections.mc]
            type = "mailchimp"
            list_id = "{LIST_ID}"
            host = "{emulators.mc.url}"
            timeout = {s.client_timeout}
            max_connections = {s.mc_max_connections}
            max_attempts = {s.max_attempts}
            retry_wait_initial = 0.05
            retry_wait_max = {max(1.0, s.retry_after)}

            [connections.brevo]
            type = "brevo"
            host = "{emulators.brevo.url}"
            timeout_seconds = {s.client_timeout}
            max_attempts = {s.max_attempts}
            import_poll_seconds = 0.05
        """) + textwrap.dedent(SEGMENTS), encoding="utf-8")

    def seed_suppressed_as_mailable(self) -> set[str]:
        """Every second suppressed person (by address) starts out mailable in both ESPs; only
        ASCII addresses, the only ones Brevo holds (it refuses the others on import)."""
        seeded = set(sorted(e for e in self.suppressed() if e.isascii())[::2])
        self.emulators.seed_mailable(sorted(seeded))
        return seeded

    def append_changes(self, round_: int, *, opt_outs: int, new_contacts: int) -> None:
        """New input for another round: ``opt_outs`` people who were mailable opt out (newest
        record), and ``new_contacts`` people sign up with an opt-in. Deterministic per round."""
        when = DATA_NOW.isoformat()
        mailable = sorted(e for e in self.mailable_in_input() if e.isascii())
        leaving = mailable[round_::max(1, len(mailable) // opt_outs)][:opt_outs]
        joining = [f"new.{round_}.{i}@example.com" for i in range(new_contacts)]
        self._append("consent.csv", [
            *({"email": e, "channel": "email", "purpose": "marketing", "status": "opted_out", "timestamp": when,
               "method": "email_link", "evidence": f"round {round_}"} for e in leaving),
            *({"email": e, "channel": "email", "purpose": "marketing", "status": "opted_in", "timestamp": when,
               "method": "form", "evidence": f"round {round_}"} for e in joining),
        ])
        self._append("contacts.csv", [{"email": e, "first_name": "New", "last_name": f"Round{round_}"}
                                      for e in joining])

    def _append(self, name: str, rows: list[dict[str, str]]) -> None:
        path = self.root / "data" / name
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle))
        with path.open("a", encoding="utf-8", newline="") as handle:
            csv.DictWriter(handle, fieldnames=header, restval="").writerows(rows)

    def mailable_in_input(self) -> set[str]:
        return {e for e, status in self._latest_consent().items() if status not in SUPPRESSED}

    def env(self) -> dict[str, str]:
        return {**os.environ, "SEGSYNC_PLUGINS": "files,mailchimp,brevo",
                "SEGSYNC_MC_API_KEY": MC_KEY, "SEGSYNC_BREVO_API_KEY": BREVO_KEY}

    def start_sync(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "segsync", "sync", *args], cwd=self.root, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def suppressed(self) -> set[str]:
        """People whose latest consent record in the input is an opt-out, bounce or complaint."""
        return {e for e, status in self._latest_consent().items() if status in SUPPRESSED}

    def _latest_consent(self) -> dict[str, str]:
        latest: dict[str, tuple[str, str]] = {}
        with (self.root / "data/consent.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                email = normalize_email(row["email"])  # as the store keys people
                stamp = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
                if email not in latest or stamp >= latest[email][0]:
                    latest[email] = (stamp, row["status"])
        return {email: status for email, (_, status) in latest.items()}

    def store(self) -> Store:
        return Store(self.root / "store.duckdb", read_only=True)

    def store_view(self) -> dict[str, Any]:
        with self.store() as store:
            q = store.con.execute
            return {
                "contacts": q("SELECT count(*) FROM contacts").fetchone()[0],
                "events": q("SELECT count(*) FROM events").fetchone()[0],
                "duplicate_events": q("SELECT count(*) FROM (SELECT source, source_event_id FROM events "
                                      "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0],
                # Mailable or not; which suppression (complaint, unsubscribe) may differ when
                # the echo of a write is pulled before another destination's push.
                "acknowledged": sorted(q("SELECT destination, contact_key, status IN ('subscribed', 'pending') "
                                         "FROM acknowledged").fetchall()),
                "memberships": sorted(q("SELECT destination, contact_key, segment FROM acknowledged_memberships").fetchall()),
            }

    def resend_bounds(self) -> dict[str, int | None]:
        """Per ESP, the most records one kill may leave sent but unacknowledged:
        ``write_concurrency × write_batch_size`` as the connector declares them; None for a
        connector that declares no write batch (its whole write is acknowledged at once)."""
        runner = Runner(load_config(self.root / "segsync.toml"), PluginHost())
        saved = dict(os.environ)
        os.environ.update(self.env())
        try:
            connectors = runner.connectors()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        bounds: dict[str, int | None] = {}
        for name in ("mc", "brevo"):
            connector = connectors[name]
            size = getattr(connector, "write_batch_size", None)
            bounds[name] = None if size is None else size * getattr(connector, "write_concurrency", 1)
            connector.close()
        return bounds


# -- running, and killing, the CLI --------------------------------------------------------------


@dataclass
class KillPoint:
    """Where to kill a run: ``delay`` seconds after the phase's first progress line (pull,
    evaluate), or once the ESPs have answered ``writes`` write requests in this run (push)."""

    phase: str  # pull | evaluate | push
    delay: float = 0.0
    writes: int = 0


@dataclass
class RunResult:
    index: int
    planned: KillPoint | None
    killed: bool
    phase_at_kill: str | None  # the phase the last progress line read before the kill was in
    returncode: int
    stdout: str
    stderr: str
    requests: list[Request] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        """Ran to its end: succeeded, or with records a destination refused (the data holds
        addresses Brevo refuses; a clean run ends the same way)."""
        status = FINISHED.get(self.returncode)
        return not self.killed and status is not None and f": {status}" in self.stdout


FINISHED = {0: "succeeded", 3: "with-rejections"}  # `segsync sync` exit codes of a finished run
PHASE_OF = (("pull ", "pull"), ("evaluate ", "evaluate"), ("push ", "push"))


def _phase(line: str) -> str | None:
    return next((phase for prefix, phase in PHASE_OF if line.startswith(prefix)), None)


def run_sync(project: Project, index: int, kill: KillPoint | None = None, *args: str) -> RunResult:
    """One ``segsync sync``; with ``kill``, SIGKILLed at that point if it gets there first."""
    em = project.emulators
    mono, began = time.monotonic(), time.perf_counter()
    proc = project.start_sync(*args)
    lines: list[str] = []
    seen = threading.Condition()

    def read_stderr() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            with seen:
                lines.append(line.rstrip("\n"))
                seen.notify_all()
        with seen:
            seen.notify_all()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    stdout_chunks: list[str] = []
    out_reader = threading.Thread(target=lambda: stdout_chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    out_reader.start()
    killed, phase_at_kill = False, None
    if kill is not None:
        with seen:
            while proc.poll() is None and not any(_phase(l) == kill.phase for l in lines):
                seen.wait(0.05)
        if kill.phase == "push":
            while proc.poll() is None and sum(
                    1 for r in em.requests_since(mono) if r.method != "GET" and r.ended) < kill.writes:
                time.sleep(0.005)
        else:
            deadline = time.monotonic() + kill.delay
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        if proc.poll() is None:
            with seen:
                started = [l for l in lines if l.endswith(": started") or ": started (" in l]
                phase_at_kill = _phase(started[-1]) if started else "start"
            proc.send_signal(signal.SIGKILL)
            killed = True
    proc.wait()
    reader.join()
    out_reader.join()
    return RunResult(index, kill, killed, phase_at_kill, proc.returncode, "".join(stdout_chunks),
                     "\n".join(lines), seconds=time.perf_counter() - began)


def attach_requests(emulators: Emulators, runs: list[RunResult], clocks: list[float]) -> None:
    """Give each run the requests that started between its start and the next run's."""
    for i, run in enumerate(runs):
        end = clocks[i + 1] if i + 1 < len(clocks) else float("inf")
        run.requests = emulators.requests_since(clocks[i], end)


def sync_until_complete(project: Project, kills: Iterator[KillPoint | None], max_runs: int) -> list[RunResult]:
    """Run, killing at the next planned point each time (none once ``kills`` is exhausted),
    until a run finishes."""
    runs: list[RunResult] = []
    clocks: list[float] = []
    for index in range(max_runs):
        clocks.append(time.monotonic())
        run = run_sync(project, index, next(kills, None))
        runs.append(run)
        if run.finished:
            break
    attach_requests(project.emulators, runs, clocks)
    return runs


# -- what the guarantees are checked on ---------------------------------------------------------


def resends_per_kill(runs: list[RunResult]) -> list[dict[str, int]]:
    """Per killed run and ESP: people whose writes it sent (and the service applied) that a
    later run sent again — the work the kill cost, counted in changes (a person's upsert and
    tag writes are one change), the unit of a write batch."""
    per_run = [{w.key for w in writes(r.requests) if w.request.applied}
               for r in runs]
    out = []
    for i, run in enumerate(runs):
        if not run.killed:
            continue
        later = set().union(*per_run[i + 1:]) if i + 1 < len(per_run) else set()
        counts: Counter[str] = Counter(system for system, email in {(k[0], k[2]) for k in per_run[i] & later})
        out.append({"mc": counts["mc"], "brevo": counts["brevo"]})
    return out


def suppressed_subscribes(requests: Iterable[Request], suppressed: set[str]) -> list[Write]:
    """Every write, sent at any time, that asked for a suppressed person to be mailable."""
    return [w for w in writes(requests) if w.subscribes and w.email in suppressed]


def final_suppression_breaches(emulators: Emulators, suppressed: set[str]) -> dict[str, list[str]]:
    mc = emulators.mailchimp_view()
    brevo = emulators.brevo_view()
    return {
        "mc": sorted(e for e in suppressed if e in mc and mc[e][0] in ("subscribed", "pending")),
        "brevo": sorted(e for e in suppressed if e in brevo and not brevo[e][0]),
    }


def attempts_per_request(requests: Iterable[Request]) -> Counter[tuple[str, str, str, str, str | None]]:
    """How often each distinct request (system, method, path, query, body) was sent."""
    return Counter((r.system, r.method, r.path, r.query, r.body) for r in requests)


def retry_after_breaches(requests: list[Request], retry_after: float) -> tuple[int, list[tuple[Request, Request]]]:
    """Injected 429s (which ask for ``retry_after`` seconds), and (429, retry) pairs where the
    same request came again sooner than asked. The emulators' own limiters answer 429s with
    shorter waits (what is left of the window), so those are left out."""
    throttled = [r for r in requests if r.status == 429 and r.admitted and r.fault is not None]
    early = []
    for r in throttled:
        retry = next((n for n in requests if n.system == r.system and n.started > r.started
                      and (n.method, n.path, n.query, n.body) == (r.method, r.path, r.query, r.body)), None)
        if retry is not None and retry.started < r.ended + retry_after:
            early.append((r, retry))
    return len(throttled), early


"""Fixtures for end-to-end runs against the Mailchimp and Brevo emulators (127.0.0.1 only).

A project has three connections: ``shop`` (files source: contacts.csv + consent.csv), ``mc``
(Mailchimp emulator) and ``brevo`` (Brevo emulator); both ESPs are pulled from and pushed to,
as a user who syncs in both directions configures them. Runs go through the real runner, the
real plugin discovery (``SEGSYNC_PLUGINS=files,mailchimp,brevo``) and the connectors' real SDKs.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from segsync.config import load_config
from segsync.plugins import PluginHost
from segsync.store import Store
from segsync.sync.runner import RunOptions, RunSummary, Runner
from segsync_brevo.emulator import BrevoEmulator
from segsync_mailchimp.emulator import MailchimpEmulator

MC_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = "aud0001"
BREVO_KEY = "brevo-test-key"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def mailchimp() -> Iterator[MailchimpEmulator]:
    emulator = MailchimpEmulator(api_key=MC_KEY)
    emulator.state.create_audience(LIST_ID)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def brevo() -> Iterator[BrevoEmulator]:
    emulator = BrevoEmulator(api_key=BREVO_KEY, import_delay=0.02)
    emulator.start()
    yield emulator
    emulator.stop()
    # Every answer the emulator gave must match Brevo's own spec.
    assert emulator.violations == []


@dataclass
class RunRecord:
    summary: RunSummary
    mc_writes: list[tuple[str, str]]  # (method, path) of Mailchimp write requests, in order
    brevo_writes: list[tuple[str, str]]

    def dest(self, name: str):
        return next(d for d in self.summary.destinations if d.name == name)

    def source(self, name: str):
        return next(s for s in self.summary.sources if s.name == name)


class EspProject:
    def __init__(self, root: Path, mailchimp: MailchimpEmulator, brevo: BrevoEmulator) -> None:
        self.root = root
        self.mc = mailchimp
        self.brevo = brevo
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.brevo_options = ""

    # -- files -------------------------------------------------------------------------------

    def write_config(self, brevo_extra: str = "") -> None:
        (self.root / "segsync.toml").write_text(textwrap.dedent(f"""
            [store]
            path = "store.duckdb"

            [connections.shop]
            type = "files"
            contacts = "data/contacts.csv"
            consent = "data/consent.csv"

            [connections.mc]
            type = "mailchimp"
            list_id = "{LIST_ID}"
            host = "{self.mc.url}"
            timeout = 5.0
            max_attempts = 2
            retry_wait_initial = 0.01
            retry_wait_max = 0.05

            [connections.brevo]
            type = "brevo"
            host = "{self.brevo.url}"
            timeout_seconds = 5.0
            max_attempts = 2
            import_poll_seconds = 0.05
        """) + textwrap.dedent(brevo_extra), encoding="utf-8")

    def write(self, name: str, text: str) -> None:
        (self.data / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")

    def append(self, name: str, text: str) -> None:
        with (self.data / name).open("a", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(text).lstrip())

    # -- running -----------------------------------------------------------------------------

    def wait_for_mailchimp_clock(self) -> None:
        """Mailchimp times are whole seconds and a pull reads members changed strictly before
        the second it starts in; wait until every change so far is in the past, so each pull
        deterministically sees everything that happened before the run."""
        with self.mc.state.lock:
            stamps = [m.last_changed for a in self.mc.state.audiences.values() for m in a.members.values()]
        latest = max(stamps, default=None)
        while latest is not None and datetime.now(timezone.utc).replace(microsecond=0) <= latest:
            time.sleep(0.02)

    def sync(self) -> RunRecord:
        self.wait_for_mailchimp_clock()
        self.mc.reset_log()
        self.brevo.clear_log()
        summary = Runner(load_config(self.root / "segsync.toml"), PluginHost()).run(RunOptions())
        mc_writes = [(r.method, r.path) for r in self.mc.calls() if r.method in WRITE_METHODS]
        brevo_writes = [(r.method, r.path) for r in sorted(self.brevo.requests(), key=lambda e: e.started)
                        if r.method in WRITE_METHODS]
        return RunRecord(summary, mc_writes, brevo_writes)

    def sync_until_quiet(self, max_runs: int = 3) -> list[RunRecord]:
        """Set-up helper: run until a run sends no write to either ESP (fails if it never does)."""
        runs = []
        for _ in range(max_runs):
            runs.append(self.sync())
            if not runs[-1].mc_writes and not runs[-1].brevo_writes:
                return runs
        raise AssertionError(f"no quiet run within {max_runs} runs: {[(r.mc_writes, r.brevo_writes) for r in runs]}")

    def store(self) -> Store:
        return Store(self.root / "store.duckdb", read_only=True)

    # -- emulator views ----------------------------------------------------------------------

    def mc_members(self) -> dict[str, dict[str, Any]]:
        """Mailchimp audience: address -> status and the merge fields that hold a value."""
        with self.mc.state.lock:
            return {
                m.email_address: {"status": m.status,
                                  "merge_fields": {k: v for k, v in m.merge_fields.items() if v not in ("", None)}}
                for m in self.mc.state.audiences[LIST_ID].members.values()
            }

    def brevo_contacts(self) -> dict[str, dict[str, Any]]:
        """Brevo account: address -> blocklist flag, attributes, list names."""
        state = self.brevo.state
        with state.lock:
            return {
                c.email: {"emailBlacklisted": c.email_blacklisted, "attributes": dict(c.attributes),
                          "lists": sorted(state.lists[i].name for i in c.list_ids)}
                for c in state.contacts.values()
            }


@pytest.fixture
def esp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mailchimp: MailchimpEmulator,
        brevo: BrevoEmulator) -> EspProject:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,mailchimp,brevo")
    monkeypatch.setenv("SEGSYNC_MC_API_KEY", MC_KEY)
    monkeypatch.setenv("SEGSYNC_BREVO_API_KEY", BREVO_KEY)
    project = EspProject(tmp_path, mailchimp, brevo)
    project.write_config()
    project.write("contacts.csv", """
        email,first_name,last_name
        ann@example.com,Ann,Lee
        bo@example.com,Bo,
        cy@example.com,Cy,
    """)
    project.write("consent.csv", """
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
    """)
    return project

"""Remembered rejections through the real command line, against the Brevo emulator.

A record a destination refuses is remembered and not sent again while nothing changes; once
what caused the refusal may have changed (`check --fix`, an attribute created by hand, the
connection's settings) it is sent again. A run with rejections is never a clean success.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from segsync_brevo.emulator import BrevoEmulator

from .test_cli import run

BREVO_KEY = "brevo-cli-key"


@pytest.fixture
def brevo() -> Iterator[BrevoEmulator]:
    emulator = BrevoEmulator(api_key=BREVO_KEY, import_delay=0.01)
    emulator.start()
    yield emulator
    emulator.stop()
    assert emulator.violations == []


@pytest.fixture
def project(tmp_path: Path, brevo: BrevoEmulator) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "segsync.toml").write_text(textwrap.dedent(f"""
        [store]
        path = "store.duckdb"

        [connections.shop]
        type = "files"
        contacts = "data/contacts.csv"
        consent = "data/consent.csv"

        [connections.brevo]
        type = "brevo"
        host = "{brevo.url}"
        timeout_seconds = 5.0
        max_attempts = 2
        import_poll_seconds = 0.02
    """), encoding="utf-8")
    (tmp_path / "data/contacts.csv").write_text(textwrap.dedent("""
        email,first_name,company
        ann@example.com,Ann,Acme
        bo@example.com,Bo,
    """).lstrip(), encoding="utf-8")
    (tmp_path / "data/consent.csv").write_text(textwrap.dedent("""
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,form
    """).lstrip(), encoding="utf-8")
    return tmp_path


def segsync(args: list[str], cwd: Path):
    # A wide terminal, so tables are not wrapped.
    return run(args, cwd, env={"SEGSYNC_PLUGINS": "files,brevo", "SEGSYNC_BREVO_API_KEY": BREVO_KEY,
                               "COLUMNS": "250"})


def _brevo_view(brevo: BrevoEmulator) -> dict[str, dict]:
    with brevo.state.lock:
        return {c.email: dict(c.attributes) for c in brevo.state.contacts.values() if not c.registered}


def test_rejected_for_a_missing_attribute_then_check_fix_then_the_next_sync_sends_them(
    project: Path, brevo: BrevoEmulator
) -> None:
    first = segsync(["sync"], project)
    # Finished, but not cleanly: its own exit code and status.
    assert first.returncode == 3, first.stdout + first.stderr
    assert "Run 1: with-rejections" in first.stdout
    assert "brevo: 1 record(s) rejected (see `segsync runs --errors`)" in first.stdout
    assert "Brevo has no contact attribute COMPANY" in first.stdout
    assert _brevo_view(brevo) == {"bo@example.com": {"FIRSTNAME": "Bo"}}

    # Nothing changed: the refusal is remembered, nothing is sent, and the run is clean.
    again = segsync(["sync", "--json"], project)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = json.loads(again.stdout)
    assert summary["status"] == "succeeded"
    assert [(d["name"], d["planned"], d["write_calls"]) for d in summary["destinations"]] == [("brevo", {}, 0)]

    history = json.loads(segsync(["runs", "--json", "--errors"], project).stdout)
    assert [(r["id"], r["status"]) for r in history] == [(2, "succeeded"), (1, "with-rejections")]
    assert [(d["destination"], d["status"], d["records_written"], d["records_rejected"])
            for d in history[1]["destinations"]] == [("brevo", "with-rejections", 1, 1)]
    assert [(e["record"], e["field"], e["retryable"]) for e in history[1]["errors"]] == [
        ("a***@e***.com", "company", False)]
    table = segsync(["runs"], project).stdout
    assert "brevo: 1 written, 1 rejected / " in table and "with-rejections" in table

    fixed = segsync(["check", "--fix", "brevo"], project)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "fixed: created Brevo contact attribute COMPANY" in fixed.stdout
    assert "1 rejected record(s) will be sent again by the next sync" in fixed.stdout

    third = segsync(["sync", "--json"], project)
    assert third.returncode == 0, third.stdout + third.stderr
    summary = json.loads(third.stdout)
    brevo_report = summary["destinations"][0]
    assert summary["status"] == "succeeded"
    assert (brevo_report["status"], brevo_report["planned"], brevo_report["records_written"],
            brevo_report["records_rejected"]) == ("ok", {"add": 1}, 1, 0)
    assert _brevo_view(brevo) == {"bo@example.com": {"FIRSTNAME": "Bo"},
                                  "ann@example.com": {"FIRSTNAME": "Ann", "COMPANY": "Acme"}}


def test_an_attribute_created_by_hand_in_brevo_retries_the_rejection(project: Path, brevo: BrevoEmulator) -> None:
    assert segsync(["sync"], project).returncode == 3
    brevo.state.add_attribute("COMPANY")  # someone creates it in Brevo's UI
    second = segsync(["sync"], project)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "brevo: 1 rejected record(s) planned again" in second.stdout
    assert _brevo_view(brevo)["ann@example.com"] == {"FIRSTNAME": "Ann", "COMPANY": "Acme"}


def test_retry_rejected_forgets_remembered_rejections(project: Path, brevo: BrevoEmulator) -> None:
    assert segsync(["sync"], project).returncode == 3
    unknown = segsync(["retry-rejected", "nope"], project)
    assert unknown.returncode == 1 and "no connection 'nope'" in unknown.stderr
    retried = segsync(["retry-rejected", "brevo"], project)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == "brevo: 1 rejected record(s) will be sent again by the next sync\n"
    # Sent again and, the attribute still missing, refused again: not a clean run.
    again = segsync(["sync", "--json"], project)
    assert again.returncode == 3
    assert json.loads(again.stdout)["destinations"][0]["planned"] == {"add": 1}

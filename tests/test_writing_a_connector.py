"""The example of docs/writing-a-connector.md is real, tested code, and the guide quotes it as it is.

The example is the project ``segsync new connector acme`` writes, with its connector written:
docs/examples/acme/connector.py replaces the generated stubs, docs/examples/acme/test_example.py
joins the generated tests, and the whole project's tests (the conformance kit among them) run
against the emulator the template ships, none excused as not implemented. Installed, it then
runs in `segsync demo --with acme` like any destination.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .scratch_env import make_scratch_env
from .test_new_and_install import OFFLINE, junit_outcomes, ok

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs/examples/acme"
GUIDE = ROOT / "docs/writing-a-connector.md"
CAPABILITIES = ("read_contacts", "write_contacts", "write_memberships", "write_consent")
# The kit's behaviour scenarios for what the example declares: each must run, and pass.
SCENARIOS = (
    "test_create_lands_a_subscribed_contact_with_its_attributes",
    "test_update_changes_the_attributes_of_the_same_contact",
    "test_tags_are_added_and_removed_one_by_one",
    "test_unsubscribe_lands_as_the_services_own_opt_out",
    "test_no_consent_never_becomes_subscribed",
    "test_replaying_a_batch_changes_nothing",
    "test_a_batch_with_refused_records_reports_each",
    "test_429_and_5xx_are_retried_within_the_declared_attempts",
    "test_retry_hint_of_a_429_is_honoured",
    "test_incremental_read_pages_through_everything_once",
    "test_incremental_read_resumes_from_each_cursor_without_gaps_or_duplicates",
    "test_incremental_read_from_the_last_cursor_yields_only_later_contacts",
)
# A fenced block the guide takes from a file follows a line naming it.
QUOTE = re.compile(r"<!-- quoted from (?P<path>\S+) -->\n```python\n(?P<code>.*?)```\n", re.S)


def example_project(tmp_path: Path) -> Path:
    """The generated project with the example's connector and tests in place of the stubs."""
    project = tmp_path / "segsync-acme"
    args = [arg for c in CAPABILITIES for arg in ("--capability", c)]
    subprocess.run([sys.executable, "-m", "segsync", "new", "connector", "acme", *args, "--dir", str(project)],
                   check=True, capture_output=True, timeout=120)
    shutil.copy(EXAMPLE / "connector.py", project / "segsync_acme/connector.py")
    shutil.copy(EXAMPLE / "test_example.py", project / "tests/test_example.py")
    return project


def test_the_example_connector_passes_the_generated_projects_tests(tmp_path: Path) -> None:
    project = example_project(tmp_path)

    report = tmp_path / "report.xml"
    env = {**os.environ, "PYTHONPATH": str(project)}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    outcomes = junit_outcomes(report)
    not_passed = {name: outcome for name, outcome in outcomes.items() if outcome[0] != "passed"}
    # Every scenario of the kit runs and passes, but what the example does not do: report write
    # batches (it makes one request per write) and delete contacts (not declared).
    kit = "test_conformance.TestAcmeConformance."
    assert not_passed == {
        f"{kit}test_write_batches_are_reported_once_each_from_the_calling_thread":
            ("skipped", "the connector does not report write batches (the whole write is one unit)"),
        f"{kit}test_delete_removes_the_contact": ("skipped", "the connector does not declare delete_contacts"),
    }
    assert {name: outcomes.get(kit + name) for name in SCENARIOS} == dict.fromkeys(SCENARIOS, ("passed", ""))
    assert {name for name in outcomes if name.startswith("test_example.")} == {
        "test_example.test_written_contacts_are_read_back",
        "test_example.test_an_opt_out_becomes_acmes_own_unsubscribed",
        "test_example.test_segments_become_the_contacts_tags",
        "test_example.test_a_refused_contact_is_rejected_naming_the_field",
        "test_example.test_reading_pages_through_everything_and_resumes_after_the_cursor",
    }


def test_the_example_syncs_in_the_demo_against_its_emulator(tmp_path: Path) -> None:
    """Installed, the example is a destination like any other: `segsync demo --with acme`
    starts its emulator (start_emulator), pushes the demo's audience to it in one write, then
    reads it back and has nothing left to write."""
    env = make_scratch_env(tmp_path / "env")
    ok(env.segsync("install", *OFFLINE, "-e", str(example_project(tmp_path))))
    demo = tmp_path / "demo"
    shown = ok(env.segsync("demo", "--dir", str(demo), "--contacts", "30", "--with", "acme"))
    assert "  + acme: a local emulator at http://127.0.0.1:" in shown
    second, first = json.loads(ok(env.segsync("runs", "--json", cwd=demo)))
    pushed = {d["destination"]: d for d in first["destinations"]}
    audience = pushed["newsletter"]["records_written"]
    assert audience > 0
    assert pushed["acme"] == {"destination": "acme", "status": "ok", "write_calls": 1, "records_written": audience,
                              "records_rejected": 0, "records_retrying": 0, "error": None}
    assert second["status"] == "succeeded"
    assert second["counts"]["pull"]["acme"] == {"loaded": {"contacts": audience}, "rejected": {"contacts": 0}}
    assert [d for d in second["destinations"] if d["destination"] == "acme"] == [
        {"destination": "acme", "status": "ok", "write_calls": 0, "records_written": 0, "records_rejected": 0,
         "records_retrying": 0, "error": None}]


def test_the_guide_quotes_the_example_as_it_is() -> None:
    quotes = QUOTE.findall(GUIDE.read_text(encoding="utf-8"))
    assert {path for path, _ in quotes} == {"docs/examples/acme/connector.py"}
    # The quotes, in order, are the whole file: the guide cuts it only at blank lines.
    assert "\n".join(code for _, code in quotes) == (EXAMPLE / "connector.py").read_text(encoding="utf-8")

"""`segsync sync` and `segsync demo --with hubspot` as a user runs them, against the emulator.

HubSpot is the source of the buyer stage: segments whose rules read the lifecycle stage and lead
status pulled from the CRM are pushed back to it as a static list and as options of the segment
property, and an unchanged second run writes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT = """
[store]
path = "segsync.duckdb"

[connections.hubspot]
type = "hubspot"
host = "{url}"
segment_mode = "both"
subscription_id = 1
retry_wait_initial = 0.01

[[segments]]
name = "customers"
rule = 'attr.lifecycle_stage == "customer"'
[segments.destinations.hubspot]
list = "Customers"

[[segments]]
name = "new-leads"
rule = 'attr.lead_status == "NEW" and attr.lifecycle_stage != "customer"'
"""


def _segsync(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SEGSYNC_PLUGINS": "hubspot", **env}
    return subprocess.run([sys.executable, "-m", "segsync", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_buyer_stage_segments_come_from_the_crm_and_go_back_to_it(emulator, token: str, tmp_path: Path) -> None:
    state = emulator.state
    state.add_contact("ann@example.com", {"firstname": "Ann", "lifecyclestage": "customer"})
    state.add_contact("bo@example.com", {"firstname": "Bo", "lifecyclestage": "lead", "hs_lead_status": "NEW"})
    state.add_contact("cy@example.com", {"lifecyclestage": "lead", "hs_lead_status": "NEW"})
    state.add_contact("dee@example.com", {"lifecyclestage": "customer"})
    for email in ("ann@example.com", "bo@example.com", "dee@example.com"):
        state.set_status(email, "1", "SUBSCRIBED", source="Self Service Resubscription")
    state.unsubscribe_all("dee@example.com")
    (tmp_path / "segsync.toml").write_text(textwrap.dedent(PROJECT.format(url=emulator.url)))

    first = _segsync(["sync", "--json"], tmp_path, SEGSYNC_HUBSPOT_ACCESS_TOKEN=token)
    assert first.returncode == 0, first.stderr + first.stdout
    # Rules over the CRM's attributes: ann and dee are customers, bo a new lead. cy has no consent
    # and is not written at all (only subscribed contacts are added anywhere); dee, opted out in
    # HubSpot, stays opted out there and is still listed among the customers (a list is no send).
    assert state.member_emails("Customers") == {"ann@example.com", "dee@example.com"}
    assert state.contact_by_email("ann@example.com").properties["segsync_segments"] == "Customers"
    assert state.contact_by_email("bo@example.com").properties["segsync_segments"] == "new-leads"
    assert "segsync_segments" not in state.contact_by_email("cy@example.com").properties
    assert "dee@example.com" in state.opted_out_of_all
    assert state.statuses["dee@example.com"]["1"].status == "UNSUBSCRIBED"
    assert state.member_emails("new-leads") == {"bo@example.com"}

    shown = _segsync(["segments", "list", "--json"], tmp_path, SEGSYNC_HUBSPOT_ACCESS_TOKEN=token)
    sizes = {s["name"]: s["size"] for s in json.loads(shown.stdout)}
    assert sizes == {"customers": 2, "new-leads": 2}

    again = _segsync(["sync", "--json"], tmp_path, SEGSYNC_HUBSPOT_ACCESS_TOKEN=token)
    assert again.returncode == 0, again.stderr + again.stdout
    run = json.loads(again.stdout)
    assert [(d["destination"], d["write_calls"]) for d in run["destinations"]] == [("hubspot", 0)]


def test_demo_with_hubspot_runs_against_the_emulator(tmp_path: Path) -> None:
    demo = _segsync(["demo", "--dir", "d", "--contacts", "120", "--with", "hubspot"], tmp_path,
                    SEGSYNC_PLUGINS="files,hubspot")
    assert demo.returncode == 0, demo.stderr + demo.stdout
    assert "+ hubspot: a local emulator at http://127.0.0.1:" in demo.stdout
    assert "Run 2: succeeded" in demo.stdout
    runs = json.loads(_segsync(["runs", "--json"], tmp_path / "d", SEGSYNC_PLUGINS="files,hubspot").stdout)
    first = {d["destination"]: d for d in runs[-1]["destinations"]}
    second = {d["destination"]: d for d in runs[0]["destinations"]}
    assert first["hubspot"]["records_written"] == first["newsletter"]["records_written"] > 50
    assert second["hubspot"]["write_calls"] == 0

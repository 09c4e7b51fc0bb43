"""Mailchimp's 10 simultaneous connections are per account: every connection and process using
one API key shares them, and a request given up after a timeout still counts until the server
has plausibly finished it (segsync.http.budget)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

from segsync import ContactChange

from .conftest import API_KEY, LIST_ID


def changes(prefix: str, n: int) -> list[ContactChange]:
    return [ContactChange(f"{prefix}{i:05d}@example.com", "upsert", "subscribed") for i in range(n)]


def refused(emulator) -> int:
    return sum(1 for c in emulator.calls(admitted_only=False) if c.status == 429)


def test_two_connections_on_one_account_share_ten_connections(emulator, make_connector) -> None:
    emulator.latency = 0.1
    one, two = make_connector(), make_connector()  # each may use 10; together the account has 10
    results = {}
    threads = [threading.Thread(target=lambda c=c, p=p: results.__setitem__(p, c.write(changes(p, 6000))))
               for c, p in ((one, "a"), (two, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert refused(emulator) == 0
    assert emulator.peak_in_flight <= 10
    assert {o.status for r in results.values() for o in r.outcomes} == {"ok"}
    assert len(emulator.state.audiences[LIST_ID].members) == 12_000


def test_two_processes_on_one_account_share_ten_connections(emulator) -> None:
    emulator.latency = 0.1
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from segsync import ContactChange
        from segsync_mailchimp import MailchimpConnector, MailchimpSettings
        prefix = sys.argv[1]
        settings = MailchimpSettings(api_key={API_KEY!r}, list_id={LIST_ID!r}, host={emulator.url!r},
                                     timeout=10.0, retry_wait_initial=0.01, retry_wait_max=0.5)
        connector = MailchimpConnector("p" + prefix, settings, Path("."))
        result = connector.write([ContactChange(f"{{prefix}}{{i:05d}}@example.com", "upsert", "subscribed")
                                  for i in range(6000)])
        connector.close()
        print(sorted({{str(o.status) for o in result.outcomes}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, prefix], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy())
             for prefix in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == ["['ok']", "['ok']"]
    assert refused(emulator) == 0
    assert emulator.peak_in_flight <= 10
    assert len(emulator.state.audiences[LIST_ID].members) == 12_000


def test_requests_given_up_after_a_timeout_cause_no_429(emulator, make_connector) -> None:
    # Erasures: one small call per contact, ten at a time. The first ten stall on the server for
    # longer than the client waits; the retries must not open connections beside the ones the
    # server is still working on.
    for i in range(40):
        emulator.state.seed_member(LIST_ID, f"t{i:05d}@example.com")
    connector = make_connector(timeout=0.3, abandoned_hold=1.0)
    emulator.inject("timeout", count=10, delay=0.8, method="POST", path="/delete-permanent$")
    result = connector.write([ContactChange(f"t{i:05d}@example.com", "delete", "unsubscribed") for i in range(40)])
    assert {o.status for o in result.outcomes} == {"ok"}
    assert emulator.state.audiences[LIST_ID].members == {}
    assert sum(1 for c in emulator.calls("POST", admitted_only=False) if c.fault == "timeout") == 10
    assert refused(emulator) == 0
    assert emulator.peak_in_flight <= 10

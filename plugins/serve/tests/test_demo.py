"""`segsync demo --serve`: the live loop on the demo business, with the real command, and it ends."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_serve_shows_an_opt_out_crossing_each_way_within_seconds_and_exits(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "segsync", "demo", "--dir", str(tmp_path / "demo"), "--contacts", "80", "--serve"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    live = done.stdout[done.stdout.index("Live: segsync serve on http://127.0.0.1:"):]
    lines = [line.strip() for line in live.splitlines()[:8]]
    assert re.fullmatch(r"Mailchimp audience demo0001: webhook [0-9a-f]{10} registered", lines[1])
    assert lines[2] == "Brevo: marketing webhook 1 registered"
    assert re.fullmatch(r"(\S+) clicks \"unsubscribe\" in a Mailchimp campaign …", lines[3])
    first = lines[3].split()[0]
    assert re.fullmatch(rf"… Brevo blocklists {re.escape(first)} \d+\.\d\d s later \(webhook → store → push\)", lines[4])
    second = lines[5].split()[0]
    assert lines[5] == f"{second} marks a Brevo campaign as spam …" and second != first
    assert re.fullmatch(rf"… Mailchimp unsubscribes {re.escape(second)} \d+\.\d\d s later \(webhook → store → push\)",
                        lines[6])
    assert re.fullmatch(r"/healthz: ok, last run 4 \(webhook, succeeded\), 0 queued", lines[7])
    # Addresses are masked in what the demo prints.
    assert "@" in first and "***" in first and "***" in second

"""`segsync demo --with constantcontact`: the whole product against the emulator, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_with_constantcontact_syncs_into_the_emulator_and_then_writes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "SEGSYNC_PLUGINS": "files,constantcontact"}
    result = subprocess.run([sys.executable, "-m", "segsync", "demo", "--dir", "d", "--contacts", "60",
                             "--with", "constantcontact"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "+ constantcontact: a local emulator at http://127.0.0.1:" in out
    assert "push constantcontact: done" in result.stderr
    # The demo's addresses with a non-ASCII local part are refused by the emulated import (as
    # Brevo's are), named with their masked address and the field.
    assert "constantcontact: " in out and "record(s) rejected" in out
    assert "[email]: Constant Contact's import did not take" in out
    # The second run reads back what the first wrote (its own echo) and writes nothing.
    second = out[out.index("Run 2:"):]
    assert "Run 2: succeeded" in second
    table = [line for line in second.splitlines() if "constantc" in line and "no change" in line]
    assert len(table) == 1, second
    # Nothing went wrong but, at most, a paced request the emulator counted into the next second:
    # the client paces on its own clock and the emulator counts on arrival, so a loaded machine
    # can bunch requests (pacing itself is tested on a fake clock in test_limits.py).
    warnings = [line for line in (result.stderr + out).splitlines() if "WARNING" in line]
    assert all("failed on attempt 1 of" in line and "HTTP 429; retrying" in line for line in warnings), warnings
    assert "Traceback" not in result.stderr

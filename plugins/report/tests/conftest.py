"""A small project synced twice, and running ``segsync`` as a user does (a subprocess: a
plugin's tests reach the core only through the public API and segsync.testing)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from collections.abc import Iterator
from pathlib import Path

import pytest

from segsync.testing import SAMPLE_CONFIG, Project

FEB_10 = datetime(2024, 2, 10, tzinfo=timezone.utc)
MAR_12 = datetime(2024, 3, 12, tzinfo=timezone.utc)

SEGMENTS = """
    [[segments]]
    name = "openers"
    description = "Opened <b>lately</b> & clicked"
    rule = "opens(30d) >= 1"

    [[segments]]
    name = "gold"
    rule = 'attr.tier == "gold"'
    [segments.destinations.upload]
    tag = "Gold tier"

    [groups.engagement]
    catch_all = "quiet"

    [[segments]]
    name = "active"
    group = "engagement"
    priority = 1
    rule = "opens(90d) >= 1"

    [[segments]]
    name = "quiet"
    group = "engagement"
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """ann (gold, opted in by form): 4 sends, an open, a click, an order of 120 before Feb 10;
    bo (double opt-in): 2 sends, a bounce; cy: opted out on Feb 3. Synced on Feb 10 (run 1)
    and Mar 12 (run 2), when ann's open has left the 30-day window. Built once per module: the
    tests only read it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEGSYNC_PLUGINS", "files,report")
        yield _small(tmp_path_factory.mktemp("shop"))


def _small(root: Path) -> Project:
    project = Project.sample(root)
    project.write_config(SAMPLE_CONFIG + SEGMENTS)
    project.append("events.jsonl", """
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-15T00:00:00Z", "id": "s1"}
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-22T00:00:00Z", "id": "s2"}
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-29T00:00:00Z", "id": "s3"}
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-02-05T00:00:00Z", "id": "s4"}
        {"email": "ann@example.com", "type": "email.clicked", "timestamp": "2024-02-05T01:00:00Z", "id": "c1"}
        {"email": "ann@example.com", "type": "order.completed", "timestamp": "2024-02-06T00:00:00Z", "id": "o1", "value": 120, "currency": "EUR"}
        {"email": "bo@example.com", "type": "email.sent", "timestamp": "2024-02-01T00:00:00Z", "id": "s5"}
        {"email": "bo@example.com", "type": "email.sent", "timestamp": "2024-02-05T00:00:00Z", "id": "s6"}
        {"email": "bo@example.com", "type": "email.bounced", "timestamp": "2024-02-05T00:10:00Z", "id": "b1"}
    """)
    project.append("consent.csv", "cy@example.com,opted_out,2024-02-03T00:00:00Z,email_link\n")
    assert project.run(as_of=FEB_10).status == "succeeded"
    assert project.run(as_of=MAR_12).status == "succeeded"
    return project


def segsync(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``segsync ARGS`` in ``project_dir``, as a user runs it."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "segsync", *args], cwd=project_dir, env=env,
                          capture_output=True, text=True, timeout=300)

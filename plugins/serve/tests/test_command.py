"""`segsync serve` as a user runs it: the real command in a process of its own, stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from segsync.testing import Project


def _serve(project: Project, *args: str, secret: str | None = "command-test-secret-0123") -> subprocess.Popen:
    env = {**os.environ, "SEGSYNC_PLUGINS": "files,serve"}
    env.pop("SEGSYNC_SERVE_WEBHOOK_SECRET", None)
    if secret is not None:
        env["SEGSYNC_SERVE_WEBHOOK_SECRET"] = secret
    return subprocess.Popen([sys.executable, "-m", "segsync", "serve", "--port", "0", *args], cwd=project.root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_serve_runs_scheduled_syncs_answers_health_and_metrics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    project = Project.sample(tmp_path)
    process = _serve(project, "--every", "0.01")
    try:
        first = process.stdout.readline()
        match = re.match(r"segsync serve on (http://127\.0\.0\.1:\d+): webhooks from no connection; "
                         r"every 0\.01 min; /healthz, /metrics\. Ctrl-C stops\.$", first.strip())
        assert match, first
        url = match.group(1)
        deadline = time.monotonic() + 120
        health = requests.get(f"{url}/healthz", timeout=10).json()
        while (health["last_run"] or {}).get("id") != 2:  # two scheduled runs, one after the other
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
            health = requests.get(f"{url}/healthz", timeout=10).json()
        assert (health["status"], health["last_run"]["trigger"], health["last_run"]["status"]) == (
            "ok", "schedule", "succeeded")
        metrics = requests.get(f"{url}/metrics", timeout=10)
        assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert re.search(r'^segsync_runs_total\{status="succeeded",trigger="schedule"\} [2-9]\.0$', metrics.text, re.M)
        assert requests.post(f"{url}/webhooks/shop", timeout=10).status_code == 404
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    # Both scheduled runs are in the history, neither overlapping the other.
    runs = project.query("SELECT id, status, started_at, finished_at, options FROM runs ORDER BY id")
    assert [(r[0], r[1]) for r in runs[:2]] == [(1, "succeeded"), (2, "succeeded")]
    assert runs[1][2] >= runs[0][3]
    assert all('"trigger": "schedule"' in r[4] for r in runs)
    assert project.audience()["ann@example.com"]["status"] == "subscribed"


def test_serve_without_a_secret_or_with_a_bad_schedule_exits_2_naming_it(tmp_path: Path) -> None:
    project = Project.sample(tmp_path)
    no_secret = _serve(project, secret=None)
    out, err = no_secret.communicate(timeout=120)
    assert no_secret.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "error: set SEGSYNC_SERVE_WEBHOOK_SECRET (in the environment or .env) to a random text of at least 16 "
        "characters: the services must present it with every webhook")
    bad_cron = _serve(project, "--cron", "soon")
    out, err = bad_cron.communicate(timeout=120)
    assert bad_cron.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "Error: --cron: 'soon' is not a cron expression (five fields: minute hour day month weekday)")
    assert not (tmp_path / "store.duckdb").exists()

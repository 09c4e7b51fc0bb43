"""The command line as a user runs it: real processes in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SEGSYNC = [sys.executable, "-m", "segsync"]


def run(args, cwd: Path, env=None, timeout=300, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SEGSYNC_PLUGINS": "files", **(env or {})}
    return subprocess.run([*SEGSYNC, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, **kw)


def test_init_then_sync_works_in_an_empty_folder(tmp_path: Path) -> None:
    init = run(["init", "."], tmp_path)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "segsync.toml").exists()
    first = run(["sync"], tmp_path)
    # The sample's bad rows are rejected, and the run says so (exit code 3).
    assert first.returncode == 3, first.stderr + first.stdout
    assert "Run 1: with-rejections" in first.stdout
    assert (tmp_path / "out/newsletter.csv").exists()
    # The sample data has deliberately bad rows, reported with file, line and field.
    assert "data/contacts.csv line 42 [email]" in first.stdout
    second = run(["sync", "--json"], tmp_path)
    summary = json.loads(second.stdout)
    assert summary["destinations"][0]["write_calls"] == 0
    history = json.loads(run(["runs", "--json"], tmp_path).stdout)
    assert [r["id"] for r in history] == [2, 1]
    assert set(history[0]) >= {"id", "started_at", "finished_at", "status", "destinations"}
    assert history[1]["destinations"][0]["destination"] == "newsletter"
    assert history[1]["destinations"][0]["write_calls"] == 2
    assert history[0]["destinations"][0]["records_written"] == 0
    assert run(["init", "."], tmp_path).returncode != 0  # never overwrites


def test_demo_builds_a_business_and_syncs_it_twice(tmp_path: Path) -> None:
    result = run(["demo", "--dir", "d", "--contacts", "300"], tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    # The first run rejects the demo's deliberately broken rows; the second reads nothing new.
    assert "Run 1: with-rejections" in result.stdout and "Run 2: succeeded" in result.stdout
    assert "no change" in result.stdout
    audience = (tmp_path / "d/out/newsletter.jsonl").read_text().splitlines()
    statuses = {json.loads(line)["status"] for line in audience}
    assert statuses == {"subscribed"}
    assert 200 < len(audience) < 300  # opt-outs, bounces and complaints are left out


def test_contacts_show_json_and_masking_in_errors(tmp_path: Path) -> None:
    run(["init", "."], tmp_path)
    run(["sync"], tmp_path)
    email = next(line.split(",")[0] for line in (tmp_path / "data/contacts.csv").read_text().splitlines()[1:] if "@" in line)
    shown = run(["contacts", "show", email, "--json"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["email"] == email.strip().lower()
    assert record["consent"][0]["status"] == "opted_in"
    assert record["destinations"][0]["destination"] == "newsletter"
    assert all(e["source"] == "shop" for e in record["events"])
    missing = run(["contacts", "show", "nobody@example.com"], tmp_path)
    assert missing.returncode == 1 and "no contact n***@e***.com" in missing.stderr


def test_a_concurrent_sync_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    run(["init", "."], tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys
            from segsync.store import Store
            s = Store("segsync.duckdb")
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        second = run(["sync"], tmp_path, timeout=60)
        assert second.returncode == 2
        assert "is in use by another segsync process" in second.stderr
        assert f"pid {holder.pid}" in second.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert not (tmp_path / "out").exists()


def test_check_reports_each_connection(tmp_path: Path) -> None:
    run(["init", "."], tmp_path)
    ok = run(["check"], tmp_path)
    assert ok.returncode == 0 and "✓ shop (files)" in ok.stdout and "✓ newsletter (files)" in ok.stdout
    (tmp_path / "data/events.jsonl").unlink()
    bad = run(["check", "shop"], tmp_path)
    assert bad.returncode == 1
    assert "events: no file matches 'data/events.jsonl'" in bad.stdout


def test_dry_run_from_the_command_line(tmp_path: Path) -> None:
    run(["init", "."], tmp_path)
    result = run(["sync", "--dry-run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Dry run: nothing was changed" in result.stdout
    assert "add" in result.stdout
    assert not (tmp_path / "out").exists()
    assert json.loads(run(["runs", "--json"], tmp_path).stdout) == []


def test_config_errors_exit_2_with_the_reason(tmp_path: Path) -> None:
    result = run(["sync"], tmp_path)
    assert result.returncode == 2
    assert "no project file at segsync.toml; create one with `segsync init`" in result.stderr


@pytest.mark.parametrize("bad", ["2024-01-01T00:00:00", "yesterday"])
def test_as_of_must_be_an_aware_timestamp(tmp_path: Path, bad: str) -> None:
    run(["init", "."], tmp_path)
    result = run(["sync", "--as-of", bad], tmp_path)
    assert result.returncode == 2 and "--as-of" in result.stderr

"""`segsync sync` over file sources that are missing, half-written or hold bad lines (real CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

CONFIG = """
    [store]
    path = "store.duckdb"

    [connections.shop]
    type = "files"
    contacts = "data/contacts.csv"
    consent = "data/consent.jsonl"

    [connections.upload]
    type = "files"
    output = "out/audience"
"""


def sync(root: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "SEGSYNC_PLUGINS": "files"}
    done = subprocess.run([sys.executable, "-m", "segsync", "sync", "--json"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    return done, json.loads(done.stdout)


def project(root: Path, contacts: bytes, consent: list[str]) -> None:
    (root / "segsync.toml").write_text(textwrap.dedent(CONFIG))
    (root / "data").mkdir()
    (root / "data/contacts.csv").write_bytes(contacts)
    (root / "data/consent.jsonl").write_text("".join(line + "\n" for line in consent))


def opt(email: str, status: str, day: int) -> str:
    return json.dumps({"email": email, "status": status, "timestamp": f"2024-01-{day:02d}T00:00:00Z", "method": "form"})


def test_a_missing_source_file_fails_the_run(tmp_path: Path) -> None:
    project(tmp_path, b"email\nann@example.com\n", [opt("ann@example.com", "opted_in", 1)])
    (tmp_path / "data/contacts.csv").unlink()
    done, summary = sync(tmp_path)
    assert done.returncode == 1
    shop = summary["sources"][0]
    assert shop["status"] == "failed"
    assert shop["error"].startswith("plugin ")
    assert shop["error"].endswith(
        "(connection 'shop') failed reading contacts: "
        "SourceFileError: contacts: no file matches 'data/contacts.csv' (no such file)"
    )
    assert shop["loaded"] == {"contacts": 0}


def test_a_bad_line_is_one_record_error_and_the_run_says_so(tmp_path: Path) -> None:
    project(tmp_path, b"E-mail,first_name\nann@example.com,Ann\nbo@example.com,B\xf6\ncy@example.com,Cy\n",
            [opt("ann@example.com", "opted_in", 1), opt("cy@example.com", "opted_in", 1)])
    done, summary = sync(tmp_path)
    shop = summary["sources"][0]
    assert (shop["status"], shop["loaded"], shop["rejected"]) == (
        "with-rejections", {"contacts": 2, "consent": 2}, {"contacts": 1, "consent": 0})
    assert shop["error"] == "1 record(s) rejected (see `segsync runs --errors`)"
    assert summary["status"] == "with-rejections"
    assert summary["errors"] == [{"connection": "shop", "phase": "pull:contacts", "record": "data/contacts.csv line 3",
                                  "field": "first_name",
                                  "reason": "not UTF-8: byte 0xf6 at byte 17 of the line; save the file as UTF-8"}]
    audience = [json.loads(line)["email"] for line in (tmp_path / "out/audience.jsonl").read_text().splitlines()]
    assert audience == ["ann@example.com", "cy@example.com"]


def test_a_record_nested_thousands_deep_never_stops_later_runs(tmp_path: Path) -> None:
    deep = '{"email": "deep@example.com", "status": "opted_in", "timestamp": "2024-01-01T00:00:00Z", "evidence": "x", "custom": ' \
        + "[" * 5000 + "]" * 5000 + "}"
    project(tmp_path, b"email,note\nann@example.com," + b"[" * 5000 + b"\n",
            [opt("ann@example.com", "opted_in", 1), deep])
    (tmp_path / "data/contacts.jsonl").write_text(
        '{"email": "bo@example.com", "custom": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}\n")
    config = (tmp_path / "segsync.toml").read_text().replace('contacts = "data/contacts.csv"',
                                                             'contacts = "data/contacts.jsonl"')
    (tmp_path / "segsync.toml").write_text(config)
    done, summary = sync(tmp_path)
    assert summary["status"] == "with-rejections", done.stderr
    assert [(e["record"], e["field"]) for e in summary["errors"]] == [
        ("data/contacts.jsonl line 1", "custom"), ("data/consent.jsonl line 2", "custom")]
    # The next run, with an opt-out appended, still plans and pushes it.
    with (tmp_path / "data/consent.jsonl").open("a") as handle:
        handle.write(opt("ann@example.com", "opted_out", 2) + "\n")
    done, summary = sync(tmp_path)
    assert summary["destinations"][0]["planned"] == {"unsubscribe": 1}, done.stderr
    state = [json.loads(line) for line in (tmp_path / "out/audience.jsonl").read_text().splitlines()]
    assert [(r["email"], r["status"]) for r in state] == [("ann@example.com", "unsubscribed")]


def test_a_record_at_the_limits_is_synced_pushed_and_exported(tmp_path: Path) -> None:
    from segsync.filesource import MAX_JSON_DEPTH, MAX_RECORD_BYTES

    value: object = "end"
    for _ in range(MAX_JSON_DEPTH - 2):  # the record is level 1, custom level 2
        value = {"n": value}
    custom = {"deep": value, "big": "x" * (MAX_RECORD_BYTES - 2000)}
    project(tmp_path, b"email\n", [opt("ann@example.com", "opted_in", 1)])
    (tmp_path / "data/contacts.jsonl").write_text(json.dumps({"email": "ann@example.com", "custom": custom}) + "\n")
    config = (tmp_path / "segsync.toml").read_text().replace('"data/contacts.csv"', '"data/contacts.jsonl"')
    (tmp_path / "segsync.toml").write_text(config)
    done, summary = sync(tmp_path)
    assert (summary["status"], summary["errors"]) == ("succeeded", []), done.stderr
    state = json.loads((tmp_path / "out/audience.jsonl").read_text())
    assert state["attributes"] == custom
    env = {**os.environ, "SEGSYNC_PLUGINS": "files"}
    export = subprocess.run([sys.executable, "-m", "segsync", "consent", "export", "ann@example.com", "--json"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["attributes"]["custom"] == custom

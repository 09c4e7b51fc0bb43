"""The files connector on its own: cursors, globs, timestamp mode, audience files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from segsync import Capability, ContactChange, Stream
from segsync.filesource import HELD_BACK, SourceFileError
from segsync.testing import ScratchStore
from segsync_files import FilesConnector, FilesSettings


def connector(tmp_path: Path, **settings) -> FilesConnector:
    return FilesConnector("files", FilesSettings(**settings), tmp_path)


def pull(conn: FilesConnector, stream: Stream, cursor=None):
    """Load every batch into a fresh in-memory store; return (loaded keys, final cursor)."""
    batches = list(conn.read(stream, cursor))
    with ScratchStore("files") as store:
        for batch in batches:
            store.ingest(batch)
        keys = [r[0] for r in store.query("SELECT contact_key FROM contacts ORDER BY 1")]
    return keys, (batches[-1].cursor if batches else cursor), batches


def test_capabilities_follow_the_settings(tmp_path: Path) -> None:
    assert connector(tmp_path, contacts="c.csv").enabled_capabilities() == {Capability.READ_CONTACTS}
    out = connector(tmp_path, output="out/a").enabled_capabilities()
    assert Capability.WRITE_CONTACTS in out and Capability.READ_CONTACTS not in out


def test_append_only_files_are_read_from_where_the_last_run_stopped(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email\na@x.co\nb@x.co\n")
    conn = connector(tmp_path, contacts="c.csv")
    keys, cursor, _ = pull(conn, Stream.CONTACTS)
    assert keys == ["a@x.co", "b@x.co"] and cursor["c.csv"]["rows"] == 2
    assert pull(conn, Stream.CONTACTS, cursor)[2] == []  # unchanged: no batch at all
    with path.open("a") as handle:
        handle.write("c@x.co\n")
    keys, cursor, batches = pull(conn, Stream.CONTACTS, cursor)
    assert keys == ["c@x.co"] and cursor["c.csv"]["rows"] == 3
    assert (batches[0].file.skip_rows, batches[0].file.until_row) == (2, 3)


def test_a_rewritten_file_is_read_again_from_the_top(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email\na@x.co\nb@x.co\n")
    conn = connector(tmp_path, contacts="c.csv")
    _, cursor, _ = pull(conn, Stream.CONTACTS)
    path.write_text("email\nz@x.co\nb@x.co\nq@x.co\n")
    keys, cursor, _ = pull(conn, Stream.CONTACTS, cursor)
    assert keys == ["b@x.co", "q@x.co", "z@x.co"]


def test_globs_keep_one_position_per_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/e-1.jsonl").write_text(json.dumps(
        {"email": "a@x.co", "type": "email.opened", "timestamp": "2024-01-01T00:00:00Z", "id": "1"}) + "\n")
    conn = connector(tmp_path, events="in/e-*.jsonl")
    _, cursor, batches = pull(conn, Stream.EVENTS)
    assert len(batches) == 1
    (tmp_path / "in/e-2.jsonl").write_text(json.dumps(
        {"email": "b@x.co", "type": "email.opened", "timestamp": "2024-01-02T00:00:00Z", "id": "2"}) + "\n")
    keys, cursor, batches = pull(conn, Stream.EVENTS, cursor)
    assert [b.file.label for b in batches] == ["in/e-2.jsonl"] and keys == ["b@x.co"]
    assert set(cursor) == {"in/e-1.jsonl", "in/e-2.jsonl"}


def test_timestamp_mode_reads_rows_newer_than_the_last_run(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,updated_at\na@x.co,2024-01-01T00:00:00Z\nb@x.co,2024-02-01T00:00:00Z\n")
    conn = connector(tmp_path, contacts="c.csv", incremental="timestamp", timestamp_column={"contacts": "updated_at"})
    keys, cursor, _ = pull(conn, Stream.CONTACTS)
    assert keys == ["a@x.co", "b@x.co"] and cursor == {"newest": "2024-02-01T00:00:00+00:00"}
    path.write_text("email,updated_at\na@x.co,2024-03-01T00:00:00Z\nb@x.co,2024-02-01T00:00:00Z\n")
    keys, cursor, _ = pull(conn, Stream.CONTACTS, cursor)
    assert keys == ["a@x.co"] and cursor == {"newest": "2024-03-01T00:00:00+00:00"}


def test_check_names_missing_files_and_settings(tmp_path: Path) -> None:
    assert connector(tmp_path, contacts="missing-*.csv").check() == ["contacts: no file matches 'missing-*.csv'"]
    (tmp_path / "c.txt").write_text("x")
    assert connector(tmp_path, contacts="c.txt").check() == [f"{tmp_path / 'c.txt'}: unknown file type '.txt'; use .csv or .jsonl"]
    (tmp_path / "c.csv").write_text("email\n")
    assert connector(tmp_path, contacts="c.csv", incremental="timestamp").check() == [
        "incremental = 'timestamp' needs timestamp_column.contacts"]


def test_unknown_stream_in_timestamp_column_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown streams"):
        FilesSettings(timestamp_column={"orders": "x"})


def test_audience_files_are_written_atomically_and_updated_by_changes(tmp_path: Path) -> None:
    conn = connector(tmp_path, output="out/list")
    first = conn.write([
        ContactChange("a@x.co", "upsert", "subscribed", {"first_name": "A", "tier": "gold"}, tags=("vip",)),
        ContactChange("b@x.co", "upsert", "subscribed", {"first_name": "B"}),
    ])
    assert [o.status for o in first.outcomes] == ["ok", "ok"] and first.calls == 2
    second = connector(tmp_path, output="out/list").write([
        ContactChange("a@x.co", "upsert", "unsubscribed", {"first_name": "A"}),
        ContactChange("b@x.co", "delete", "subscribed"),
    ])
    assert [o.status for o in second.outcomes] == ["ok", "ok"]
    rows = list(csv.DictReader((tmp_path / "out/list.csv").open()))
    assert [(r["email"], r["status"], r["tags"], r["first_name"]) for r in rows] == [("a@x.co", "unsubscribed", "", "A")]
    state = [json.loads(line) for line in (tmp_path / "out/list.jsonl").read_text().splitlines()]
    assert state == [{"email": "a@x.co", "status": "unsubscribed", "tags": [], "attributes": {"first_name": "A"}}]
    # No temporary files are left behind.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["list.csv", "list.jsonl"]


def test_a_failed_write_leaves_the_previous_audience_intact(tmp_path: Path, monkeypatch) -> None:
    conn = connector(tmp_path, output="out/list")
    conn.write([ContactChange("a@x.co", "upsert", "subscribed", {})])
    before = (tmp_path / "out/list.csv").read_text()
    import segsync_files.audience as audience_module

    # The CSV's writing fails halfway: the old file must stay as it was.
    monkeypatch.setattr(audience_module, "_cell", lambda value: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        connector(tmp_path, output="out/list").write([ContactChange("b@x.co", "upsert", "subscribed", {"x": 1})])
    assert (tmp_path / "out/list.csv").read_text() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["list.csv", "list.jsonl"]


def test_a_missing_file_or_folder_fails_the_read_an_empty_drop_folder_does_not(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match=r"^contacts: no file matches 'data/c.csv' \(no such file\)$"):
        list(connector(tmp_path, contacts="data/c.csv").read(Stream.CONTACTS, None))
    with pytest.raises(SourceFileError, match=r"^events: no file matches 'in/e-\*.jsonl' \(no folder in\)$"):
        list(connector(tmp_path, events="in/e-*.jsonl").read(Stream.EVENTS, None))
    (tmp_path / "in").mkdir()
    assert list(connector(tmp_path, events="in/e-*.jsonl").read(Stream.EVENTS, None)) == []
    with pytest.raises(SourceFileError, match=r"^events: no file matches 'in' \(a folder, not a file\)$"):
        list(connector(tmp_path, events="in").read(Stream.EVENTS, None))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_half_written_last_line_is_held_back_until_it_is_finished(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"c.{fmt}"
    header, first, second = ("", '{"email": "a@x.co"}\n', '{"email": "b@x.co", "first_name": "Bo"}\n') if fmt == "jsonl" \
        else ("email,first_name\n", "a@x.co,A\n", "b@x.co,Bo\n")
    path.write_text(header + first + second[:9])  # the writer is in the middle of the second record
    conn = connector(tmp_path, contacts=f"c.{fmt}")
    with ScratchStore("files") as store:
        results = [store.ingest(b) for b in conn.read(Stream.CONTACTS, None)]
        cursor = conn.read(Stream.CONTACTS, None).__next__().cursor
        line = 3 if fmt == "csv" else 2
        assert [(r.loaded, r.rejected) for r in results] == [(1, 1)]
        assert store.query("SELECT record, field, reason FROM record_errors") == [
            (f"c.{fmt} line {line}", "line", HELD_BACK)]
        assert cursor[f"c.{fmt}"]["rows"] == 1
        assert cursor[f"c.{fmt}"]["size"] == len(header + first)
        with path.open("a") as handle:
            handle.write(second[9:])
        batches = list(conn.read(Stream.CONTACTS, cursor))
        assert [(b.file.skip_rows, b.file.until_row) for b in batches] == [(1, 2)]
        assert store.ingest(batches[0]).loaded == 1
        assert store.query("SELECT contact_key, first_name FROM contacts ORDER BY 1") == [
            ("a@x.co", None if fmt == "jsonl" else "A"), ("b@x.co", "Bo")]
        assert batches[0].cursor[f"c.{fmt}"]["rows"] == 2


def test_timestamp_mode_reads_only_finished_lines_too(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,updated_at\na@x.co,2024-01-01T00:00:00Z\nb@x.co,2024-02-01T00:0")
    conn = connector(tmp_path, contacts="c.csv", incremental="timestamp", timestamp_column={"contacts": "updated_at"})
    keys, cursor, _ = pull(conn, Stream.CONTACTS)
    assert keys == ["a@x.co"] and cursor == {"newest": "2024-01-01T00:00:00+00:00"}
    with path.open("a") as handle:
        handle.write("0:00Z\n")
    keys, cursor, _ = pull(conn, Stream.CONTACTS, cursor)
    assert keys == ["b@x.co"] and cursor == {"newest": "2024-02-01T00:00:00+00:00"}


def test_check_reads_the_header_of_each_csv_file(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").write_text("E-mail,Vorname\na@x.co,A\n")
    assert connector(tmp_path, contacts="ok.csv").check() == []
    (tmp_path / "bad.csv").write_text("Kunde,Vorname\na@x.co,A\n")
    assert connector(tmp_path, contacts="bad.csv").check() == [
        "bad.csv: the header has no email column (found: Kunde, Vorname); expected email "
        "(or emailaddress, emailadresse, mail, mailaddress), or map yours: "
        'contacts_columns = { email = "<your column>" }'
    ]
    assert connector(tmp_path, contacts="bad.csv", contacts_columns={"email": "Kunde"}).check() == []
    (tmp_path / "events.csv").write_text("email,type,when\n")
    assert connector(tmp_path, events="events.csv").check() == [
        "events.csv: the header has no timestamp / id column (found: email, type, when); expected "
        'timestamp; id (or eventid), or map yours: events_columns = { timestamp = "<your column>", id = "<your column>" }'
    ]


def test_the_audience_csv_neutralises_spreadsheet_formulas_and_the_jsonl_stays_exact(tmp_path: Path) -> None:
    attributes = {"first_name": "=HYPERLINK(\"http://x\",\"y\")", "company": "+1+cmd|' /C calc'!A0",
                  "job_title": "@SUM(1+1)", "department": "-2+3", "industry": "\tlead", "last_name": "\rX",
                  "=cmd": "value", "plain": "a=b"}
    connector(tmp_path, output="out/list").write([
        ContactChange("a@x.co", "upsert", "subscribed", attributes, tags=("=evil",)),
    ])
    text = (tmp_path / "out/list.csv").read_bytes().decode()
    assert text.splitlines()[0] == (
        "email,status,tags,first_name,last_name,company,job_title,department,industry,company_size,country,"
        "timezone,lifecycle_stage,created_at,'=cmd,plain"
    )
    row = next(csv.DictReader(text.splitlines(keepends=True)[1:], fieldnames=next(csv.reader([text.splitlines()[0]]))))
    assert (row["tags"], row["first_name"], row["company"], row["job_title"], row["department"], row["industry"],
            row["last_name"], row["'=cmd"], row["plain"]) == (
        "'=evil", "'=HYPERLINK(\"http://x\",\"y\")", "'+1+cmd|' /C calc'!A0", "'@SUM(1+1)", "'-2+3", "'\tlead",
        "'\rX", "value", "a=b")
    state = json.loads((tmp_path / "out/list.jsonl").read_text())
    assert state["attributes"] == attributes and state["tags"] == ["=evil"]


def test_an_unchanged_file_is_not_read_again_a_touched_or_grown_one_is(tmp_path: Path, monkeypatch) -> None:
    import os

    import segsync.filesource as filesource
    import segsync_files.cursor as cursor_module

    (tmp_path / "c.csv").write_text("email\na@x.co\n")
    conn = connector(tmp_path, contacts="c.csv")
    _, cursor, _ = pull(conn, Stream.CONTACTS)
    reads: list[str] = []
    real_extent, real_fingerprint = filesource.extent, cursor_module.fingerprint
    monkeypatch.setattr(filesource, "extent", lambda path, **known: reads.append(f"extent from {known.get('offset', 0)}")
                        or real_extent(path, **known))
    monkeypatch.setattr(cursor_module, "fingerprint",
                        lambda path, n: reads.append(f"fingerprint of {n}") or real_fingerprint(path, n))
    assert list(conn.read(Stream.CONTACTS, cursor)) == [] and reads == []  # a stat, nothing read
    stat = (tmp_path / "c.csv").stat()
    os.utime(tmp_path / "c.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    # Same rows: the known prefix's ends are checked and only what follows it is counted.
    assert list(conn.read(Stream.CONTACTS, cursor)) == [] and reads == [
        "fingerprint of 13", "extent from 13", "fingerprint of 13"]
    with (tmp_path / "c.csv").open("a") as out:
        out.write("b@x.co\n")
    keys, cursor, _ = pull(conn, Stream.CONTACTS, cursor)
    assert keys == ["b@x.co"] and cursor["c.csv"]["rows"] == 2
    reads.clear()
    assert list(conn.read(Stream.CONTACTS, cursor)) == [] and reads == []

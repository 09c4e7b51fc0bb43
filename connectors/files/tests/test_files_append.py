"""Appended files are read once, from where the last run stopped; rewritten ones from the top.
(A pull killed between the parts of a file: tests/test_pull_killed_between_parts.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segsync import Stream
from segsync.filesource import HELD_BACK
from segsync.testing import ScratchStore
from segsync_files import FilesConnector, FilesSettings
from segsync_files.cursor import FINGERPRINT_BYTES


def _event(i: int, email: str = "a@x.co") -> str:
    return json.dumps({"email": email, "type": "email.opened", "timestamp": "2024-05-01T10:00:00Z", "id": f"e{i}"}) + "\n"


def _connector(root: Path) -> FilesConnector:
    return FilesConnector("shop", FilesSettings(events="e.jsonl"), root)


def test_a_line_appended_to_in_its_middle_loads_once_from_the_cursor_with_its_own_line_number(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(_event(1) + _event(2) + _event(3)[:20])
    conn = _connector(tmp_path)
    with ScratchStore("shop") as store:
        (batch,) = conn.read(Stream.EVENTS, None)
        result = store.ingest(batch)
        assert (result.loaded, result.rejected) == (2, 1)
        cursor = batch.cursor
        assert cursor["e.jsonl"]["rows"] == 2 and cursor["e.jsonl"]["size"] == len(_event(1) + _event(2))
        # The writer finishes line 3, then writes a repeat of event 1, a bad line and event 4.
        with path.open("a") as handle:
            handle.write(_event(3)[20:] + _event(1, "b@x.co") + '{"email": "a@x.co", "type": "nope"}\n' + _event(4))
        (batch,) = conn.read(Stream.EVENTS, cursor)
        assert (batch.file.skip_rows, batch.file.until_row, batch.file.skip_bytes) == (2, 6, cursor["e.jsonl"]["size"])
        result = store.ingest(batch)
        assert (result.rows, result.loaded, result.rejected) == (4, 2, 1)
        assert store.query("SELECT source_event_id, contact_key FROM events ORDER BY 1") == [
            ("e1", "a@x.co"), ("e2", "a@x.co"), ("e3", "a@x.co"), ("e4", "a@x.co")]
        assert store.query("SELECT record, field, reason FROM record_errors ORDER BY record, field") == [
            ("e.jsonl line 3", "line", HELD_BACK),
            ("e.jsonl line 5", "id", "missing (the source event id deduplicates events)"),
            ("e.jsonl line 5", "timestamp", "missing"),
            ("e.jsonl line 5", "type", "unknown event type nope (see segsync plugins / docs/records.md)"),
        ]
        assert batch.cursor["e.jsonl"]["rows"] == 6


def _rewrite_head(path: Path, content: str) -> str:
    return _event(9) + content[len(_event(9)):]  # the first line replaced, same length


def _rewrite_tail(path: Path, content: str) -> str:
    return content[: -len(_event(3))] + _event(7) + _event(8)  # the last loaded line replaced, then more


@pytest.mark.parametrize("rewrite", [
    pytest.param(lambda path, content: content[: -len(_event(3))], id="truncated"),
    pytest.param(_rewrite_head, id="first line rewritten"),
    pytest.param(_rewrite_tail, id="last line rewritten"),
])
def test_a_truncated_or_rewritten_file_is_read_again_from_the_top(tmp_path: Path, rewrite) -> None:
    path = tmp_path / "e.jsonl"
    content = _event(1) + _event(2) + _event(3)
    path.write_text(content)
    conn = _connector(tmp_path)
    with ScratchStore("shop") as store:
        (batch,) = conn.read(Stream.EVENTS, None)
        assert store.ingest(batch).loaded == 3
        path.write_text(rewrite(path, content))
        (again,) = conn.read(Stream.EVENTS, batch.cursor)
        assert (again.file.skip_rows, again.file.skip_bytes) == (0, None)
        store.ingest(again)
        expected = sorted({f"e{i}" for i in (1, 2, 3)} | {json.loads(line)["id"] for line in path.read_text().splitlines()})
        assert [r[0] for r in store.query("SELECT source_event_id FROM events ORDER BY 1")] == expected


def test_the_fingerprint_reads_the_ends_of_a_big_prefix_only(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("".join(_event(i) for i in range(4000)))  # several fingerprints long
    assert path.stat().st_size > 3 * FINGERPRINT_BYTES
    conn = _connector(tmp_path)
    (batch,) = conn.read(Stream.EVENTS, None)
    with path.open("a") as handle:
        handle.write(_event(4000))
    read = []
    real_open = Path.open

    def counting_open(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if self == path:
            real_read = handle.read
            handle.read = lambda n=-1: read.append(len(chunk := real_read(n))) or chunk
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    (appended,) = conn.read(Stream.EVENTS, batch.cursor)
    assert (appended.file.skip_rows, appended.file.until_row) == (4000, 4001)
    # The two ends of the loaded prefix checked, the new line counted, the two ends of the new
    # prefix fingerprinted for the next cursor: never the whole file.
    assert read == [FINGERPRINT_BYTES, FINGERPRINT_BYTES, len(_event(4000)), 0, FINGERPRINT_BYTES, FINGERPRINT_BYTES]

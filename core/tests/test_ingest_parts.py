"""A big file is loaded a part at a time (bounded memory), with exactly the result of one load."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync import Batch, FileSlice, Stream
from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.store import Store
from segsync.store import ingest as ingest_module
from segsync.store.ingest import Ingestor
from segsync.store.sourcefile import Part, _has_control_bytes, parts, stage

from .conftest import rows

CONTACTS = (
    b"email,first_name,company,note\n"
    b"a@x.co,A,Acme,plain\n"
    b'b@x.co,B,"Bo\nCo","spans\nlines"\n'  # a quoted value across a line break
    b"a@x.co,,Globex,later row wins\n"
    b"bad-address,C,Co,x\n"
    b'c@x.co,C,"x""y",quotes doubled\n'
    b"b@x.co,Bee,,empty never erases\n"
    b"d@x.co,D,Do,last"  # no line break at the end: a whole-file slice loads it
)

EVENTS = [
    {"email": "a@x.co", "type": "email.opened", "timestamp": "2024-05-01T10:00:00Z", "id": "e1"},
    {"email": "a@x.co", "type": "email.opened", "timestamp": "2024-05-01T10:00:00Z", "id": "e1"},
    "[1, 2]",
    "   ",
    '  {"email": "b@x.co", "type": "page.viewed", "timestamp": "2024-05-02T10:00:00Z", "id": "p1", "url": "/x"}',
    {"email": "b@x.co", "type": "bogus", "timestamp": "2024-05-02T10:00:00Z", "id": "p2"},
    {"email": "c@x.co", "type": "order.completed", "timestamp": "2024-05-03T10:00:00Z", "id": "o1", "value": 5, "tier": "gold"},
    {"email": "a@x.co", "type": "email.opened", "timestamp": "2024-05-01T10:00:00Z", "id": "e1"},
    "{not json",
]


def _events_file(tmp_path: Path) -> FileSlice:
    path = tmp_path / "e.jsonl"
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in EVENTS))
    return FileSlice(path, "jsonl", label="e.jsonl")


def _state(store: Store) -> dict[str, list[tuple]]:
    return {
        "contacts": rows(store, "SELECT contact_key, first_name, company, custom::VARCHAR FROM contacts ORDER BY 1"),
        "events": rows(store, "SELECT contact_key, type, source_event_id, value, url, properties::VARCHAR "
                              "FROM events ORDER BY source_event_id"),
        "errors": rows(store, "SELECT record, field, reason FROM record_errors ORDER BY record, field"),
    }


def _load(tmp_path: Path, name: str, batch: Batch, lines_per_part: int) -> tuple[tuple, dict]:
    with Store(tmp_path / f"{name}.duckdb") as store:
        ingestor = Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES,
                            lines_per_part=lines_per_part)
        with store.transaction():
            result = ingestor.ingest(batch)
        return (result.rows, result.loaded, result.rejected, result.errors), _state(store)


@pytest.mark.parametrize("lines_per_part", [1, 2, 3])
def test_a_csv_file_loaded_in_parts_gives_what_one_load_gives(tmp_path, lines_per_part) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(CONTACTS)
    batch = Batch(Stream.CONTACTS, None, file=FileSlice(path, "csv", label="c.csv"))
    whole = _load(tmp_path, "whole", batch, 1_000_000)
    assert whole[0][:3] == (7, 4, 1)
    assert whole[1]["contacts"] == [
        ("a@x.co", "A", "Globex", '{"note":"later row wins"}'),
        ("b@x.co", "Bee", "Bo\nCo", '{"note":"empty never erases"}'),
        ("c@x.co", "C", 'x"y', '{"note":"quotes doubled"}'),
        ("d@x.co", "D", "Do", '{"note":"last"}'),
    ]
    # Records are named by the physical line they start on (b's record spans lines 3-5).
    assert whole[1]["errors"] == [
        ("c.csv line 7", "email", "invalid email address: An email address must have an @-sign."),
    ]
    assert _load(tmp_path, f"parts{lines_per_part}", batch, lines_per_part) == whole


@pytest.mark.parametrize("lines_per_part", [1, 2, 4])
def test_a_jsonl_file_loaded_in_parts_gives_what_one_load_gives(tmp_path, lines_per_part) -> None:
    batch = Batch(Stream.EVENTS, None, file=_events_file(tmp_path))
    whole = _load(tmp_path, "whole", batch, 1_000_000)
    assert whole[0][:3] == (8, 3, 3)
    assert whole[1]["events"] == [
        ("a@x.co", "email.opened", "e1", None, None, "{}"),
        ("c@x.co", "order.completed", "o1", 5.0, None, '{"tier":"gold"}'),
        ("b@x.co", "page.viewed", "p1", None, "/x", "{}"),
    ]
    assert whole[1]["errors"] == [
        ("e.jsonl line 3", "line", "not a JSON object"),
        ("e.jsonl line 6", "type", "unknown event type bogus (see segsync plugins / docs/records.md)"),
        ("e.jsonl line 9", "line", "not a JSON object"),
    ]
    assert _load(tmp_path, f"parts{lines_per_part}", batch, lines_per_part) == whole


def test_a_file_is_staged_no_more_than_a_part_at_a_time(tmp_path, monkeypatch) -> None:
    """The memory bug: a whole batch was staged at once (5.9 GiB for 10M events)."""
    path = tmp_path / "e.csv"
    path.write_text("email,type,timestamp,id\n" + "".join(
        f"u{i}@x.co,email.opened,2024-05-01T10:00:00Z,e{i}\n" for i in range(25)))
    staged_lines = []
    real_stage = ingest_module.stage

    def counting_stage(con, *args, **kwargs):
        result = real_stage(con, *args, **kwargs)
        staged_lines.append(con.execute("SELECT count(*) FROM _file").fetchall()[0][0])
        return result

    monkeypatch.setattr(ingest_module, "stage", counting_stage)
    with Store(tmp_path / "s.duckdb") as store:
        result = Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES,
                          lines_per_part=10).ingest(Batch(Stream.EVENTS, None, file=FileSlice(path, "csv")))
        assert (result.rows, result.loaded, result.rejected) == (25, 25, 0)
        assert rows(store, "SELECT count(*), count(DISTINCT source_event_id) FROM events") == [(25, 25)]
    assert staged_lines == [10, 10, 5]


def test_a_row_window_is_loaded_in_parts_within_its_bounds(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,first_name\n" + "".join(f"u{i}@x.co,N{i}\n" for i in range(1, 11)) + "u11@x.co,unfin")
    with Store(tmp_path / "s.duckdb") as store:
        result = Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES, lines_per_part=3).ingest(
            Batch(Stream.CONTACTS, None, file=FileSlice(path, "csv", skip_rows=2, until_row=9)))
        assert (result.rows, result.loaded, result.rejected) == (7, 7, 0)
        assert [r[0] for r in rows(store, "SELECT contact_key FROM contacts ORDER BY first_name")] == [
            f"u{i}@x.co" for i in range(3, 10)]
        assert rows(store, "SELECT count(*) FROM record_errors") == [(0,)]


def test_a_mapped_jsonl_key_missing_from_one_part_is_fine_but_not_from_the_whole_file(tmp_path) -> None:
    path = tmp_path / "e.jsonl"
    lines = [{"email": "a@x.co", "type": "page.viewed", "timestamp": "2024-05-01T10:00:00Z", "id": "p1"},
             {"email": "a@x.co", "type": "page.viewed", "timestamp": "2024-05-01T10:00:00Z", "id": "p2", "cat": "shoes"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with Store(tmp_path / "s.duckdb") as store:
        ingestor = Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES, lines_per_part=1)
        result = ingestor.ingest(Batch(Stream.EVENTS, None, file=FileSlice(path, "jsonl", columns={"category": "cat"})))
        assert (result.loaded, result.rejected) == (2, 0)
        assert rows(store, "SELECT source_event_id, category FROM events ORDER BY 1") == [("p1", None), ("p2", "shoes")]
        with pytest.raises(ValueError, match=r"column mapping names columns the source does not have: category -> 'kind'"):
            ingestor.ingest(Batch(Stream.EVENTS, None, file=FileSlice(path, "jsonl", columns={"category": "kind"})))


def test_parts_end_only_where_quotes_are_balanced(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b'h1,h2\na,"x\ny\nz"\nb,c\nd,e\n')  # lines 2-4 are one record
    assert parts(path, "csv", 2, None, 1) == [
        Part(2, 4, 6, 16), Part(5, 5, 16, 20), Part(6, None, 20, 24)]
    assert parts(path, "csv", 2, 5, 1) == [Part(2, 4, 6, 16), Part(5, 5, 16, 20)]
    assert parts(path, "csv", 2, None, 100) == [Part(2, None, 6, 24)]
    assert parts(path, "csv", 9, None, 1) == [Part(9, None, 24, 24)]
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_bytes(b'{"a": "\\""}\n{}\n{}\n{"b":')
    assert parts(jsonl, "jsonl", 1, None, 1) == [
        Part(1, 1, 0, 12), Part(2, 2, 12, 15), Part(3, 3, 15, 18), Part(4, None, 18, 23)]
    assert parts(jsonl, "jsonl", 2, 3, 1) == [Part(2, 2, 12, 15), Part(3, 3, 15, 18)]


def test_each_part_is_staged_from_its_own_bytes(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b'h1,h2\na,"x\ny"\nb,c\nd,e\n')
    con = duckdb.connect()
    for part, expected in zip(parts(path, "csv", 2, None, 1), [[(2, "a", "x\ny")], [(4, "b", "c")], [(5, "d", "e")]]):
        stage(con, path, "csv", "_t", first_line=part.first_line, last_line=part.last_line,
              offsets=(part.start, part.end))
        assert con.execute("SELECT * FROM _t ORDER BY 1").fetchall() == expected


@pytest.mark.parametrize(("data", "found"), [
    (b"a,b\n", False), (b"a\tb\r\n", False), (b"a\rb", True), (b"a\r", True), (b"\r\n\r", True),
    (b"a\x00", True), (b"\x0b", True), (b"\x1f", True), (b"\x7f", True), (b"\xc3\xa9\xff", False),
])
def test_control_bytes_are_found_by_the_byte_table(data, found) -> None:
    assert _has_control_bytes(data) is found


@pytest.mark.parametrize(("lines_per_part", "kept"), [(2, 4_000_000), (2, 1), (1_000_000, 4_000_000)])
def test_addresses_resolved_by_an_earlier_part_are_reused_and_named_on_every_line(tmp_path, monkeypatch, lines_per_part, kept) -> None:
    """A part resolves only the addresses no earlier part of its batch held (``kept``: how many
    the batch keeps; 1 starts again at every part); each line still gets its key or its error."""
    monkeypatch.setattr(ingest_module, "KEPT_ADDRESSES", kept)
    path = tmp_path / "e.csv"
    lines = [("a@x.co", "e1"), ("not-an-address", "e2"), (" A@X.co", "e3"), ("b@x.co", "e4"),
             ("not-an-address", "e5"), ("a@x.co", "e6"), ("b@x.co", "e7")]
    path.write_text("email,type,timestamp,id\n" + "".join(
        f"{email},email.opened,2024-05-01T10:00:00Z,{id_}\n" for email, id_ in lines))
    (counts, state) = _load(tmp_path, "s", Batch(Stream.EVENTS, None, file=FileSlice(path, "csv", label="e.csv")),
                            lines_per_part)
    assert counts[:3] == (7, 5, 2)
    assert [(key, id_) for key, _, id_, *_ in state["events"]] == [
        ("a@x.co", "e1"), ("a@x.co", "e3"), ("b@x.co", "e4"), ("a@x.co", "e6"), ("b@x.co", "e7")]
    reason = "invalid email address: An email address must have an @-sign."
    assert state["errors"] == [("e.csv line 3", "email", reason), ("e.csv line 6", "email", reason)]


@pytest.mark.parametrize("in_transaction", [False, True])
def test_line_numbers_of_a_bulk_load_follow_the_file_across_buffers_and_row_groups(tmp_path, in_transaction) -> None:
    """The bulk path numbers lines by the rows' positions in a parallel load (no window): a file
    larger than DuckDB's 32 MB read buffer and many row groups keeps every physical line, also
    inside a transaction (where row ids start at a base of their own)."""
    path = tmp_path / "e.csv"
    total = 700_000  # about 43 MB
    with path.open("w") as out:
        out.write("email,type,timestamp,id\n")
        out.writelines(f"user{i % 1000}@example.com,email.opened,2024-05-01T10:00:00Z,{i}\n" for i in range(total))
    con = duckdb.connect()
    if in_transaction:
        con.execute("BEGIN")
    staged = stage(con, path, "csv", "_file", first_line=2, last_line=total + 1)
    assert staged.bulk is True and staged.bad == []
    # Row i (0-based) is physical line i + 2: the header is line 1.
    assert con.execute("SELECT count(*), count(*) FILTER (WHERE _line <> id::BIGINT + 2), min(_line), max(_line) "
                       "FROM _file").fetchall() == [(total, 0, 2, total + 1)]


_MERGE_STORE: dict[str, Store] = {}
_NAMES = st.sampled_from(["", "  ", "Ann", "Bo", "Cy"])
_CUSTOM = st.dictionaries(st.sampled_from(["tier", "score", "plan"]), st.integers(0, 3), max_size=2)


@settings(max_examples=25, deadline=None)
@given(batch=st.lists(st.tuples(st.sampled_from(["a@x.co", "b@x.co", "c@x.co", "d@x.co"]), _NAMES, _CUSTOM),
                      min_size=1, max_size=10),
       lines_per_part=st.sampled_from([3, 1_000_000]))
def test_contacts_merge_by_the_rule_whether_a_person_has_one_row_in_a_part_or_several(tmp_path_factory, batch, lines_per_part) -> None:
    """People with one row in a part take it as it is, the others go through the aggregate: both
    follow the merge rule (a later non-empty value wins, an empty one never erases, custom
    attributes merge in line order)."""
    path = tmp_path_factory.mktemp("m") / "c.jsonl"
    path.write_text("".join(json.dumps({"email": e, "first_name": n, "custom": c}) + "\n" for e, n, c in batch))
    expected: dict[str, tuple] = {}
    for email, name, custom in batch:
        old_name, old_custom = expected.get(email, (None, {}))
        expected[email] = (name.strip() or old_name, {**old_custom, **custom})
    if "store" not in _MERGE_STORE:  # one store for every example (creating one costs more)
        _MERGE_STORE["store"] = Store(":memory:")
    store = _MERGE_STORE["store"]
    store.con.execute("DELETE FROM contacts")
    ingestor = Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES, lines_per_part=lines_per_part)
    with store.transaction():
        result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=FileSlice(path, "jsonl")))
    assert (result.rows, result.loaded, result.rejected) == (len(batch), len(expected), 0)
    got = rows(store, "SELECT contact_key, first_name, custom::VARCHAR FROM contacts ORDER BY 1")
    assert [(k, n, json.loads(c)) for k, n, c in got] == [(k, *expected[k]) for k in sorted(expected)]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=40).map(lambda b: bytes(b"ab\r\n\x00"[x % 5] for x in b)),
       cuts=st.lists(st.integers(0, 40), max_size=5))
def test_lines_and_control_bytes_are_found_whatever_the_chunks(data, cuts) -> None:
    """The region's bytes are counted and checked as they are copied, a chunk at a time: the
    result is the one over the whole bytes (a CR is judged with the byte after it, even in the
    next chunk; one ending the bytes ends the last line)."""
    from segsync.store.sourcefile import _Scan

    scan = _Scan()
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for start, end in zip(bounds, bounds[1:]):
        scan.feed(data[start:end])
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert scan.result() == (lines, _has_control_bytes(data + b"\n"))


def test_a_crlf_file_whose_chunk_ends_after_a_line_break_takes_the_bulk_path(tmp_path, monkeypatch) -> None:
    """A chunk ending with CR LF was checked without its LF's CR context: the CR looked bare and
    the whole part went line by line."""
    from segsync.store import sourcefile

    monkeypatch.setattr(sourcefile, "_CHUNK", 8)  # "a@x.co\r\n" is 8 bytes: every chunk ends with CR LF
    path = tmp_path / "c.csv"
    path.write_bytes(b"email\r\n" + b"a@x.co\r\n" * 4)
    con = duckdb.connect()
    staged = stage(con, path, "csv", "_t", first_line=2, last_line=5, offsets=(7, 7 + 32))
    assert (staged.bulk, staged.bad) == (True, [])
    assert con.execute("SELECT * FROM _t").fetchall() == [(n, "a@x.co") for n in (2, 3, 4, 5)]


def test_a_statement_that_fails_in_a_batch_is_the_error_raised_and_its_scratch_tables_roll_back(tmp_path, monkeypatch) -> None:
    """Dropping the batch's scratch tables after a failed statement raised "transaction is
    aborted" instead of the failure itself."""
    path = tmp_path / "c.csv"
    path.write_bytes(CONTACTS)

    def failing_merge(self) -> int:
        self.con.execute("SELECT error('the merge failed')").fetchall()
        return 0

    monkeypatch.setattr(Ingestor, "_merge_contacts", failing_merge)
    with Store(tmp_path / "s.duckdb") as store:
        ingestor = Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES)
        with pytest.raises(duckdb.InvalidInputException, match="the merge failed"):
            with store.transaction():
                ingestor.ingest(Batch(Stream.CONTACTS, None, file=FileSlice(path, "csv", label="c.csv")))
        assert rows(store, "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('_keys', '_batch_ids')") == [(0,)]
        assert rows(store, "SELECT count(*) FROM contacts") == [(0,)]

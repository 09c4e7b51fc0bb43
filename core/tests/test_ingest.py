"""Set-based ingestion: validation, record errors, merge rule, deduplication."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync import Batch, FileSlice, Stream
from segsync.model import InvalidEmail, normalize_email
from segsync.store import Store
from segsync.store.ingest import Ingestor
from segsync.store.sourcefile import MAX_JSON_DEPTH, MAX_RECORD_BYTES, SourceFileError

from .conftest import rows
from .test_model import addresses, padding


def _csv(tmp_path: Path, name: str, text: str) -> FileSlice:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return FileSlice(path, "csv", label=name)


def _jsonl(tmp_path: Path, name: str, records: list) -> FileSlice:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return FileSlice(path, "jsonl", label=name)


def _errors(store) -> list[tuple]:
    return rows(store, "SELECT record, field, reason FROM record_errors ORDER BY record, field")


def test_contacts_csv_bad_rows_are_named_and_the_rest_load(tmp_path, store, ingestor) -> None:
    file = _csv(tmp_path, "c.csv", "email,first_name,company_size,country,timezone,tier\n"
                "Ann@Example.COM ,Ann,12,de,Europe/Berlin,gold\n"
                "not-an-address,Bo,3,DE,,\n"
                "cy@example.org,Cy,-4,DEU,Mars/Base,\n"
                "di@bücher.de,Di,,,,silver\n")
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert (result.rows, result.loaded, result.rejected) == (4, 2, 2)
    assert rows(store, "SELECT contact_key, first_name, company_size, country, timezone, custom FROM contacts ORDER BY 1") == [
        ("ann@example.com", "Ann", 12, "DE", "Europe/Berlin", '{"tier":"gold"}'),
        ("di@xn--bcher-kva.de", "Di", None, None, None, '{"tier":"silver"}'),
    ]
    assert _errors(store) == [
        ("c.csv line 3", "email", "invalid email address: An email address must have an @-sign."),
        ("c.csv line 4", "company_size", "not a non-negative whole number: -4"),
        ("c.csv line 4", "country", "not an ISO 3166-1 alpha-2 code: DEU"),
        ("c.csv line 4", "timezone", "unknown IANA time zone: Mars/Base"),
    ]


def test_merge_rule_non_empty_overwrites_empty_never_erases(tmp_path, store, ingestor) -> None:
    ingestor.ingest(Batch(Stream.CONTACTS, None, file=_csv(tmp_path, "a.csv",
        "email,first_name,company,tier\nann@example.com,Ann,Acme,gold\n"
        "ANN@example.com,,Globex,\n")))
    assert rows(store, "SELECT first_name, company, custom FROM contacts") == [("Ann", "Globex", '{"tier":"gold"}')]
    other = Ingestor(store.con, connection="crm", run_id=2, event_types=[])
    other.ingest(Batch(Stream.CONTACTS, None, rows=[{"email": "ann@example.com", "first_name": None, "company": "Initech", "custom": {"score": 7}}]))
    assert rows(store, "SELECT first_name, company, custom, updated_by FROM contacts") == [
        ("Ann", "Initech", '{"tier":"gold","score":7}', "crm")
    ]


def test_external_ids_become_identities(store, ingestor) -> None:
    ingestor.ingest(Batch(Stream.CONTACTS, None, rows=[{"email": "a@b.co", "external_id": "42"}]))
    assert rows(store, "SELECT connection, external_id, contact_key FROM identities") == [("src", "42", "a@b.co")]


def test_events_jsonl_errors_have_exact_lines_and_duplicates_are_dropped(tmp_path, store, ingestor) -> None:
    good = {"email": "ann@example.com", "type": "order.completed", "timestamp": "2024-05-01T10:00:00Z",
            "id": "o1", "properties": {"value": 120.5, "currency": "eur", "order_id": "A1"}}
    file = _jsonl(tmp_path, "e.jsonl", [
        good,
        {"email": "ann@example.com", "type": "email.opened", "timestamp": "2024-05-01T10:00:00", "id": "e1"},
        "{not json",
        "",
        {"email": "zed@new.io", "type": "page.viewed", "timestamp": "2024-05-02T10:00:00+02:00", "id": "p1", "url": "/vip", "category": "vip"},
        {"email": "zed@new.io", "type": "bogus.thing", "timestamp": "2024-05-02T10:00:00Z", "id": "p2"},
        {"email": "zed@new.io", "type": "order.completed", "timestamp": "2024-05-02T10:00:00Z", "id": "o2"},
        {"email": "zed@new.io", "type": "page.viewed", "timestamp": "2024-05-02T10:00:00Z"},
        good,
    ])
    result = ingestor.ingest(Batch(Stream.EVENTS, None, file=file))
    assert (result.rows, result.loaded, result.rejected) == (8, 2, 5)
    assert rows(store, "SELECT contact_key, type, occurred_at::VARCHAR, source, source_event_id, value, currency, url, category FROM events ORDER BY source_event_id") == [
        ("ann@example.com", "order.completed", "2024-05-01 10:00:00+00", "src", "o1", 120.5, "EUR", None, None),
        ("zed@new.io", "page.viewed", "2024-05-02 08:00:00+00", "src", "p1", None, None, "/vip", "vip"),
    ]
    assert _errors(store) == [
        ("e.jsonl line 2", "timestamp", "not an ISO 8601 timestamp with a time zone (e.g. 2024-05-01T10:00:00Z): 2024-05-01T10:00:00"),
        ("e.jsonl line 3", "line", "not a JSON object"),
        ("e.jsonl line 6", "type", "unknown event type bogus.thing (see segsync plugins / docs/records.md)"),
        ("e.jsonl line 7", "value", "order.completed needs a value"),
        ("e.jsonl line 8", "id", "missing (the source event id deduplicates events)"),
    ]
    # A person first seen in an event still gets a contact row.
    assert rows(store, "SELECT contact_key FROM contacts ORDER BY 1") == [("ann@example.com",), ("zed@new.io",)]
    # Re-delivery of the same events adds nothing.
    again = ingestor.ingest(Batch(Stream.EVENTS, None, file=file))
    assert again.loaded == 0
    assert rows(store, "SELECT count(*) FROM events") == [(2,)]


def test_consent_rows_validate_and_reingesting_does_not_append_twice(store, ingestor) -> None:
    records = [
        {"email": "ann@example.com", "status": "opted_in", "timestamp": "2024-01-01T00:00:00Z", "method": "form", "evidence": "form v2"},
        {"email": "ann@example.com", "status": "opted_out", "timestamp": "2024-02-01T00:00:00Z", "channel": "email"},
        {"email": "x", "status": "maybe", "channel": "fax"},
    ]
    result = ingestor.ingest(Batch(Stream.CONSENT, None, rows=records, record_ids=["m1", "m2", "m3"]))
    assert (result.loaded, result.rejected) == (2, 1)
    assert rows(store, "SELECT contact_key, channel, purpose, status, recorded_at::VARCHAR, source, method, evidence FROM consent_ledger ORDER BY recorded_at") == [
        ("ann@example.com", "email", "marketing", "opted_in", "2024-01-01 00:00:00+00", "src", "form", "form v2"),
        ("ann@example.com", "email", "marketing", "opted_out", "2024-02-01 00:00:00+00", "src", "import", None),
    ]
    assert _errors(store) == [
        ("m3", "channel", "unknown channel fax"),
        ("m3", "email", "invalid email address: An email address must have an @-sign."),
        ("m3", "status", "unknown status maybe; one of opted_in, opted_out, pending, bounced, complained"),
        ("m3", "timestamp", "missing"),
    ]
    assert ingestor.ingest(Batch(Stream.CONSENT, None, rows=records[:2])).loaded == 0
    assert rows(store, "SELECT count(*) FROM consent_ledger") == [(2,)]


def test_column_mapping_and_row_window(tmp_path, store, ingestor) -> None:
    file = _csv(tmp_path, "export.csv", "E-mail,Vorname,Stufe\na@b.co,A,1\nc@d.co,C,2\ne@f.co,E,3\n")
    sliced = FileSlice(file.path, "csv", skip_rows=1, until_row=2,
                       columns={"email": "E-mail", "first_name": "Vorname", "tier": "Stufe"}, label="export.csv")
    ingestor.ingest(Batch(Stream.CONTACTS, None, file=sliced))
    assert rows(store, "SELECT contact_key, first_name, custom FROM contacts") == [("c@d.co", "C", '{"tier":"2"}')]


def test_mapping_to_a_missing_column_is_a_clear_error(tmp_path, ingestor) -> None:
    import pytest

    file = _csv(tmp_path, "x.csv", "mail\na@b.co\n")
    with pytest.raises(ValueError, match="email -> 'E-mail'"):
        ingestor.ingest(Batch(Stream.CONTACTS, None, file=FileSlice(file.path, "csv", columns={"email": "E-mail"})))


def test_newer_than_keeps_only_later_rows(tmp_path, store, ingestor) -> None:
    file = _jsonl(tmp_path, "c.jsonl", [
        {"email": "old@x.co", "updated": "2024-01-01T00:00:00Z"},
        {"email": "new@x.co", "updated": "2024-03-01T00:00:00Z"},
    ])
    ingestor.ingest(Batch(Stream.CONTACTS, None, file=FileSlice(file.path, "jsonl", newer_than=("updated", "2024-02-01T00:00:00Z"))))
    assert rows(store, "SELECT contact_key FROM contacts") == [("new@x.co",)]


@settings(max_examples=40)
@given(st.lists(st.tuples(addresses, padding), min_size=1, max_size=30))
def test_sql_normalization_matches_normalize_email(tmp_path_factory, pairs) -> None:
    """The store's set-based key derivation equals the Python rule for every address."""
    from segsync.default_plugins.event_types import EVENT_TYPES
    from segsync.store import Store

    raws = [f"{pad}{addr}" for addr, pad in pairs]
    with Store(":memory:") as store:
        Ingestor(store.con, connection="p", run_id=None, event_types=EVENT_TYPES).ingest(
            Batch(Stream.CONTACTS, None, rows=[{"email": r} for r in raws], record_ids=[str(i) for i in range(len(raws))])
        )
        loaded = {r[0] for r in rows(store, "SELECT contact_key FROM contacts")}
        rejected = {int(r[0]) for r in rows(store, "SELECT record FROM record_errors WHERE field = 'email'")}
    expected_keys = set()
    for index, raw in enumerate(raws):
        try:
            expected_keys.add(normalize_email(raw))
        except InvalidEmail:
            assert index in rejected
    assert loaded == expected_keys


# -- files that are not clean: one bad line is one record error, the rest loads ----------------

_HEADER = b"email,first_name,company\n"


def _csv_bytes(tmp_path: Path, name: str, data: bytes) -> FileSlice:
    path = tmp_path / name
    path.write_bytes(data)
    return FileSlice(path, "csv", label=name)


def _loaded(store) -> list[tuple]:
    return rows(store, "SELECT contact_key, first_name, company FROM contacts ORDER BY 1")


_GOOD_AROUND = [("a@x.co", "A", "Acme"), ("c@x.co", "C", "Co")]


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [
        (b"b@x.co,B\n", ("company", "missing: the line has 2 field(s), the header 3 (email, first_name, company)")),
        (b"b@x.co,B,Bo,extra\n", ("line", "the line has 4 fields, the header 3 (email, first_name, company); "
                                          "a value holding the delimiter must be quoted")),
        (b"b@x.co,B\x00x,Bo\n", ("first_name", "holds a raw control character U+0000 at column 2")),
        (b"b@x.co,B\x1bx,Bo\n", ("first_name", "holds a raw control character U+001B at column 2")),
        (b"b@x.co,B\xffx,Bo\n", ("first_name", "not UTF-8: byte 0xff at byte 9 of the line; save the file as UTF-8")),
        (b"b@x.co," + b"x" * 1_000_001 + b",Bo\n", ("line", "the line has 1,000,011 bytes; a record may have at most 1,000,000")),
        (b'b@x.co,"B,Bo\n', ("line", 'unterminated quoted field (a " opens a value that no " closes)')),
        (b"b@x.co,B\rx,Bo\n", ("line", "a carriage return or line break inside an unquoted value")),
    ],
    ids=["missing-column", "extra-column", "nul-byte", "escape-byte", "not-utf8", "over-1MB", "open-quote", "bare-cr"],
)
def test_one_bad_csv_line_is_one_record_error_and_the_rest_loads(tmp_path, store, ingestor, bad_line, error) -> None:
    file = _csv_bytes(tmp_path, "c.csv", _HEADER + b"a@x.co,A,Acme\n" + bad_line + b"c@x.co,C,Co\n")
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert (result.rows, result.loaded, result.rejected) == (3, 2, 1)
    assert _loaded(store) == _GOOD_AROUND
    assert _errors(store) == [("c.csv line 3", *error)]


def test_line_endings_may_be_mixed_and_a_last_line_may_lack_its_break(tmp_path, store, ingestor) -> None:
    # One LF row in a CRLF file, a blank line, and no line break at the end of the file.
    file = _csv_bytes(tmp_path, "c.csv", b"email,first_name,company\r\na@x.co,A,Acme\r\nb@x.co,B,Bo\n\r\n"
                                         b"c@x.co,C,Co\r\nd@x.co,D,Do")
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert (result.rows, result.loaded, result.rejected) == (4, 4, 0)
    assert _loaded(store) == [("a@x.co", "A", "Acme"), ("b@x.co", "B", "Bo"), ("c@x.co", "C", "Co"), ("d@x.co", "D", "Do")]


def test_quoted_line_breaks_keep_exact_line_numbers(tmp_path, store, ingestor) -> None:
    file = _csv_bytes(tmp_path, "c.csv", _HEADER + b'a@x.co,A,"Acme\nEast\nWing"\nbad,B,Bo\nc@x.co,C,"Co, Ltd"\n')
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert (result.rows, result.loaded, result.rejected) == (3, 2, 1)
    assert _loaded(store) == [("a@x.co", "A", "Acme\nEast\nWing"), ("c@x.co", "C", "Co, Ltd")]
    # The record spanning lines 2-4 moves the bad one to line 5.
    assert _errors(store) == [("c.csv line 5", "email", "invalid email address: An email address must have an @-sign.")]


def test_a_stray_quote_does_not_swallow_the_lines_after_it(tmp_path, store, ingestor) -> None:
    file = _csv_bytes(tmp_path, "c.csv", _HEADER + b'a@x.co,"A,Acme\nb@x.co,B,Bo\nc@x.co,C,"Co\nd@x.co,D,Do\n')
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert [r[0] for r in _loaded(store)] == ["b@x.co", "d@x.co"]
    assert [(r[0], r[1]) for r in _errors(store)] == [("c.csv line 2", "line"), ("c.csv line 4", "line")]
    assert (result.rows, result.rejected) == (4, 2)


@pytest.mark.parametrize("spelling", ["E-mail", "Email Address", "EMAIL", "e_mail", "E-Mail-Adresse"])
def test_common_spellings_of_the_email_header_are_recognised(tmp_path, store, ingestor, spelling) -> None:
    file = _csv(tmp_path, "c.csv", f"{spelling},First Name,tier\nann@example.com,Ann,gold\n")
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert (result.loaded, result.rejected) == (1, 0)
    assert rows(store, "SELECT contact_key, first_name, custom FROM contacts") == [("ann@example.com", "Ann", '{"tier":"gold"}')]


def test_a_header_without_an_email_column_fails_the_file_not_every_row(tmp_path, store, ingestor) -> None:
    file = _csv(tmp_path, "c.csv", "mail_addr,name\nann@example.com,Ann\n")
    with pytest.raises(SourceFileError) as caught:
        ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert str(caught.value) == (
        "c.csv: the header has no email column (found: mail_addr, name); expected email "
        "(or emailaddress, emailadresse, mail, mailaddress), or map yours: "
        'contacts_columns = { email = "<your column>" }'
    )
    assert rows(store, "SELECT count(*) FROM record_errors") == [(0,)]


def test_two_columns_that_could_each_be_the_email_are_an_error(tmp_path, ingestor) -> None:
    file = _csv(tmp_path, "c.csv", "E-mail,Email Address\na@x.co,b@x.co\n")
    with pytest.raises(SourceFileError, match="columns 'E-mail', 'Email Address' could each be email"):
        ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))


def test_clean_files_take_the_bulk_reader(tmp_path) -> None:
    """Speed: only a file with a bad line is read line by line."""
    import duckdb

    from segsync.store.sourcefile import stage

    clean = tmp_path / "clean.csv"
    clean.write_bytes(b"email,first_name,company\r\n" + b'a@x.co,A,"Acme, Inc"\r\n' * 3)
    dirty = tmp_path / "dirty.csv"
    dirty.write_bytes(_HEADER + b"a@x.co,A\xff,Acme\n")
    con = duckdb.connect()
    assert stage(con, clean, "csv", "_t").bulk is True
    assert con.execute("SELECT * FROM _t").fetchall() == [(n, "a@x.co", "A", "Acme, Inc") for n in (2, 3, 4)]
    assert stage(con, dirty, "csv", "_t").bulk is False


# -- JSONL: bounded nesting and size -------------------------------------------------------------


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def test_a_record_nested_too_deep_is_a_record_error_naming_line_and_field(tmp_path, store, ingestor) -> None:
    path = tmp_path / "c.jsonl"
    # json.dumps cannot write 5,000 levels; the text is built by hand.
    deep = '{"email": "deep@x.co", "custom": {"tier": ' + '{"n": ' * 5000 + "1" + "}" * 5000 + "}}"
    at_limit = {"email": "limit@x.co", "custom": {"tier": _nested(MAX_JSON_DEPTH - 2)}}
    over = {"email": "over@x.co", "custom": {"tier": _nested(MAX_JSON_DEPTH - 1)}}
    path.write_text("\n".join([json.dumps({"email": "a@x.co"}), deep, json.dumps(at_limit), json.dumps(over)]) + "\n")
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=FileSlice(path, "jsonl", label="c.jsonl")))
    assert (result.rows, result.loaded, result.rejected) == (4, 2, 2)
    assert rows(store, "SELECT contact_key FROM contacts ORDER BY 1") == [("a@x.co",), ("limit@x.co",)]
    assert _errors(store) == [
        ("c.jsonl line 2", "custom", f"nested more than {MAX_JSON_DEPTH} levels deep"),
        ("c.jsonl line 4", "custom", f"nested more than {MAX_JSON_DEPTH} levels deep"),
    ]


def test_a_connector_record_nested_too_deep_or_too_big_is_a_record_error(store, ingestor) -> None:
    records = [
        {"email": "a@x.co"},
        {"email": "deep@x.co", "custom": _nested(5000)},
        {"email": "big@x.co", "first_name": "B", "company": "x" * (MAX_RECORD_BYTES + 1)},
    ]
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, rows=records, record_ids=["r1", "r2", "r3"]))
    assert (result.rows, result.loaded, result.rejected) == (3, 1, 2)
    assert _errors(store) == [
        ("r2", "custom", f"nested more than {MAX_JSON_DEPTH} levels deep"),
        ("r3", "company", "the record has 1,000,073 bytes as JSON; a record may have at most 1,000,000"),
    ]


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [
        (b'{"email": "b@x.co", "first_name": "B\xff"}', ("line", "not UTF-8: byte 0xff at byte 37 of the line; save the file as UTF-8")),
        (b'{"email": "b@x.co", "first_name": "B\x07"}', ("line", "holds a raw control character U+0007 at column 37; JSON text must escape it")),
        (b'{"email": "b@x.co", "first_name": "' + b"x" * MAX_RECORD_BYTES + b'"}', ("line", "the line has 1,000,037 bytes; a record may have at most 1,000,000")),
        (b'{"email": "b@x.co", "first_name": "B\x1fx"}', ("line", "holds a raw control character U+001F at column 37; JSON text must escape it")),
    ],
    ids=["not-utf8", "control-byte", "over-1MB", "unit-separator"],
)
def test_one_bad_jsonl_line_is_one_record_error(tmp_path, store, ingestor, bad_line, error) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"email": "a@x.co"}\n' + bad_line + b'\n{"email": "c@x.co"}\n')
    result = ingestor.ingest(Batch(Stream.CONTACTS, None, file=FileSlice(path, "jsonl", label="c.jsonl")))
    assert (result.rows, result.loaded, result.rejected) == (3, 2, 1)
    assert rows(store, "SELECT contact_key FROM contacts ORDER BY 1") == [("a@x.co",), ("c@x.co",)]
    assert _errors(store) == [("c.jsonl line 2", *error)]


def test_an_open_quote_never_swallows_a_later_good_line_through_its_quotes(tmp_path, store, ingestor) -> None:
    # A lenient parser closes the open quote at the next line's `"` and reads three fields.
    file = _csv_bytes(tmp_path, "c.csv", _HEADER + b'a@x.co,A,"Acme\nc@x.co,C,",Co"\n')
    ingestor.ingest(Batch(Stream.CONTACTS, None, file=file))
    assert _loaded(store) == [("c@x.co", "C", ",Co")]
    assert _errors(store) == [("c.csv line 2", "line", 'unterminated quoted field (a " opens a value that no " closes)')]


# -- property: random files with random bad lines -------------------------------------------------

_SHARED: dict[str, Store] = {}


def _empty_store() -> Store:
    """One in-memory store for every example (creating one costs more than an example)."""
    if "store" not in _SHARED:
        _SHARED["store"] = Store(":memory:")
    store = _SHARED["store"]
    for table in ("record_errors", "identities", "contacts"):
        store.con.execute(f"DELETE FROM {table}")
    return store


# No line breaks in values here: a quote left open by a bad line is closed by the next line
# with an odd number of quotes, as in any CSV reader (values spanning lines: tests above).
_text = st.text(alphabet=st.sampled_from(list("abcXYZ é€,;\"' \t-=")), max_size=12)
_csv_bad = {
    "missing-field": lambda n: f"u{n}@x.co,B\n".encode(),
    "extra-field": lambda n: f"u{n}@x.co,B,C,D\n".encode(),
    "not-utf8": lambda n: f"u{n}@x.co,B".encode() + b"\xe9,C\n",
    "control": lambda n: f"u{n}@x.co,B\x01,C\n".encode(),
    "open-quote": lambda n: f'u{n}@x.co,B,"C\n'.encode(),
    "bare-cr": lambda n: f"u{n}@x.co,B\rB,C\n".encode(),
}
_csv_lines = st.lists(
    st.one_of(
        st.tuples(st.just("good"), _text, _text, st.sampled_from(["\n", "\r\n"])),
        st.tuples(st.just("bad"), st.sampled_from(sorted(_csv_bad))),
        st.just(("blank",)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_csv_lines)
def test_random_csv_never_loses_a_good_line_and_reports_exactly_the_bad_ones(tmp_path_factory, lines) -> None:
    import csv as csv_module
    import io

    import duckdb

    from segsync.store.sourcefile import stage

    out = bytearray(_HEADER)
    line = 2
    good: dict[int, tuple] = {}
    bad: dict[int, str] = {}
    for n, item in enumerate(lines):
        if item[0] == "good":
            _, first, company, ending = item
            buffer = io.StringIO()
            csv_module.writer(buffer, lineterminator=ending).writerow([f"u{n}@x.co", first, company])
            text = buffer.getvalue()
            good[line] = (f"u{n}@x.co", first or None, company or None)
            line += text.count("\n")
            out += text.encode()
        elif item[0] == "bad":
            bad[line] = item[1]
            out += _csv_bad[item[1]](n)
            line += 1
        else:
            out += b"\n"
            line += 1
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    path.write_bytes(bytes(out))
    con = duckdb.connect()
    staged = stage(con, path, "csv", "_t")
    assert {b.line for b in staged.bad} == set(bad)
    assert len(staged.bad) == len(bad)
    got = {r[0]: tuple(r[1:]) for r in con.execute("SELECT * FROM _t").fetchall()}
    assert got == good
    # And through the ingestor: every good line loads, every bad one is one record error.
    store = _empty_store()
    result = Ingestor(store.con, connection="p", run_id=None, event_types=[]).ingest(Batch(Stream.CONTACTS, None, file=FileSlice(path, "csv", label="c.csv")))
    assert (result.loaded, result.rejected) == (len(good), len(bad))
    assert sorted(r[0] for r in rows(store, "SELECT record FROM record_errors")) == sorted(f"c.csv line {n}" for n in bad)


_jsonl_bad = {
    "not-utf8": lambda n: b'{"email": "u%d@x.co", "first_name": "\xe9"}' % n,
    "control": lambda n: b'{"email": "u%d@x.co", "first_name": "\x02"}' % n,
    "not-json": lambda n: b'{"email": "u%d@x.co", ' % n,
    "too-deep": lambda n: b'{"email": "u%d@x.co", "custom": ' % n + b"[" * 40 + b"]" * 40 + b"}",
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.tuples(st.just("good"), st.text(max_size=10), st.sampled_from(["\n", "\r\n"])),
    st.tuples(st.just("bad"), st.sampled_from(sorted(_jsonl_bad))),
    st.just(("blank",)),
), max_size=25))
def test_random_jsonl_never_loses_a_good_line_and_reports_exactly_the_bad_ones(tmp_path_factory, lines) -> None:
    import duckdb

    out = bytearray()
    good: dict[str, str | None] = {}
    bad: list[int] = []
    for n, item in enumerate(lines):
        if item[0] == "good":
            out += (json.dumps({"email": f"u{n}@x.co", "first_name": item[1]}) + item[2]).encode()
            # Text attributes are stored trimmed (SQL trim), empty as missing.
            good[f"u{n}@x.co"] = duckdb.execute("SELECT nullif(trim($1), '')", [item[1]]).fetchall()[0][0]
        elif item[0] == "bad":
            out += _jsonl_bad[item[1]](n) + b"\n"
            bad.append(n + 1)
        else:
            out += b"\n"
    path = tmp_path_factory.mktemp("jsonl") / "c.jsonl"
    path.write_bytes(bytes(out))
    store = _empty_store()
    result = Ingestor(store.con, connection="p", run_id=None, event_types=[]).ingest(Batch(Stream.CONTACTS, None, file=FileSlice(path, "jsonl", label="c.jsonl")))
    assert (result.loaded, result.rejected) == (len(good), len(bad))
    assert dict(rows(store, "SELECT contact_key, first_name FROM contacts")) == good
    assert sorted(r[0] for r in rows(store, "SELECT DISTINCT record FROM record_errors")) == sorted(f"c.jsonl line {n}" for n in bad)

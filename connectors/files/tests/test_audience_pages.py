"""The audience written a page at a time is the audience written whole, byte for byte.

``reference_write`` is the files connector's write before pages existed: every row loaded,
the changes applied in order, every row sorted and written out. The session (pages sorted and
spilled, merged with the current file on commit) must produce the same two files.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

import segsync_files.audience as audience_module

from segsync import KNOWN_ATTRIBUTES, ContactChange
from segsync_files.audience import AudienceFile, _cell, _inert


def reference_write(base: Path, changes: list[ContactChange]) -> tuple[bytes, bytes]:
    jsonl = base.with_name(base.name + ".jsonl")
    rows: dict[str, dict] = {}
    if jsonl.exists():
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["email"]] = row
    for change in changes:
        if change.op == "delete":
            rows.pop(change.contact_key, None)
        else:
            rows[change.contact_key] = {"email": change.contact_key, "status": change.status,
                                        "tags": sorted(change.tags), "attributes": dict(change.attributes)}
    ordered = [rows[key] for key in sorted(rows)]
    state = "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered)
    custom = sorted({k for r in ordered for k in r["attributes"]} - set(KNOWN_ATTRIBUTES))
    header = ["email", "status", "tags", *KNOWN_ATTRIBUTES, *custom]
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([_inert(name) for name in header])
    for r in ordered:
        writer.writerow(_inert(cell) for cell in [r["email"], r["status"], ";".join(r["tags"])]
                        + [_cell(r["attributes"].get(name)) for name in (*KNOWN_ATTRIBUTES, *custom)])
    return state.encode(), out.getvalue().encode()


def upsert(key: str, status: str = "subscribed", tags: tuple[str, ...] = (), **attributes) -> ContactChange:
    return ContactChange(contact_key=key, op="upsert", status=status, attributes=attributes, tags=tags)


def delete(key: str) -> ContactChange:
    return ContactChange(contact_key=key, op="delete", status="unsubscribed")


def session_write(base: Path, pages: list[list[ContactChange]]) -> tuple[bytes, bytes, int, list[int]]:
    session = AudienceFile(base).session()
    outcomes = [len(session.write(page).outcomes) for page in pages]
    calls = session.commit()
    return (base.with_name("audience.jsonl").read_bytes(), base.with_name("audience.csv").read_bytes(),
            calls, outcomes)


FIRST = [upsert(f"c{i:03}@example.com", tags=("b", "a") if i % 3 else (), first_name=f"N{i}",
                **({"score": i} if i % 2 else {})) for i in range(0, 60)]
SECOND = [
    [upsert("c010@example.com", status="unsubscribed", tags=("x",), plan="=HYPERLINK(1)"),
     delete("c020@example.com"), upsert("a-new@example.com", nested={"k": [1, 2.5, None]})],
    [upsert("c010@example.com", status="cleaned"),  # a later page replaces the earlier change
     delete("c999@example.com"), upsert("zz@example.com", company="-minus")],
    [delete("c010@example.com"), upsert("c020@example.com", tags=("back",))],
]


def test_pages_give_the_same_bytes_as_one_write_of_every_row(tmp_path: Path) -> None:
    reference, paged = tmp_path / "reference" / "audience", tmp_path / "paged" / "audience"
    reference.parent.mkdir()
    # A first write in three uneven pages, then three pages over that audience.
    expected = reference_write(reference, FIRST)
    reference.with_name("audience.jsonl").write_bytes(expected[0])
    assert session_write(paged, [FIRST[:7], FIRST[7:8], FIRST[8:]]) == (*expected, 2, [7, 1, 52])
    expected = reference_write(reference, [c for page in SECOND for c in page])
    assert session_write(paged, SECOND) == (*expected, 2, [3, 3, 2])
    state = [json.loads(line) for line in expected[0].decode().splitlines()]
    assert [r["email"] for r in state][:3] == ["a-new@example.com", "c000@example.com", "c001@example.com"]
    assert "c010@example.com" not in {r["email"] for r in state}
    assert next(r for r in state if r["email"] == "c020@example.com")["tags"] == ["back"]
    assert b"'-minus" in expected[1] and b"'=HYPERLINK(1)" not in expected[1]  # c010 was deleted
    assert sorted(p.name for p in paged.parent.iterdir()) == ["audience.csv", "audience.jsonl"]  # no pages left


def test_a_hand_edited_audience_out_of_order_is_merged_as_before(tmp_path: Path) -> None:
    base = tmp_path / "audience"
    lines = [{"email": "m@example.com", "status": "subscribed", "tags": [], "attributes": {"a": 1}},
             {"email": "b@example.com", "status": "subscribed", "tags": [], "attributes": {}},
             {"email": "m@example.com", "status": "cleaned", "tags": ["t"], "attributes": {}}]
    text = "".join(json.dumps(r) + "\n\n" for r in lines)  # unsorted keys, blank lines, a duplicate
    base.with_name("audience.jsonl").write_text(text)
    (tmp_path / "expected").mkdir()
    expected_base = tmp_path / "expected" / "audience"
    expected_base.with_name("audience.jsonl").write_text(text)
    changes = [upsert("c@example.com"), delete("b@example.com")]
    expected = reference_write(expected_base, changes)
    assert session_write(base, [changes]) == (*expected, 2, [2])
    assert expected[0].decode().splitlines() == [
        '{"attributes": {}, "email": "c@example.com", "status": "subscribed", "tags": []}',
        '{"attributes": {}, "email": "m@example.com", "status": "cleaned", "tags": ["t"]}',
    ]


def test_an_aborted_session_leaves_the_audience_and_no_pages(tmp_path: Path) -> None:
    base = tmp_path / "audience"
    session_write(base, [FIRST])
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    session = AudienceFile(base).session()
    session.write(SECOND[0])
    assert len(list(tmp_path.iterdir())) == 3  # the audience's two files and the folder of pages
    session.abort()
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before
    assert AudienceFile(base).session().commit() == 0  # no page: nothing written
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before


# -- copying the unchanged contacts' lines ---------------------------------------------------
#
# The commit copies the lines of unchanged contacts as they are, and the files stay the bytes
# ``reference_write`` gives. The copying is allowed only while both files are as the module left
# them (the CSV carries the JSONL's modification time); a hand edit of either file, or a line not
# in the module's form, makes the commit read every line as before, so the edit is normalised
# and reaches the CSV.


class Parsed:
    """Counts the rows the commit parsed (for a CSV row) and whether it read every line."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.csv_rows: list[str] = []
        self.read_every_line = 0
        csv_row, current = audience_module._csv_row, AudienceFile.current

        def counted_csv_row(row, columns):
            self.csv_rows.append(row["email"])
            return csv_row(row, columns)

        def counted_current(audience):
            self.read_every_line += 1
            return current(audience)

        monkeypatch.setattr(audience_module, "_csv_row", counted_csv_row)
        monkeypatch.setattr(AudienceFile, "current", counted_current)


def _written(tmp_path: Path, changes) -> tuple[Path, Path]:
    """An audience written by the module (``paged``) and its reference twin."""
    paged, reference = tmp_path / "paged" / "audience", tmp_path / "reference" / "audience"
    reference.parent.mkdir()
    expected = reference_write(reference, changes)
    reference.with_name("audience.jsonl").write_bytes(expected[0])
    assert session_write(paged, [changes])[:2] == expected
    return paged, reference


def _stamped(base: Path) -> bool:
    files = AudienceFile(base)
    return files.jsonl.stat().st_mtime_ns == files.csv.stat().st_mtime_ns


def test_unchanged_contacts_are_copied_and_the_bytes_are_those_of_a_full_rewrite(tmp_path, monkeypatch) -> None:
    paged, reference = _written(tmp_path, FIRST)
    assert _stamped(paged)
    parsed = Parsed(monkeypatch)
    changes = [upsert("c005@example.com", tags=("a",), first_name="Changed", score=5),
               upsert("c040@example.com", status="unsubscribed", first_name="N40", score=41), delete("c041@example.com"),
               upsert("c0405@example.com", first_name="New")]
    expected = reference_write(reference, changes)
    assert session_write(paged, [changes[:2], changes[2:]]) == (*expected, 2, [2, 2])
    # Only the pages' rows were parsed for their CSV rows; the 58 others copied, from both files.
    assert sorted(parsed.csv_rows) == ["c005@example.com", "c0405@example.com", "c040@example.com"]
    assert parsed.read_every_line == 0
    assert _stamped(paged)


@pytest.mark.parametrize("pages", [
    pytest.param([[upsert("c001@example.com", brand_new="x")]], id="a new custom column"),
    pytest.param([[delete(f"c{i:03}@example.com") for i in range(1, 60, 2)]], id="a custom column no row holds"),
    pytest.param(SECOND, id="deletes, adds and later pages"),
    pytest.param([[upsert("c002@example.com", note='line one\r\n"two", three')],
                  [upsert("c004@example.com", first_name="=cmd")]], id="quoted line breaks"),
])
def test_every_kind_of_change_gives_the_bytes_of_a_full_rewrite(tmp_path, monkeypatch, pages) -> None:
    paged, reference = _written(tmp_path, FIRST)
    # A cell with a line break in the current CSV: its record spans two lines and is copied whole.
    first = [upsert("c003@example.com", note="a\nb", first_name="N3", score=3)]
    expected = reference_write(reference, first)
    reference.with_name("audience.jsonl").write_bytes(expected[0])
    assert session_write(paged, [first])[:2] == expected
    parsed = Parsed(monkeypatch)
    changes = [c for page in pages for c in page]
    expected = reference_write(reference, changes)
    assert session_write(paged, pages)[:2] == expected
    assert parsed.read_every_line == 0
    assert _stamped(paged)


def test_the_score_column_goes_when_its_last_row_does(tmp_path) -> None:
    paged, _ = _written(tmp_path, FIRST)
    session_write(paged, [[delete(f"c{i:03}@example.com") for i in range(1, 60, 2)]])
    header = paged.with_name("audience.csv").read_text().splitlines()[0]
    assert header == ",".join(["email", "status", "tags", *KNOWN_ATTRIBUTES])  # no score column


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_hand_edited_jsonl_is_read_line_by_line_normalised_and_reaches_the_csv(tmp_path, monkeypatch) -> None:
    paged, reference = _written(tmp_path, FIRST)
    jsonl = paged.with_name("audience.jsonl")
    # Another spelling of c007's row (keys unsorted, no spaces) with another status, and a blank line.
    row = {"email": "c007@example.com", "tags": ["a", "b"], "status": "cleaned", "attributes": {"first_name": "N7", "score": 7}}
    lines = jsonl.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"c007@example.com"' in line)
    lines[at] = json.dumps(row, separators=(",", ":")) + "\n"
    jsonl.write_text("\n".join(lines) + "\n")
    reference.with_name("audience.jsonl").write_text("\n".join(lines) + "\n")
    assert not _stamped(paged)
    parsed = Parsed(monkeypatch)
    changes = [upsert("c010@example.com", first_name="Ten")]
    expected = reference_write(reference, changes)
    assert session_write(paged, [changes])[:2] == expected
    assert parsed.read_every_line == 1
    state = paged.with_name("audience.jsonl").read_text().splitlines()
    assert state[7] == ('{"attributes": {"first_name": "N7", "score": 7}, "email": "c007@example.com", '
                        '"status": "cleaned", "tags": ["a", "b"]}')
    assert "c007@example.com,cleaned,a;b," in paged.with_name("audience.csv").read_text()
    assert _stamped(paged)  # the next run copies again


def test_a_hand_edited_csv_alone_is_written_again_from_the_jsonl(tmp_path, monkeypatch) -> None:
    paged, reference = _written(tmp_path, FIRST)
    _edit(paged.with_name("audience.csv"), "c007@example.com,subscribed", "c007@example.com,EDITED")
    parsed = Parsed(monkeypatch)
    changes = [delete("c010@example.com")]
    assert session_write(paged, [changes])[:2] == reference_write(reference, changes)
    assert parsed.read_every_line == 1
    assert b"EDITED" not in paged.with_name("audience.csv").read_bytes()


@pytest.mark.parametrize("edit", [
    pytest.param(('{"attributes": {"first_name": "N8"', '{"attributes":{"first_name": "N8"'), id="another spelling"),
    pytest.param(('"c009@example.com"', '"c0091@example.com"'), id="a CSV record of another contact"),
    pytest.param(('"c012@example.com"', '"c011@example.com"'), id="an email twice"),
])
def test_a_line_not_as_written_under_the_same_times_makes_the_commit_read_every_line(tmp_path, monkeypatch, edit) -> None:
    paged, reference = _written(tmp_path, FIRST)
    jsonl, csv_file = paged.with_name("audience.jsonl"), paged.with_name("audience.csv")
    _edit(jsonl, *edit)
    _edit(reference.with_name("audience.jsonl"), *edit)
    os.utime(csv_file, ns=(csv_file.stat().st_atime_ns, jsonl.stat().st_mtime_ns))  # the times hide the edit
    assert _stamped(paged)
    parsed = Parsed(monkeypatch)
    changes = [upsert("c010@example.com", first_name="Ten")]
    assert session_write(paged, [changes])[:2] == reference_write(reference, changes)
    assert parsed.read_every_line == 1


def test_an_edit_in_the_module_form_hidden_by_the_times_is_kept_in_the_jsonl_only(tmp_path) -> None:
    # What the times cannot tell: a line still in the module's form around its attributes, edited,
    # with the CSV's time set back to the JSONL's by hand. The line is copied as it is, and so is
    # its CSV record.
    paged, _ = _written(tmp_path, FIRST)
    jsonl, csv_file = paged.with_name("audience.jsonl"), paged.with_name("audience.csv")
    _edit(jsonl, '"c007@example.com", "status": "subscribed"', '"c007@example.com", "status": "cleaned"')
    os.utime(csv_file, ns=(csv_file.stat().st_atime_ns, jsonl.stat().st_mtime_ns))
    session_write(paged, [[upsert("c010@example.com", first_name="Ten")]])
    assert '"c007@example.com", "status": "cleaned"' in jsonl.read_text()
    assert "c007@example.com,subscribed," in csv_file.read_text()


def test_emails_with_a_tab_or_a_leading_quote_survive_the_pages(tmp_path) -> None:
    # A page line holds the email as it is unless JSON must spell it (a tab, a line break, a
    # leading quote); both spellings are read back as the email.
    paged, reference = _written(tmp_path, FIRST)
    changes = [upsert('"quoted"@example.com', first_name="Q"), upsert("tab\there@example.com", first_name="T"),
               upsert("c001@example.com", first_name="Plain")]
    assert session_write(paged, [changes])[:2] == reference_write(reference, changes)
    state = [json.loads(line)["email"] for line in paged.with_name("audience.jsonl").read_text().splitlines()]
    assert state[0] == '"quoted"@example.com' and state[-1] == "tab\there@example.com"


def test_a_page_is_serialised_once_and_the_commit_parses_none_of_its_rows(tmp_path, monkeypatch) -> None:
    base = tmp_path / "audience"
    session = AudienceFile(base).session()
    changes = [upsert("b@example.com", tags=("y", "x"), first_name="B", plan="pro"), delete("a@example.com"),
               upsert("c@example.com", first_name="two\nlines")]
    assert [o.status for o in session.write(changes).outcomes] == ["ok", "ok", "ok"]
    (page,) = session._pages
    # The rows file: email, custom attributes (JSON, empty: none), the row's JSON line (null: deleted).
    assert page.read_text(encoding="utf-8") == (
        "a@example.com\t\tnull\n"
        'b@example.com\t{"plan": "pro"}\t{"attributes": {"first_name": "B", "plan": "pro"}, '
        '"email": "b@example.com", "status": "subscribed", "tags": ["x", "y"]}\n'
        'c@example.com\t\t{"attributes": {"first_name": "two\\nlines"}, "email": "c@example.com", '
        '"status": "subscribed", "tags": []}\n')
    # The records file: each row's CSV record of the known columns (a quoted line break included).
    empty = "," * (len(KNOWN_ATTRIBUTES) - 1)
    assert page.with_name(page.name + ".csv").read_bytes() == (
        f"b@example.com,subscribed,x;y,B{empty}\r\n"
        f'c@example.com,subscribed,,"two\nlines"{empty}\r\n').encode()
    parsed = Parsed(monkeypatch)
    assert session.commit() == 2
    assert parsed.csv_rows == []  # the commit copied the pages' records
    assert (base.with_name("audience.jsonl").read_bytes(), base.with_name("audience.csv").read_bytes()) == \
        reference_write(tmp_path / "reference", changes)
    assert base.with_name("audience.csv").read_text(encoding="utf-8").splitlines()[1] == \
        f"b@example.com,subscribed,x;y,B{empty},pro"


@pytest.mark.parametrize("cells", [
    ["a@example.com", "subscribed", "x;y", "B", "", ""],
    ["a@example.com", "subscribed", "", "Smith, Ann", ""],
    ["a@example.com", "subscribed", "", 'say "hi"', ""],
    ["a@example.com", "subscribed", "", "two\nlines", "cr\ronly"],
    ["", ""],
    [""],
    ["only"],
    ["tab\tinside", "'=1+2", " lead space "],
])
def test_a_record_joined_by_hand_is_the_one_csv_writes(cells) -> None:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    assert audience_module._record(cells) == out.getvalue()

"""The audience written a page at a time is the audience written whole, byte for byte.

``reference_write`` is the files connector's write before pages existed: every row loaded,
the changes applied in order, every row sorted and written out. The session (pages sorted and
spilled, merged with the current file on commit) must produce the same two files.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

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

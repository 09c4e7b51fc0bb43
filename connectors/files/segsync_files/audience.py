"""The audience a destination would hold, as CSV and JSONL files replaced atomically.

A run's changes come in pages (:class:`AudienceWrite`, the connector's write session): each
page is sorted and spilled to a temporary file beside the audience, and the commit merges the
current audience (sorted by email, as this module writes it) with the pages into the new
files in one streaming pass, so no more than a page of rows is ever held in memory. The files
are the same, byte for byte, as loading every row, applying the changes and writing them out
sorted.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from segsync import KNOWN_ATTRIBUTES, ContactChange, Outcome, WriteResult, WriteSession


class AudienceFile:
    """``<base>.jsonl`` is the state (one object per contact, sorted by email); ``<base>.csv``
    mirrors it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.jsonl = base.with_name(base.name + ".jsonl")
        self.csv = base.with_name(base.name + ".csv")

    def session(self) -> AudienceWrite:
        return AudienceWrite(self)

    def current(self) -> Iterator[tuple[str, str, list[str]]]:
        """``(email, JSON line, attribute names)`` of each row of the audience, in the file's
        order; the line is the row as this module writes it (keys sorted)."""
        if not self.jsonl.exists():
            return
        with self.jsonl.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    yield row["email"], json.dumps(row, sort_keys=True), list(row["attributes"])


class AudienceWrite(WriteSession):
    """Changes to an audience, a page at a time, replacing its files once on :meth:`commit`."""

    def __init__(self, audience: AudienceFile) -> None:
        self.audience = audience
        self._spill: Path | None = None  # the folder holding the sorted pages
        self._pages: list[Path] = []

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        """Stage one page: its rows sorted by email (a later change for a contact wins)."""
        if not changes:
            return WriteResult([], 0)
        if self._spill is None:
            self.audience.base.parent.mkdir(parents=True, exist_ok=True)
            self._spill = Path(tempfile.mkdtemp(prefix=f".{self.audience.base.name}.pages.",
                                                dir=self.audience.base.parent))
        latest = {change.contact_key: change for change in changes}
        page = self._spill / f"{len(self._pages):06}"
        with page.open("w", encoding="utf-8") as out:
            for key in sorted(latest):
                # One line per contact: its email and attribute names (JSON), and its row's JSON
                # line or null (deleted), tab-separated (JSON escapes a tab inside a string).
                change = latest[key]
                names = [] if change.op == "delete" else list(change.attributes)
                out.write(f"{json.dumps(key)}\t{json.dumps(names)}\t{_row_line(change)}\n")
        self._pages.append(page)
        return WriteResult([Outcome.ok(change.contact_key) for change in changes], 0)

    def commit(self) -> int:
        """Replace both files atomically with the audience and every page; return how many
        files were written (0 when no page was staged)."""
        if self._spill is None:
            return 0
        try:
            lines = self._merged()
            try:
                columns = self._write_jsonl(lines)
            except _Unsorted:
                # Not written by this module (rows out of order): sort the current rows first.
                latest = {key: (key, line, names) for key, line, names in self.audience.current()}
                lines = self._merged([latest[key] for key in sorted(latest)])
                columns = self._write_jsonl(lines)
            _atomic_write(self.audience.csv, lambda handle: _write_csv(handle, self.audience.jsonl, columns))
        finally:
            self.abort()
        return 2

    def abort(self) -> None:
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill, self._pages = None, []

    def _merged(self, current: list[Row] | None = None) -> Iterator[tuple[str, list[str]]]:
        """The new audience's JSON lines in email order, each with its attribute names: each
        contact's last change over its current row; deleted contacts left out."""
        sources = [_tagged(_in_order(self.audience.current()) if current is None else iter(current), 0)]
        sources += [_tagged(_page(path), number) for number, path in enumerate(self._pages, start=1)]
        pending: tuple[str, str, list[str]] | None = None
        for key, _, line, names in heapq.merge(*sources):
            if pending is not None and pending[0] != key and pending[1] != "null":
                yield pending[1], pending[2]
            pending = (key, line, names)
        if pending is not None and pending[1] != "null":
            yield pending[1], pending[2]

    def _write_jsonl(self, lines: Iterator[tuple[str, list[str]]]) -> list[str]:
        """Write the JSONL state; return the CSV's attribute columns (known, then custom sorted)."""
        custom: set[str] = set()

        def fill(handle) -> None:
            for line, names in lines:
                handle.write(line + "\n")
                custom.update(names)

        _atomic_write(self.audience.jsonl, fill)
        return [*KNOWN_ATTRIBUTES, *sorted(custom - set(KNOWN_ATTRIBUTES))]


class _Unsorted(Exception):
    """The current audience file is not in email order."""


def _row_line(change: ContactChange) -> str:
    if change.op == "delete":
        return "null"
    return json.dumps({"email": change.contact_key, "status": change.status, "tags": sorted(change.tags),
                       "attributes": dict(change.attributes)}, sort_keys=True)


Row = tuple[str, str, list[str]]  # email, JSON line (or null: deleted), attribute names


def _in_order(rows: Iterator[Row]) -> Iterator[Row]:
    """``rows`` as they are, raising :class:`_Unsorted` at the first one out of email order; of
    two rows for one email (a hand-edited file) the later one counts, as before."""
    previous: Row | None = None
    for row in rows:
        if previous is not None:
            if row[0] < previous[0]:
                raise _Unsorted
            if row[0] != previous[0]:
                yield previous
        previous = row
    if previous is not None:
        yield previous


def _page(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            key, names, row = line.rstrip("\n").split("\t", 2)
            yield json.loads(key), row, json.loads(names)


def _tagged(rows: Iterator[Row], source: int) -> Iterator[tuple[str, int, str, list[str]]]:
    """Rows with their source's number: of equal emails the merge puts the later source last
    (a source holds an email once, so the comparison never reaches the line)."""
    return ((key, source, line, names) for key, line, names in rows)


def _write_csv(handle, jsonl: Path, columns: list[str]) -> None:
    writer = csv.writer(handle)
    writer.writerow([_inert(name) for name in ["email", "status", "tags", *columns]])
    with jsonl.open(encoding="utf-8") as rows:
        for line in rows:
            r = json.loads(line)
            attrs = r["attributes"]
            writer.writerow(
                _inert(cell)
                for cell in [r["email"], r["status"], ";".join(r["tags"])] + [_cell(attrs.get(name)) for name in columns]
            )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# A spreadsheet opening the CSV runs a cell that starts with one of these as a formula
# (=HYPERLINK(...), +1+cmd|..., @SUM(...)): OWASP's CSV injection guidance is to prefix a single
# quote, which shows the text as it is. The JSONL state keeps the exact values.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _atomic_write(path: Path, fill) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

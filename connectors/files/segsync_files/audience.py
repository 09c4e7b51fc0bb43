"""The audience a destination would hold, as CSV and JSONL files replaced atomically.

A run's changes come in pages (:class:`AudienceWrite`, the connector's write session): each
page is sorted and spilled to temporary files beside the audience, and the commit merges the
current audience (sorted by email, as this module writes it) with the pages into the new
files in one streaming pass, so no more than a page of rows is ever held in memory. The files
are the same, byte for byte, as loading every row, applying the changes and writing them out
sorted.

A page is serialised once, when it is written: each row's JSON line, and its CSV record for the
known attributes' columns (the custom attributes' columns are known only at the commit, which
adds their cells from the row's custom attributes, kept beside its line). The commit copies
both; it parses no page row.

The lines of contacts no change touches are copied as they are, from both files, when the
files are exactly as this module left them: after writing both it gives the CSV the JSONL's
modification time to the nanosecond, and any later write to either file (a hand edit, another
tool) gives that file a time of its own. Otherwise, or when a line is not in the form this
module writes (out of email order, a repeated email, a line of another shape, a CSV record
that is not the row's), the commit reads every line as it always did: each is parsed and written
anew in this module's form (keys sorted, blank lines dropped, the later of two lines for one
email kept, an unsorted file sorted) and the CSV is written from the JSONL, so a hand edit of
the JSONL reaches the CSV and a hand edit of the CSV alone is replaced by the JSONL's rows.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from json.decoder import scanstring
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

    def as_written(self) -> bool:
        """Both files are there and unchanged since this module wrote them (see the module)."""
        try:
            return self.jsonl.stat().st_mtime_ns == self.csv.stat().st_mtime_ns
        except FileNotFoundError:
            return False

    def stamp(self) -> None:
        """Mark both files as this module's: the CSV gets the JSONL's modification time (where
        the file system refuses, the next commit reads every line: slower, not wrong)."""
        try:
            os.utime(self.csv, ns=(self.csv.stat().st_atime_ns, self.jsonl.stat().st_mtime_ns))
        except OSError:
            pass


class AudienceWrite(WriteSession):
    """Changes to an audience, a page at a time, replacing its files once on :meth:`commit`."""

    def __init__(self, audience: AudienceFile) -> None:
        self.audience = audience
        self._spill: Path | None = None  # the folder holding the sorted pages
        self._pages: list[Path] = []
        self._custom: set[str] = set()  # every custom attribute name the pages hold

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
        with page.open("w", encoding="utf-8") as rows, _page_records(page).open("w", encoding="utf-8",
                                                                                newline="") as records:
            for key in sorted(latest):
                # One line per contact: its email, its custom attributes (JSON; empty: none) and
                # its row's JSON line or null (deleted), tab-separated (JSON escapes a tab inside
                # a string); and, for a row that is not deleted, its CSV record of the known
                # columns in the page's records file, in the same order.
                change = latest[key]
                if change.op == "delete":
                    rows.write(f"{_page_key(key)}\t\tnull\n")
                    continue
                row = _row(change)
                custom = {name: value for name, value in row["attributes"].items() if name not in _KNOWN}
                if custom:
                    self._custom.update(custom)
                rows.write(f"{_page_key(key)}\t{_encode(custom) if custom else ''}\t{_encode(row)}\n")
                records.write(_record(_csv_row(row, KNOWN_ATTRIBUTES)))
        self._pages.append(page)
        return WriteResult([Outcome.ok(change.contact_key) for change in changes], 0)

    def commit(self) -> int:
        """Replace both files atomically with the audience and every page; return how many
        files were written (0 when no page was staged)."""
        if self._spill is None:
            return 0
        try:
            if not self._commit_copying():
                self._commit_reading_every_line()
            self.audience.stamp()
        finally:
            self.abort()
        return 2

    def abort(self) -> None:
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill, self._pages, self._custom = None, [], set()

    def _commit_reading_every_line(self) -> None:
        """Every current row parsed and written anew (a file this module did not leave as it is)."""
        lines = self._merged()
        try:
            columns = self._write_jsonl(lines)
        except _Unsorted:
            # Not written by this module (rows out of order): sort the current rows first.
            latest = {key: (key, line, names) for key, line, names in self.audience.current()}
            lines = self._merged([latest[key] for key in sorted(latest)])
            columns = self._write_jsonl(lines)
        _atomic_write(self.audience.csv, lambda handle: _write_csv(handle, self.audience.jsonl, columns))

    def _commit_copying(self) -> bool:
        """Both files in one pass, the unchanged contacts' lines copied as they are; False (and
        nothing replaced) when the current files are not as this module left them."""
        audience = self.audience
        exists = audience.jsonl.exists() or audience.csv.exists()
        if exists and not audience.as_written():
            return False
        kept_names: set[str] = set()  # the attribute names of the pages' rows kept
        custom: list[str] = []

        def fill(jsonl_out, csv_out, current: _current_files) -> None:
            custom.extend(sorted(current.custom | self._custom))
            columns = [*KNOWN_ATTRIBUTES, *custom]
            # The old CSV records are right as they are only under the same columns.
            copy_records = custom == sorted(current.custom)
            no_custom = "," * len(custom) + "\r\n"  # the custom cells of a row without any
            writer = csv.writer(csv_out)
            writer.writerow([_inert(name) for name in ["email", "status", "tags", *columns]])
            for line, unchanged, record, page_custom in self._merged_copying(current.rows()):
                jsonl_out.write(line + "\n")
                if unchanged:
                    if copy_records:  # the contact's CSV record as it is
                        csv_out.write(record)
                    else:
                        writer.writerow(_csv_row(json.loads(line), columns))
                    continue
                # A page's row: its record of the known columns (without its line break), then
                # the custom columns' cells.
                csv_out.write(record[:-2])
                values = json.loads(page_custom) if page_custom else {}
                kept_names.update(values)
                cells = [_custom_cell(values.get(name)) for name in custom] if values else []
                if any(cells):
                    csv_out.write(",")
                    writer.writerow(cells)
                else:
                    csv_out.write(no_custom)

        try:
            with _current_files(audience if exists else None) as current:
                # Both temporary files are complete before either replaces its file.
                _atomic_write(audience.jsonl, lambda jsonl_out: _atomic_write(
                    audience.csv, lambda csv_out: fill(jsonl_out, csv_out, current)))
        except _NotAsWritten:
            return False
        # A custom attribute no row holds any more has no column: only then is the CSV written
        # again from the new JSONL (the names of the pages' rows kept are certainly there).
        unsure = set(custom) - kept_names
        gone = unsure - _names_held(audience.jsonl, unsure) if unsure else set()
        if gone:
            kept = [*KNOWN_ATTRIBUTES, *sorted(set(custom) - gone)]
            _atomic_write(audience.csv, lambda handle: _write_csv(handle, audience.jsonl, kept))
        return True

    def _merged_copying(self, current: Iterator[OldRow]) -> Iterator[tuple[str, bool, str, str]]:
        """The new audience's JSON lines in email order, each saying whether its contact is
        unchanged, with its CSV record (an unchanged contact's as it is; a page's of the known
        columns) and a page row's custom attributes (JSON; empty: none): each contact's last
        change over its row."""
        sources = [current] + [_tagged(_page(path), number) for number, path in enumerate(self._pages, start=1)]
        pending: tuple[str, int, str, Any] | None = None
        for row in heapq.merge(*sources):
            if pending is not None and pending[0] != row[0] and pending[2] != "null":
                yield _copied(pending)
            pending = row
        if pending is not None and pending[2] != "null":
            yield _copied(pending)

    def _merged(self, current: list[Row] | None = None) -> Iterator[tuple[str, list[str]]]:
        """The new audience's JSON lines in email order, each with its attribute names (None: a
        page's row, whose line holds them): each contact's last change over its current row;
        deleted contacts left out."""
        sources = [_tagged(_in_order(self.audience.current()) if current is None else iter(current), 0)]
        sources += [_tagged(((key, line, None) for key, line, _ in _page(path)), number)
                    for number, path in enumerate(self._pages, start=1)]
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
                custom.update(json.loads(line)["attributes"] if names is None else names)

        _atomic_write(self.audience.jsonl, fill)
        return [*KNOWN_ATTRIBUTES, *sorted(custom - set(KNOWN_ATTRIBUTES))]


class _NotAsWritten(Exception):
    """A line of the current files is not in the form this module writes."""


OldRow = tuple[str, int, str, str]  # email, source 0, JSON line, CSV record
PageRow = tuple[str, str, "tuple[str, str] | None"]  # email, JSON line, (custom JSON, known CSV record)


class _current_files:
    """The current files read side by side (none: an audience not written yet): each JSONL line
    with its CSV record, and the custom attribute columns of the CSV's header."""

    def __init__(self, audience: AudienceFile | None) -> None:
        self._audience = audience
        self.custom: set[str] = set()

    def __enter__(self) -> _current_files:
        if self._audience is None:
            self._jsonl = self._csv = None
            return self
        self._jsonl = self._audience.jsonl.open(encoding="utf-8", newline="\n")
        self._csv = self._audience.csv.open(encoding="utf-8", newline="\n")
        self._records = _records(self._csv)
        header = next(self._records, "")
        cells = next(csv.reader([header]), [])
        fixed = ["email", "status", "tags", *KNOWN_ATTRIBUTES]
        if [*cells[:len(fixed)], header[-2:]] != [*fixed, "\r\n"]:
            raise _NotAsWritten
        for cell in cells[len(fixed):]:
            if _inert(cell) != cell or (cell.startswith("'") and cell[1:].startswith(_FORMULA_START)):
                raise _NotAsWritten  # (a name that needed a quote prefix: not told apart cheaply)
            self.custom.add(cell)
        if sorted(self.custom) != cells[len(fixed):]:
            raise _NotAsWritten
        return self

    def rows(self) -> Iterator[OldRow]:
        if self._jsonl is None:
            return
        previous = None
        for line in self._jsonl:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            email = _email_of(line)
            record = next(self._records, None)
            if (previous is not None and email <= previous) or record is None \
                    or not record.startswith(_first_cell(email)):
                raise _NotAsWritten
            previous = email
            yield email, 0, line, record
        if next(self._records, None) is not None:
            raise _NotAsWritten

    def __exit__(self, *exc: object) -> None:
        for handle in (self._jsonl, self._csv):
            if handle is not None:
                handle.close()


# A line as this module writes it: {"attributes": {...}, "email": "...", "status": "...", "tags": [...]}.
# After the attributes only the email, status and tags follow, whose strings escape every quote,
# so the last '}, "email": "' of such a line is the one that starts its email.
_LINE_START, _EMAIL_AT, _STATUS_AT = '{"attributes": {', '}, "email": "', ', "status": "'


def _email_of(line: str) -> str:
    at = line.rfind(_EMAIL_AT)
    if at < 0 or not line.startswith(_LINE_START) or not line.endswith("]}"):
        raise _NotAsWritten
    try:
        email, end = scanstring(line, at + len(_EMAIL_AT))
    except ValueError:
        raise _NotAsWritten from None
    if not line.startswith(_STATUS_AT, end):
        raise _NotAsWritten
    return email


def _first_cell(email: str) -> str:
    """How a CSV record of ``email`` starts (its first cell and the delimiter)."""
    cell = _inert(email)
    if '"' in cell or "," in cell or "\r" in cell or "\n" in cell:
        out = io.StringIO()
        csv.writer(out).writerow([cell, ""])
        return out.getvalue()[:-2]
    return cell + ","


def _records(handle) -> Iterator[str]:
    """The CSV's records as they are in the file (a quoted cell may hold a line break: a record
    ends at a line break outside quotes, where the quotes seen are even)."""
    record = ""
    for piece in handle:
        record += piece
        if record.count('"') % 2 == 0:
            yield record
            record = ""
    if record:
        yield record


def _copied(row: tuple[str, int, str, Any]) -> tuple[str, bool, str, str]:
    """A merged row: (line, True, CSV record, "") of a current row, (line, False, known columns'
    record, custom JSON) of a page's."""
    key, source, line, extra = row
    if source == 0:
        return line, True, extra, ""
    custom, record = extra
    return line, False, record, custom


def _csv_row(row: dict[str, Any], columns: list[str]) -> list[str]:
    attrs = row["attributes"]
    cells = [_inert(row["email"]), _inert(row["status"]), _inert(";".join(row["tags"]))]
    # (a text that needs no quote prefix is its own cell: the usual value, without two calls)
    cells += ["" if value is None else value if type(value) is str and not value.startswith(_FORMULA_START)
              else _inert(_cell(value)) for value in map(attrs.get, columns)]
    return cells


def _record(cells: list[str]) -> str:
    """The CSV record ``csv.writer`` writes for ``cells``: joined with commas when no cell holds
    what it quotes (a comma, a quote, a line break), which is the usual row, and by the writer
    otherwise (and for a single cell: the writer quotes a lone empty one)."""
    joined = ",".join(cells)
    if len(cells) > 1 and joined.count(",") == len(cells) - 1 and '"' not in joined and "\n" not in joined \
            and "\r" not in joined:
        return joined + "\r\n"
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def _names_held(jsonl: Path, names: set[str]) -> set[str]:
    """Which of ``names`` some row of ``jsonl`` has as an attribute (only the lines that
    mention one are parsed)."""
    held: set[str] = set()
    keys = {json.dumps(name) + ": ": name for name in names}
    with jsonl.open(encoding="utf-8") as rows:
        for line in rows:
            if any(key in line for key in keys):
                held.update(names & json.loads(line)["attributes"].keys())
                if held == names:
                    break
    return held


class _Unsorted(Exception):
    """The current audience file is not in email order."""


def _row(change: ContactChange) -> dict[str, Any]:
    return {"email": change.contact_key, "status": change.status, "tags": sorted(change.tags),
            "attributes": dict(change.attributes)}


# json.dumps(value, sort_keys=True), without building an encoder for each row.
_encode = json.JSONEncoder(sort_keys=True).encode
_KNOWN = frozenset(KNOWN_ATTRIBUTES)


def _custom_cell(value: Any) -> str:
    """A custom attribute's CSV cell (as :func:`_csv_row` writes it)."""
    return "" if value is None else _inert(_cell(value))


Row = tuple[str, str, list[str] | None]  # email, JSON line (or null: deleted), attribute names


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


def _page(path: Path) -> Iterator[PageRow]:
    """A page's rows: email, JSON line (null: deleted) and, for a row not deleted, its custom
    attributes' JSON and its CSV record of the known columns (from the page's records file)."""
    with path.open(encoding="utf-8") as rows, _page_records(path).open(encoding="utf-8", newline="\n") as handle:
        records = _records(handle)
        for text in rows:
            key, custom, line = text.rstrip("\n").split("\t", 2)
            key = json.loads(key) if key.startswith('"') else key
            yield key, line, (None if line == "null" else (custom, next(records)))


def _page_records(page: Path) -> Path:
    """The file holding the CSV records of a page's rows."""
    return page.with_name(page.name + ".csv")


def _page_key(key: str) -> str:
    """A page line's email: as it is, or as JSON (which starts with a quote) when it holds a
    tab, a line break or starts with a quote itself."""
    if "\t" in key or "\n" in key or "\r" in key or key.startswith('"'):
        return json.dumps(key)
    return key


def _tagged(rows: Iterator[Row], source: int) -> Iterator[tuple[str, int, str, Any]]:
    """Rows with their source's number: of equal emails the merge puts the later source last
    (a source holds an email once, so the comparison never reaches the line)."""
    return ((key, source, line, names) for key, line, names in rows)


def _write_csv(handle, jsonl: Path, columns: list[str]) -> None:
    writer = csv.writer(handle)
    writer.writerow([_inert(name) for name in ["email", "status", "tags", *columns]])
    with jsonl.open(encoding="utf-8") as rows:
        for line in rows:
            writer.writerow(_csv_row(json.loads(line), columns))


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

"""Reading a CSV or JSONL source file line-exactly, whatever its bytes.

A region of a file (its header plus physical lines ``first_line`` to ``last_line``) becomes a
temporary view (of a temporary table ``<name>_t``) with the physical line each record starts on:

* CSV: ``(_line, <one VARCHAR column per header column>)``;
* JSONL: ``(_line, line)``, one row per physical line.

Two paths give the same table:

1. *Bulk* — DuckDB's ``read_csv`` in strict mode with the dialect fixed (delimiter from the
   header, ``"`` quotes, every column ``VARCHAR``, at most :data:`MAX_RECORD_BYTES` a line).
   It is taken only when the bytes hold no control character and the reader returns exactly
   one record per physical line (line numbers then follow from the rows' order): anything
   else (a raised error, a record spanning lines, a skipped blank line, a silently empty
   result) falls back.
2. *Line by line* — each physical line is decoded and parsed on its own (a quoted field may
   span lines when the record then has the header's columns). A bad line becomes one
   :class:`BadLine` naming its line, field and reason; the good ones are written to a clean
   staging file that DuckDB reads like the bulk path.

Bad lines: over :data:`MAX_RECORD_BYTES`, not UTF-8, a raw control character, an unterminated
quoted field, fewer or more fields than the header. A line without its line break at the end
of the file is not part of any region the files connector hands over (it may still be written).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb

from segsync.store.sql import identifier, literal

# A record (CSV line, JSONL line, API record as JSON) holds at most this many bytes. DuckDB's
# reader keeps buffers of 16 times the longest line; later stages hold whole records in memory.
MAX_RECORD_BYTES = 1_000_000

# Raw control characters that are never data: C0 except tab, line feed and carriage return, and
# DEL. A carriage return not followed by a line feed is checked separately.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Bytes → 0 for those control characters, 1 for every other byte: ``bytes.translate`` with it
# and a search for 0 checks a chunk at memory speed (a regular expression is ~7x slower).
_CONTROL_TABLE = bytes(
    0 if (byte < 0x20 and byte not in (0x09, 0x0A, 0x0D)) or byte == 0x7F else 1 for byte in range(256)
)
_DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 22

FileFormat = Literal["csv", "jsonl"]


class SourceFileError(ValueError):
    """The file as a whole cannot be read (no header, unreadable header, missing file)."""


@dataclass
class BadLine:
    line: int
    field: str
    reason: str


@dataclass
class Staged:
    """What :func:`stage` put in the table: the CSV header and the lines it could not take."""

    columns: list[str]
    bad: list[BadLine] = field(default_factory=list)
    bulk: bool = True  # False: the line-by-line path was taken


@dataclass(frozen=True)
class Extent:
    """The complete part of a file: lines that end with a line break."""

    lines: int  # physical lines ending with a line break
    complete_bytes: int  # bytes up to and including the last line break
    size: int  # bytes in the file (more than complete_bytes: a last line still unfinished)

    @property
    def unfinished(self) -> bool:
        return self.size > self.complete_bytes


# -- the complete part of a file ---------------------------------------------------------------


def extent(path: Path, *, lines: int = 0, offset: int = 0) -> Extent:
    """Count the lines that are finished (one pass).

    With ``offset`` (the byte after a line break) and ``lines`` (the finished lines before it,
    known from an earlier count), only the bytes from ``offset`` on are read and counted: an
    appended file costs its new bytes. (The files connector's cursor fingerprints the loaded
    bytes itself, from a bounded read of their ends: segsync_files.cursor.)
    """
    complete = offset
    with path.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(_CHUNK):
            breaks = chunk.count(b"\n")
            if breaks:
                lines += breaks
                complete = offset + chunk.rindex(b"\n") + 1
            offset += len(chunk)
    return Extent(lines, complete, offset)


def _line_offsets(path: Path, *lines: int) -> list[int]:
    """Byte offsets where the given physical lines (1-based) start, in one pass; a line past
    the end of the file starts at the file's end."""
    wanted = sorted({line for line in lines if line > 1})
    found = {1: 0}
    seen = offset = 0
    with path.open("rb") as handle:
        while wanted and (chunk := handle.read(_CHUNK)):
            breaks = chunk.count(b"\n")
            position = -1
            while wanted and seen + breaks >= wanted[0] - 1:
                for _ in range(wanted[0] - 1 - seen):
                    position = chunk.index(b"\n", position + 1)
                    seen += 1
                    breaks -= 1
                found[wanted.pop(0)] = offset + position + 1
            seen += breaks
            offset += len(chunk)
    end = path.stat().st_size
    return [found.get(line, end) if line > 1 else 0 for line in lines]


# -- parts of a big file ----------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """Physical lines ``first_line``..``last_line`` (None: to the end of the file) of a file,
    at bytes ``start``..``end``."""

    first_line: int
    last_line: int | None
    start: int
    end: int


def parts(
    path: Path, format: FileFormat, first_line: int, last_line: int | None, lines_per_part: int,
    *, first_byte: int | None = None,
) -> list[Part]:
    """Split physical lines ``first_line``..``last_line`` (None: to the end) of ``path`` into
    parts of about ``lines_per_part`` lines, in one pass over the file, so a big file can be
    loaded a part at a time. A part never ends inside a record: a JSONL line is always a
    whole record; a CSV part ends only where the double quotes since ``first_line`` are
    balanced (a quoted value may span lines), else a line later.

    ``first_byte``: where ``first_line`` starts, when the caller knows (a cursor's offset):
    the file is then read from there, not from its top."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        walker = _LineWalker(handle)
        if first_byte is not None:
            walker.seek(first_line, first_byte)
        start = walker.advance_to(first_line)
        if start is None:
            return [Part(first_line, last_line, size, size)]
        quotes_before = walker.quotes
        found = []
        part_first = first_line
        while True:
            boundary = part_first + lines_per_part
            if last_line is not None and boundary > last_line:
                break
            offset = walker.advance_to(boundary)
            while offset is not None and format == "csv" and (walker.quotes - quotes_before) % 2:
                offset = walker.advance_to(walker.line + 1)  # inside a quoted value
            if offset is None or offset >= size or (last_line is not None and walker.line > last_line):
                break
            found.append(Part(part_first, walker.line - 1, start, offset))
            part_first, start = walker.line, offset
        end = size if last_line is None else walker.advance_to(last_line + 1)
        found.append(Part(part_first, last_line, start, size if end is None else end))
    return found


class _LineWalker:
    """Walks a file forward by physical lines, counting double quotes on the way."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.chunk = b""
        self.position = 0  # in ``chunk``: where ``line`` starts
        self.base = 0  # offset of ``chunk`` in the file
        self.line = 1
        self.quotes = 0  # double quotes before the current position

    def seek(self, line: int, offset: int) -> None:
        """Continue from physical line ``line``, known to start at byte ``offset`` (quotes are
        counted from there: only their parity since the first line of the parts matters)."""
        self.handle.seek(offset)
        self.chunk, self.position, self.base, self.line = b"", 0, offset, line

    def advance_to(self, target: int) -> int | None:
        """The byte offset where physical line ``target`` starts (the end of the file when the
        last line break ends line ``target - 1``); None when the file ends before."""
        while self.line < target:
            if self.position >= len(self.chunk):
                self.base += len(self.chunk)
                self.chunk, self.position = self.handle.read(_CHUNK), 0
                if not self.chunk:
                    return None
            breaks = self.chunk.count(b"\n", self.position)
            if breaks < target - self.line:
                self.quotes += self.chunk.count(b'"', self.position)
                self.line += breaks
                self.position = len(self.chunk)
                continue
            following = self.position
            for _ in range(target - self.line):
                following = self.chunk.index(b"\n", following) + 1
            self.quotes += self.chunk.count(b'"', self.position, following)
            self.line, self.position = target, following
        return self.base + self.position


# -- CSV header --------------------------------------------------------------------------------


def csv_header(path: Path) -> tuple[list[str], str]:
    """The header's column names and the file's delimiter (the candidate the header uses most)."""
    if not path.exists():
        raise SourceFileError(f"{path}: no such file")
    with path.open("rb") as handle:
        raw = handle.readline(MAX_RECORD_BYTES + 2)
    if not raw.strip():
        raise SourceFileError(f"{path}: empty file: the first line must name the columns")
    if not raw.endswith(b"\n") and len(raw) > MAX_RECORD_BYTES:
        raise SourceFileError(f"{path}: the header line is longer than {MAX_RECORD_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise SourceFileError(
            f"{path}: the header line is not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
            "save the file as UTF-8"
        ) from None
    delimiter = max(_DELIMITERS, key=lambda d: (text.count(d), d == ","))
    try:
        names = next(csv.reader([text], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise SourceFileError(f"{path}: the header line is not valid CSV: {exc}") from None
    names = [name.strip() or f"column{index + 1}" for index, name in enumerate(names)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceFileError(f"{path}: the header names a column more than once: {', '.join(duplicates)}")
    if any(_CONTROL.search(name) for name in names):
        raise SourceFileError(f"{path}: the header line holds a control character")
    return names, delimiter


# -- staging -----------------------------------------------------------------------------------


def stage(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    format: FileFormat,
    table: str,
    *,
    first_line: int = 1,
    last_line: int | None = None,
    offsets: tuple[int, int] | None = None,
    more_follows: bool = False,
) -> Staged:
    """Create TEMP VIEW ``table`` (of TEMP TABLE ``<table>_t``) from physical lines
    ``first_line``..``last_line`` (CSV: the header is line 1 and data starts at line 2;
    ``last_line`` None: to the end of the file).

    ``offsets``: where those lines start and end in bytes, when the caller knows (a
    :class:`Part` of :func:`parts`); otherwise the file is scanned from its start to find them.
    ``more_follows``: the lines after ``last_line`` are staged by a later call (the next part),
    so an unfinished line after them is not this call's to report.
    """
    if not path.is_file():
        raise SourceFileError(f"{path}: no such file")
    columns, delimiter = csv_header(path) if format == "csv" else ([], "")
    first_line = max(first_line, 2 if format == "csv" else 1)
    with _Region(path, format, first_line, last_line, offsets) as region:
        held_back = (
            [BadLine(region.unfinished_line, "line", HELD_BACK)]
            if region.unfinished_line and not more_follows else []
        )
        if region.lines == 0:
            _create_empty(con, table, format, columns)
            return Staged(columns, held_back)
        if not region.has_control_bytes and _bulk(con, region, format, table, columns, delimiter):
            return Staged(columns, held_back)
        bad = _line_by_line(con, region, format, table, columns, delimiter)
        return Staged(columns, bad + held_back, bulk=False)


HELD_BACK = (
    "no line break at its end yet: not loaded until the line is finished "
    "(end the file with a line break if it is complete)"
)


class _Region:
    """The lines to read as a file of their own (the original when it is exactly that).

    ``path`` holds the header (CSV) and then the region's lines; line ``n`` of the region's
    data is physical line ``first_line + n - 1`` of the source file.
    """

    def __init__(
        self, source: Path, format: FileFormat, first_line: int, last_line: int | None,
        offsets: tuple[int, int] | None = None,
    ) -> None:
        self.source = source
        self.format = format
        self.first_line = first_line
        self.last_line = last_line
        self.offsets = offsets
        self.path = source
        self._tmp: str | None = None
        self.unfinished_line: int | None = None

    def __enter__(self) -> _Region:
        header_lines = 1 if self.format == "csv" else 0
        size = self.source.stat().st_size
        if self.offsets is None:
            data, start, end = _line_offsets(
                self.source, header_lines + 1, self.first_line,
                self.last_line + 1 if self.last_line is not None else 0,
            )
        else:
            start, end = self.offsets
            data = _header_end(self.source) if header_lines else 0
        end = max(end if self.last_line is not None else size, start)
        if self.last_line is not None and _unfinished_after(self.source, end, size):
            self.unfinished_line = self.last_line + 1
        scan = _Scan()
        if start == data and end == size:
            self.path = self.source
            with self.source.open("rb") as src:
                src.seek(start)
                for chunk in _chunks(src, end - start):
                    scan.feed(chunk)
        else:
            # The lines are counted and checked as they are copied (the bytes are read once).
            fd, self._tmp = tempfile.mkstemp(prefix="segsync-region-", suffix=f".{self.format}")
            with os.fdopen(fd, "wb") as out, self.source.open("rb") as src:
                if header_lines:
                    out.write(src.readline(MAX_RECORD_BYTES + 2))
                src.seek(start)
                for chunk in _chunks(src, end - start):
                    out.write(chunk)
                    scan.feed(chunk)
            self.path = Path(self._tmp)
        self.lines, self.has_control_bytes = scan.result()
        return self

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            os.unlink(self._tmp)


def _header_end(path: Path) -> int:
    with path.open("rb") as handle:
        return len(handle.readline(MAX_RECORD_BYTES + 2))


def _unfinished_after(path: Path, offset: int, size: int) -> bool:
    """Whether the bytes from ``offset`` to the end are one line without its line break."""
    if size <= offset:
        return False
    with path.open("rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(_CHUNK):
            if b"\n" in chunk:
                return False
    return True


def _chunks(src, length: int) -> Iterator[bytes]:
    """The next ``length`` bytes of ``src`` (fewer if the file ends first), a chunk at a time."""
    remaining = length
    while remaining > 0:
        chunk = src.read(min(_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        yield chunk


class _Scan:
    """Counts the physical lines of bytes fed in order (a last one without a line break
    counts) and finds whether a control byte is among them."""

    def __init__(self) -> None:
        self._lines = 0
        self._control = False
        self._carry = b""  # a CR ending the last chunk: judged with the byte that follows it
        self._last = b"\n"

    def feed(self, chunk: bytes) -> None:
        self._lines += chunk.count(b"\n")
        self._last = chunk[-1:]
        data = self._carry + chunk
        self._carry, data = (data[-1:], data[:-1]) if data.endswith(b"\r") else (b"", data)
        self._control = self._control or _has_control_bytes(data)

    def result(self) -> tuple[int, bool]:
        # A CR ending the bytes ends the last line (as a line break would).
        control = self._control or _has_control_bytes(self._carry + b"\n")
        return self._lines + (self._last != b"\n"), control


def _has_control_bytes(data: bytes) -> bool:
    """Whether ``data`` holds a control byte, or a carriage return not followed by a line feed."""
    if b"\x00" in data.translate(_CONTROL_TABLE):
        return True
    return b"\r" in data and data.count(b"\r") != data.count(b"\r\n")


def _create(con, table: str, select: str) -> None:
    """TEMP TABLE ``<table>_t`` from ``select`` (which yields ``_line``) and ``table`` as a view
    of it: the bulk path's ``_line`` is computed in its view (:func:`_bulk`), and every path
    creates both names, so the next part may take another path."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_t AS {select}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT * FROM {table}_t")


def _create_empty(con, table: str, format: FileFormat, columns: list[str]) -> None:
    cols = ["line"] if format == "jsonl" else columns
    _create(con, table, "SELECT NULL::BIGINT AS _line, "
            + ", ".join(f"NULL::VARCHAR AS {identifier(c)}" for c in cols) + " WHERE false")


def _reader(path: Path, format: FileFormat, columns: list[str], delimiter: str, *, max_line: int) -> str:
    if format == "jsonl":
        # chr(31) as the delimiter: JSON text never holds a raw 0x1F (it must be escaped), and
        # lines with control bytes never reach this reader.
        return (
            f"read_csv({literal(str(path))}, columns = {{'line': 'VARCHAR'}}, header = false, "
            f"delim = chr(31), quote = '', escape = '', auto_detect = false, strict_mode = true, "
            f"max_line_size = {max_line})"
        )
    struct = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in columns)
    return (
        f"read_csv({literal(str(path))}, columns = {{{struct}}}, header = true, "
        f"delim = {literal(delimiter)}, quote = '\"', escape = '\"', auto_detect = false, "
        f"strict_mode = true, null_padding = false, max_line_size = {max_line})"
    )


def _bulk(con, region: _Region, format: FileFormat, table: str, columns: list[str], delimiter: str) -> bool:
    """The bulk path; False (and no table) when it cannot vouch for every line.

    The reader is tried first on a scratch connection: a failed statement would abort the
    caller's transaction (DuckDB has no savepoints), and reading every column costs a fraction
    of what loading does.
    """
    source = _reader(region.path, format, columns, delimiter, max_line=MAX_RECORD_BYTES)
    every_column = ", ".join(f"count({identifier(c)})" for c in (columns or ["line"]))
    scratch = duckdb.connect()
    try:
        rows = scratch.execute(f"SELECT count(*), {every_column} FROM {source}").fetchall()[0][0]
    except duckdb.Error:
        return False
    finally:
        scratch.close()
    if rows != region.lines:
        # A record spanning lines, a skipped blank line or a misread line ending: line numbers
        # would drift, so every line is read on its own instead.
        return False
    # The line numbers come from the rows' positions in the table: a plain scan into a new
    # table keeps the file's order (DuckDB preserves insertion order) and runs on every core,
    # where ``row_number() OVER ()`` ran on one and held the part once more.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_t AS SELECT * FROM {source}")
    # Row ids count from 0, or from a fixed base inside a transaction: from the first row's.
    first = con.execute(f"SELECT min(rowid) FROM {table}_t").fetchall()[0][0]
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {table} AS "
        f"SELECT (rowid - {int(first)} + {region.first_line})::BIGINT AS _line, * FROM {table}_t"
    )
    return True


def _line_by_line(con, region: _Region, format: FileFormat, table: str, columns: list[str], delimiter: str) -> list[BadLine]:
    bad: list[BadLine] = []
    fd, staging = tempfile.mkstemp(prefix="segsync-clean-", suffix=f".{format}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            if format == "csv":
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(["_line", *columns])
                for line, fields in _csv_records(region, columns, delimiter, bad):
                    writer.writerow([line, *fields])
            else:
                for line, text in _jsonl_lines(region, bad):
                    out.write(f"{line}\x1f{text}\n")
        if format == "csv":
            struct = ", ".join(f"{literal(c)}: 'VARCHAR'" for c in ["_line", *columns])
            source = (
                f"read_csv({literal(staging)}, columns = {{{struct}}}, header = true, delim = ',', "
                f"quote = '\"', escape = '\"', auto_detect = false, new_line = '\\n', "
                f"max_line_size = {2 * MAX_RECORD_BYTES + 64 * (len(columns) + 2)})"
            )
            select = "_line::BIGINT AS _line, " + ", ".join(identifier(c) for c in columns)
        else:
            source = (
                f"read_csv({literal(staging)}, columns = {{'_line': 'BIGINT', 'line': 'VARCHAR'}}, "
                "header = false, delim = chr(31), quote = '', escape = '', auto_detect = false, "
                f"new_line = '\\n', max_line_size = {MAX_RECORD_BYTES + 64})"
            )
            select = "_line, line"
        _create(con, table, f"SELECT {select} FROM {source}")
    finally:
        os.unlink(staging)
    return bad


def _physical_lines(region: _Region) -> Iterator[tuple[int, bytes | None, int]]:
    """(source line number, bytes without the line break or None when too long to keep, length)
    for each line of the region's data."""
    with region.path.open("rb") as handle:
        if region.format == "csv":
            handle.readline(MAX_RECORD_BYTES + 2)
        number = region.first_line
        while True:
            raw = handle.readline(MAX_RECORD_BYTES + 3)
            if not raw:
                return
            if not raw.endswith(b"\n") and len(raw) > MAX_RECORD_BYTES + 1:
                # Too long to keep: skip to its end, remember only that it was too long.
                length, tail = len(raw), raw
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(_CHUNK)
                    length += len(raw)
                    tail = (tail + raw)[-2:]
                length -= 2 if tail.endswith(b"\r\n") else 1 if tail.endswith(b"\n") else 0
                yield number, None, length
            else:
                body = raw[:-1] if raw.endswith(b"\n") else raw
                if body.endswith(b"\r"):
                    body = body[:-1]
                yield number, body, len(body)
            number += 1


def _too_long(length: int) -> str:
    return f"the line has {length:,} bytes; a record may have at most {MAX_RECORD_BYTES:,}"


def _decode(body: bytes) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason)."""
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: byte {body[exc.start]:#04x} at byte {exc.start + 1} of the line; save the file as UTF-8"


def _control_reason(text: str) -> str | None:
    found = _CONTROL.search(text)
    if found is None:
        return None
    return f"holds a raw control character U+{ord(found.group()):04X} at column {found.start() + 1}"


def _jsonl_lines(region: _Region, bad: list[BadLine]) -> Iterator[tuple[int, str]]:
    for number, body, length in _physical_lines(region):
        if body is None or length > MAX_RECORD_BYTES:
            bad.append(BadLine(number, "line", _too_long(length)))
            continue
        text, reason = _decode(body)
        if text is None:
            bad.append(BadLine(number, "line", reason or "not UTF-8"))
            continue
        reason = _control_reason(text) or ("holds a carriage return inside the line" if "\r" in text else None)
        if reason:
            bad.append(BadLine(number, "line", f"{reason}; JSON text must escape it"))
            continue
        yield number, text


def _parse_csv(text: str, delimiter: str) -> tuple[list[str] | None, str | None]:
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        message = str(exc)
        if "unexpected end of data" in message:
            return None, "unterminated quoted field (a \" opens a value that no \" closes)"
        if "new-line character" in message:
            return None, "a carriage return or line break inside an unquoted value"
        return None, f"not valid CSV: {message}"
    if len(rows) != 1:
        return None, "a carriage return or line break inside an unquoted value"
    return rows[0], None


def _field_problem(fields: list[str], columns: list[str]) -> tuple[str, str] | None:
    if len(fields) < len(columns):
        return columns[len(fields)], (
            f"missing: the line has {len(fields)} field(s), the header {len(columns)} "
            f"({', '.join(columns)})"
        )
    if len(fields) > len(columns):
        return "line", (
            f"the line has {len(fields)} fields, the header {len(columns)} ({', '.join(columns)}); "
            "a value holding the delimiter must be quoted"
        )
    for name, value in zip(columns, fields):
        reason = _control_reason(value)
        if reason:
            return name, reason
    return None


def _csv_records(region: _Region, columns: list[str], delimiter: str, bad: list[BadLine]) -> Iterator[tuple[int, list[str]]]:
    lines = _physical_lines(region)
    pushed_back: deque = deque()

    def next_line():
        if pushed_back:
            return pushed_back.popleft()
        return next(lines, None)

    while (item := next_line()) is not None:
        number, body, length = item
        if body is None or length > MAX_RECORD_BYTES:
            bad.append(BadLine(number, "line", _too_long(length)))
            continue
        if not body:
            continue  # a blank line holds no record
        text, reason = _decode(body)
        if text is None:
            bad.append(BadLine(number, _csv_bad_field(body, columns, delimiter), reason or "not UTF-8"))
            continue
        fields, reason = _parse_csv(text, delimiter)
        if fields is None and reason and reason.startswith("unterminated"):
            joined = _join_quoted(text, next_line, pushed_back, columns, delimiter)
            if joined is not None:
                yield number, joined
                continue
        if fields is None:
            bad.append(BadLine(number, "line", reason or "not valid CSV"))
            continue
        problem = _field_problem(fields, columns)
        if problem:
            bad.append(BadLine(number, *problem))
            continue
        yield number, fields


def _join_quoted(text: str, next_line, pushed_back: deque, columns: list[str], delimiter: str) -> list[str] | None:
    """A quoted value spanning lines: join the following lines until the record parses with the
    header's columns. None (and the lines put back) when it never does within a record's size."""
    taken = []
    size = len(text.encode("utf-8"))
    joined = text
    while size <= MAX_RECORD_BYTES:
        item = next_line()
        if item is None:
            break
        taken.append(item)
        number, body, length = item
        if body is None:
            break
        part, _ = _decode(body)
        if part is None:
            break
        size += length + 1
        joined += "\n" + part
        fields, reason = _parse_csv(joined, delimiter)
        if fields is not None:
            # Strictly well-formed only: a lenient parse could close the open quote at a quote
            # of a later, good line and swallow it.
            if (size <= MAX_RECORD_BYTES and _field_problem(fields, columns) is None
                    and _strict_record(delimiter).fullmatch(joined)):
                return fields
            break
        if not (reason or "").startswith("unterminated"):
            break
    pushed_back.extendleft(reversed(taken))
    return None


@functools.lru_cache(maxsize=8)
def _strict_record(delimiter: str) -> re.Pattern[str]:
    """RFC 4180 for one record: each field quoted (quotes doubled inside) or free of quotes,
    delimiters and line breaks."""
    d = re.escape(delimiter)
    field = f'(?:"(?:[^"]+|"")*"|[^"{d}\\r\\n]*)'
    return re.compile(f"{field}(?:{d}{field})*")


def _csv_bad_field(body: bytes, columns: list[str], delimiter: str) -> str:
    """The column holding the first byte that is not UTF-8 (``line`` when that is unclear)."""
    text = body.decode("utf-8", errors="surrogateescape")
    fields, _ = _parse_csv(text, delimiter)
    if fields is None or len(fields) != len(columns):
        return "line"
    for name, value in zip(columns, fields):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return name
    return "line"


# -- nesting -----------------------------------------------------------------------------------

# Objects and arrays nest at most this deep in a record (the record itself is level 1): later
# stages walk values recursively, and no contact attribute needs more.
MAX_JSON_DEPTH = 32

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:]')


def too_deep_key(text: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The first top-level key of the JSON object ``text`` whose value nests past ``limit``
    (``line`` if the text is not keyed); None when nothing does. Iterative: any depth is safe."""
    depth = 0
    key: str | None = None
    last_string: str | None = None
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token[0] == '"':
            last_string = token
        elif token == ":":
            if depth == 1 and last_string is not None:
                key = json.loads(last_string)
        elif token in "[{":
            depth += 1
            if depth > limit:
                return key if key is not None else "line"
        else:
            depth -= 1
    return None


def nesting_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep ``value`` nests dicts and lists (a scalar: 0), counting no further than
    ``limit + 1``; iterative, so any depth is safe."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest

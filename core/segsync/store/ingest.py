"""Set-based ingestion: a batch of raw records becomes validated rows in the store.

Every batch takes the same path, whether it came from an API page or a 10-million-line file:

1. *stage* — DuckDB scans the file itself (CSV through ``read_csv``; JSONL one line per row so
   line numbers stay exact); API rows are written to a temporary JSONL file first.
2. *validate and normalize* — one SQL statement computes every field's typed value and a list
   of ``{field, reason}`` errors per row. Addresses of the plain ASCII shape are normalized in
   SQL; the few others go through :func:`segsync.model.normalize_email`. Each distinct value is
   resolved once per batch (a file's parts share what the earlier parts resolved).
3. *merge* — valid rows are merged with ``INSERT … ON CONFLICT`` (contacts), appended
   without repeats (events: see :meth:`Ingestor._begin_events`; the consent ledger); invalid
   rows become record errors naming the record (file and line, or the connector's id) and
   the field.

Nothing here loops over records in Python, except the distinct non-ASCII addresses.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from segsync.connector import Batch, FileSlice, Stream
from segsync.store.sourcefile import (
    MAX_JSON_DEPTH,
    MAX_RECORD_BYTES,
    BadLine,
    Part,
    SourceFileError,
    nesting_depth,
    parts,
    stage,
    too_deep_key,
)
from segsync.store.sql import identifier, literal, literal_list
from segsync.store.store import dicts
from segsync.model import (
    CONSENT_METHODS,
    DEFAULT_PURPOSE,
    FAST_EMAIL_PATTERN,
    KNOWN_ATTRIBUTES,
    SLOW_PATH_TLDS,
    Channel,
    ConsentStatus,
    InvalidEmail,
    normalize_email,
)

CANONICAL_COLUMNS: dict[Stream, tuple[str, ...]] = {
    Stream.CONTACTS: ("email", "external_id", "external", *KNOWN_ATTRIBUTES, "custom"),
    Stream.EVENTS: (
        "email",
        "type",
        "timestamp",
        "id",
        "value",
        "currency",
        "url",
        "category",
        "properties",
    ),
    Stream.CONSENT: ("email", "channel", "purpose", "status", "timestamp", "method", "evidence"),
}
# Columns a CSV file's header must have (after mapping): without them no row can load.
REQUIRED_COLUMNS: dict[Stream, tuple[str, ...]] = {
    Stream.CONTACTS: ("email",),
    Stream.EVENTS: ("email", "type", "timestamp", "id"),
    Stream.CONSENT: ("email", "status", "timestamp"),
}
# Other spellings a column is recognised by, compared after :func:`_spelling` (lower case,
# letters and digits only): ``E-mail``, ``Email Address``, ``EMAIL`` and ``e_mail`` are all email,
# ``First Name`` is first_name.
COLUMN_SPELLINGS: dict[str, tuple[str, ...]] = {
    "email": ("emailaddress", "emailadresse", "mail", "mailaddress"),
    "first_name": ("givenname", "forename"),
    "last_name": ("surname", "familyname"),
    "id": ("eventid",),
}
# Columns whose value is a JSON object rather than text.
_JSON_COLUMNS = {"custom", "properties", "external"}
_ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}(:?\d{2})?)$"


# A file is staged, validated and merged this many lines at a time: what the steps hold in
# memory (the lines, the staged and the checked rows) stays the same whatever the file's size.
LINES_PER_PART = 1_000_000
# Addresses a batch keeps resolved for its later parts (about 60 bytes each in memory).
KEPT_ADDRESSES = 4_000_000
# Record errors a result keeps for display (all of them are stored).
SHOWN_ERRORS = 20


@dataclass
class IngestResult:
    rows: int = 0
    loaded: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # first few, for display

    def add(self, other: IngestResult) -> None:
        self.rows += other.rows
        self.loaded += other.loaded
        self.rejected += other.rejected
        self.errors.extend(other.errors[: SHOWN_ERRORS - len(self.errors)])


class Ingestor:
    """Loads batches for one connection into an open store connection (no transaction handling:
    the runner wraps each batch and its cursor in one transaction)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        connection: str,
        run_id: int | None,
        event_types: Iterable[str],
        lines_per_part: int = LINES_PER_PART,
    ) -> None:
        self.con = con
        self.connection = connection
        self.run_id = run_id
        self.lines_per_part = lines_per_part
        self._part: Part | None = None  # the part of a file being loaded (see ingest)
        self._seen_keys: set[str] = set()  # JSONL keys of the parts loaded so far
        self._more_follows = False  # a later part loads the lines after this one
        self._offsets: tuple[int, int] | None = None  # bytes of a file loaded in one part
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _event_types AS SELECT unnest($names::VARCHAR[]) AS name",
            {"names": sorted(set(event_types))},
        )

    # -- staging -----------------------------------------------------------------------------

    def _stage(self, batch: Batch) -> None:
        """Create ``_staged``: ``_row``, ``_record_id`` and one column per canonical name."""
        self._bad: list[tuple[int, str | None, str, str]] = []  # (_row, _record_id, field, reason)
        if batch.rows is not None:
            fd, name = tempfile.mkstemp(prefix="segsync-batch-", suffix=".jsonl")
            ids = batch.record_ids
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for index, row in enumerate(batch.rows):
                    record = dict(row)
                    record_id = ids[index] if ids else f"{self.connection} record {index + 1}"
                    record["_record"] = record_id
                    line, problem = _record_json(record)
                    if problem:
                        # A blank line keeps the numbering; the record is named by its id.
                        self._bad.append((index + 1, str(record_id), *problem))
                        line = ""
                    handle.write(line)
                    handle.write("\n")
                # Records the connector could not translate: numbered after the rows.
                for offset, problem in enumerate(batch.problems, start=len(batch.rows) + 1):
                    self._bad.append((offset, problem.record, problem.field, problem.reason))
            try:
                self._stage_jsonl(batch.stream, FileSlice(Path(name), "jsonl"), record_from_json=True)
                # Materialize so the temporary file can go.
                self.con.execute("CREATE OR REPLACE TEMP TABLE _raw_t AS SELECT * FROM _raw")
                self.con.execute("CREATE OR REPLACE TEMP VIEW _raw AS SELECT * FROM _raw_t")
            finally:
                os.unlink(name)
            return
        assert batch.file is not None
        if batch.file.format == "csv":
            self._stage_csv(batch.stream, batch.file)
        else:
            self._stage_jsonl(batch.stream, batch.file, record_from_json=False)

    def _lines(self, file: FileSlice, *, header: int) -> dict[str, Any]:
        """The physical lines of ``file`` to stage now (and their bytes when known): the part
        :meth:`ingest` is at, else the whole slice. ``header``: lines before row 1."""
        if self._part is not None:
            part = self._part
            return {"first_line": part.first_line, "last_line": part.last_line,
                    "offsets": (part.start, part.end), "more_follows": self._more_follows}
        return {"first_line": file.skip_rows + header + 1,
                "last_line": file.until_row + header if file.until_row is not None else None,
                "offsets": self._offsets}

    def _add_bad_lines(self, bad: list[BadLine], row_of_line) -> None:
        self._bad.extend((row_of_line(b.line), None, b.field, b.reason) for b in bad)

    def _label(self, file: FileSlice) -> str:
        return file.label or str(file.path)

    def _stage_csv(self, stream: Stream, file: FileSlice) -> None:
        # Data row N is physical line N + 1 (the header is line 1); a record spanning lines
        # is numbered by the line it starts on.
        staged = stage(self.con, file.path, "csv", "_file", **self._lines(file, header=1))
        self._add_bad_lines(staged.bad, lambda line: line - 1)
        columns, extras = self._column_map(stream, staged.columns, file.columns)
        missing = [c for c in REQUIRED_COLUMNS[stream] if c not in columns]
        if missing:
            raise SourceFileError(missing_columns_message(self._label(file), stream, missing, staged.columns))
        self._has_extras = bool(extras)
        selects = [
            f"{identifier(columns[c]) if c in columns else 'NULL::VARCHAR'} AS {identifier(c)}"
            for c in CANONICAL_COLUMNS[stream]
        ]
        selects.append(
            f"{self._extras_json(extras, lambda c: f'to_json({identifier(c)})')} AS _extra"
        )
        label = literal(self._label(file))
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP VIEW _raw AS
            SELECT _row, {', '.join(selects)} FROM (SELECT _line - 1 AS _row, * FROM _file)
            WHERE {self._row_filter(file, identifier)}
            """
        )
        # Without extra columns or a time filter, _raw only renames _file's columns: read
        # through it rather than copying every row once more.
        self._add_record_label(f"{label} || ' line ' || (_row + 1)",
                               materialize=bool(extras) or file.newer_than is not None)

    def _stage_jsonl(self, stream: Stream, file: FileSlice, *, record_from_json: bool) -> None:
        # One VARCHAR column per physical line: exact line numbers, and a malformed line is a
        # record error rather than a failed scan. Each line is parsed as few times as possible
        # (a JSON value is text: every function applied to it parses it again): once to validate,
        # once for the keys, once per kind of extraction (text or JSON values).
        staged = stage(self.con, file.path, "jsonl", "_file", **self._lines(file, header=0))
        self._add_bad_lines(staged.bad, lambda line: line)
        # Blank lines (only spaces) hold no record. trim() copies every line; the first byte
        # decides for all but the few that start with a space (4x faster over 10M lines).
        lines = (
            f"SELECT _line AS _row, line FROM _file WHERE {self._row_filter(file)} "
            "AND coalesce(line, '') <> '' AND (NOT starts_with(line, ' ') OR trim(line) <> '')"
        )
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _lines AS {lines}")
        deep = self._too_deep()
        if deep:
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW _lines AS {lines} AND _row NOT IN ({', '.join(str(int(row)) for row in deep)})"
            )
        # A valid JSON text whose first character (after JSON whitespace) is { is an object.
        self.con.execute(
            "CREATE OR REPLACE TEMP VIEW _json AS SELECT _row, "
            "CASE WHEN json_valid(line) AND starts_with(ltrim(line, ' ' || chr(9) || chr(13)), '{') "
            "THEN line END AS j FROM _lines"
        )
        if file.newer_than is not None:
            newer = self._newer_than(file, lambda c: f"(j ->> {literal('$.' + _json_path_key(c))})")
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE _newer AS SELECT _row, j FROM _json WHERE {newer}"
            )
            self.con.execute("CREATE OR REPLACE TEMP VIEW _json AS SELECT _row, j FROM _newer")
        keys = [
            row[0]
            for row in self.con.execute(
                "SELECT DISTINCT unnest(json_keys(j)) FROM _json WHERE j IS NOT NULL"
            ).fetchall()
        ]
        keys = [k for k in keys if k != "_record"]
        if self._part is not None:
            # One part of a file may lack a key the mapping names (checked for the whole file).
            self._seen_keys.update(keys)
            keys += [c for c in file.columns.values() if c not in keys]
        columns, extras = self._column_map(stream, keys, file.columns)
        self._has_extras = bool(extras)
        # Every value is read by one json_extract_string (text) or json_extract (JSON) over
        # the list of keys: one parse of the line each, whatever the number of columns.
        text_keys: list[str] = []
        json_keys: list[str] = []

        def text(key: str) -> str:
            text_keys.append("$." + _json_path_key(key))
            return f"_text[{len(text_keys)}]"

        def json_value(key: str) -> str:
            json_keys.append("$." + _json_path_key(key))
            return f"_values[{len(json_keys)}]"

        selects = []
        for canonical in CANONICAL_COLUMNS[stream]:
            key = columns.get(canonical)
            if key is None:
                selects.append(f"NULL AS {identifier(canonical)}")
            elif canonical in _JSON_COLUMNS:
                selects.append(f"{json_value(key)}::JSON AS {identifier(canonical)}")
            else:
                selects.append(f"{text(key)} AS {identifier(canonical)}")
        selects.append(self._extras_json(extras, json_value) + " AS _extra")
        if record_from_json:
            selects.append(f"{text('_record')} AS _record_id")
        extracted = []
        if text_keys:
            extracted.append(f"json_extract_string(j, [{literal_list(text_keys)}]) AS _text")
        if json_keys:
            extracted.append(f"json_extract(j, [{literal_list(json_keys)}]) AS _values")
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP VIEW _raw AS
            SELECT _row, j IS NULL AS _malformed, {', '.join(selects)}
            FROM (SELECT _row, j{''.join(', ' + e for e in extracted)} FROM _json)
            """
        )
        if record_from_json:
            self._add_record_label("_record_id")
        else:
            self._add_record_label(f"{literal(self._label(file))} || ' line ' || _row")

    def _too_deep(self) -> list[int]:
        """Lines nesting objects or arrays past :data:`MAX_JSON_DEPTH` become record errors; their
        rows are returned so they leave ``_lines`` and no later stage ever walks them. SQL picks
        the few candidates (more brackets than the limit); Python measures those exactly."""
        candidates = self.con.execute(
            "SELECT _row, line FROM _lines WHERE strlen(line) - "
            f"strlen(replace(replace(line, '{{', ''), '[', '')) > {MAX_JSON_DEPTH}"
        ).fetchall()
        deep = []
        for row, line in candidates:
            key = too_deep_key(line)
            if key is not None:
                deep.append(row)
                self._bad.append((row, None, key, f"nested more than {MAX_JSON_DEPTH} levels deep"))
        return deep

    @staticmethod
    def _row_filter(file: FileSlice, column_sql=None) -> str:
        conditions = [f"_row > {int(file.skip_rows)}"]
        if file.until_row is not None:
            conditions.append(f"_row <= {int(file.until_row)}")
        if file.newer_than is not None and column_sql is not None:
            conditions.append(Ingestor._newer_than(file, column_sql))
        return " AND ".join(conditions)

    @staticmethod
    def _newer_than(file: FileSlice, column_sql) -> str:
        assert file.newer_than is not None
        column, value = file.newer_than
        # Rows whose timestamp does not parse are kept: validation then names them.
        return (
            f"coalesce(try_cast({column_sql(column)} AS TIMESTAMPTZ) > "
            f"{literal(value)}::TIMESTAMPTZ, true)"
        )

    def _add_record_label(self, label_sql: str, *, materialize: bool = True) -> None:
        """Materialize ``_raw`` as ``_staged`` (scanned once, read twice; ``materialize`` False:
        a view, when ``_raw`` costs less to read twice than to copy); name records lazily.

        ``label_sql`` (over ``_row`` and ``_record_id``) is only evaluated for rows with errors:
        building "file line N" for ten million good rows is wasted work.
        """
        columns = [r[0] for r in self.con.execute("DESCRIBE SELECT * FROM _raw").fetchall()]
        malformed = "_malformed" if "_malformed" in columns else "false AS _malformed"
        record_id = "_record_id" if "_record_id" in columns else "NULL::VARCHAR AS _record_id"
        rest = [c for c in columns if c not in {"_malformed", "_record_id"}]
        select = f"SELECT {', '.join(identifier(c) for c in rest)}, {malformed}, {record_id} FROM _raw"
        if materialize:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _staged_t AS {select}")
            select = "SELECT * FROM _staged_t"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW _staged AS {select}")
        self._label_sql = label_sql

    @staticmethod
    def _column_map(
        stream: Stream, available: Sequence[str], mapping: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Split the source's columns into canonical fields and extras.

        Returns (canonical name → source column, extra name → source column). ``mapping`` maps
        canonical (or, for contacts, custom attribute) names to the source's column names.
        """
        canonical_names = CANONICAL_COLUMNS[stream]
        unknown = set(mapping) - set(canonical_names)
        if unknown and stream is not Stream.CONTACTS:
            raise ValueError(
                f"column mapping names unknown {stream.value} fields: {', '.join(sorted(unknown))}"
            )
        missing = {name: col for name, col in mapping.items() if col not in available}
        if missing:
            raise ValueError(
                "column mapping names columns the source does not have: "
                + ", ".join(f"{name} -> {col!r}" for name, col in sorted(missing.items()))
            )
        canonical = {}
        for name in canonical_names:
            source = mapping.get(name, name)
            if source in available:
                canonical[name] = source
        taken = set(canonical.values()) | set(mapping.values())
        for name in canonical_names:
            if name in canonical or name in mapping:
                continue
            spellings = {_spelling(name), *COLUMN_SPELLINGS.get(name, ())}
            found = [col for col in available if col not in taken and _spelling(col) in spellings]
            if len(found) > 1:
                raise SourceFileError(
                    f"columns {', '.join(repr(c) for c in found)} could each be {name}: "
                    f"map one of them to {name} in the connection's settings"
                )
            if found:
                canonical[name] = found[0]
                taken.add(found[0])
        used = set(canonical.values())
        renamed = {col: name for name, col in mapping.items() if name not in canonical_names}
        extras = {renamed.get(col, col): col for col in available if col not in used}
        return canonical, extras

    @staticmethod
    def _extras_json(extras: Mapping[str, str], value_sql) -> str:
        """A JSON object of the extra columns' non-empty values, keyed by their names."""
        if not extras:
            return "'{}'::JSON"
        entries = ", ".join(
            f"{{'k': {literal(name)}, 'v': ({value_sql(col)})::JSON}}"
            for name, col in extras.items()
        )
        return (
            f"to_json(map_from_entries(list_filter([{entries}], "
            "lambda x: x.v IS NOT NULL AND x.v::VARCHAR NOT IN ('null', '\"\"'))))"
        )

    # -- email keys --------------------------------------------------------------------------

    def _resolve_emails(self) -> None:
        """Make ``_keys(raw, key, error)`` hold every distinct address in ``_staged``.

        ``_keys`` keeps the addresses of the batch's earlier parts: a part resolves only the
        addresses it is the first to hold (the parts of an events file mostly repeat the same
        people). It starts again when it would outgrow :data:`KEPT_ADDRESSES`.
        """
        slow_tlds = literal_list(SLOW_PATH_TLDS)
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _part_raw AS "
            "SELECT DISTINCT email AS raw FROM _staged WHERE email IS NOT NULL"
        )
        if self._count("_keys") + self._count("_part_raw") > KEPT_ADDRESSES:
            self.con.execute("DELETE FROM _keys")
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _new_keys AS
            WITH raw AS (SELECT raw FROM _part_raw p WHERE NOT EXISTS (SELECT 1 FROM _keys k WHERE k.raw = p.raw))
            SELECT raw,
                   CASE WHEN length(lower(trim(raw))) <= 254
                         AND regexp_full_match(lower(trim(raw)), $1)
                         AND length(split_part(lower(trim(raw)), '@', 1)) <= 64
                         AND NOT contains(lower(trim(raw)), '--')
                         AND split_part(lower(trim(raw)), '.', -1) NOT IN ({slow_tlds})
                        THEN lower(trim(raw)) END AS key,
                   NULL::VARCHAR AS error
            FROM raw
            """,
            [FAST_EMAIL_PATTERN],
        )
        slow = [r[0] for r in self.con.execute("SELECT raw FROM _new_keys WHERE key IS NULL").fetchall()]
        if slow:
            resolved = []
            for raw in slow:
                try:
                    resolved.append((raw, normalize_email(raw), None))
                except InvalidEmail as exc:
                    resolved.append((raw, None, f"invalid email address: {exc}"))
            raws, keys, errors = (list(column) for column in zip(*resolved))
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE _slow_keys AS SELECT unnest($raws::VARCHAR[]) AS raw, "
                "unnest($keys::VARCHAR[]) AS key, unnest($errors::VARCHAR[]) AS error",
                {"raws": raws, "keys": keys, "errors": errors},
            )
            self.con.execute(
                "UPDATE _new_keys SET key = s.key, error = s.error FROM _slow_keys s WHERE _new_keys.raw = s.raw"
            )
        self.con.execute("INSERT INTO _keys SELECT raw, key, error FROM _new_keys")

    # -- per stream --------------------------------------------------------------------------

    def ingest(self, batch: Batch) -> IngestResult:
        """Validate and merge ``batch``; a file a part of :attr:`lines_per_part` lines at a time
        (in order, so the merge rule's "later rows win" and deduplication hold across parts)."""
        split: list[Part | None] = [None]
        self._offsets = None
        file = batch.file
        if file is not None and file.path.is_file():
            header = 1 if file.format == "csv" else 0
            split = parts(
                file.path, file.format, file.skip_rows + header + 1,
                file.until_row + header if file.until_row is not None else None, self.lines_per_part,
                first_byte=file.skip_bytes,
            )
        if batch.stream is Stream.EVENTS:
            self._begin_events(parts=len(split))
        self.con.execute("CREATE OR REPLACE TEMP TABLE _keys (raw VARCHAR, key VARCHAR, error VARCHAR)")
        try:
            if len(split) == 1:
                # One part: staged by its byte offsets when known (no count from the top).
                self._offsets = (split[0].start, split[0].end) if split[0] is not None else None
                return self._ingest(batch, None)
            return self._ingest_parts(batch, split)
        finally:
            self._drop("_keys", *(["_batch_ids"] if batch.stream is Stream.EVENTS else []))

    def _drop(self, *tables: str) -> None:
        """Drop the batch's scratch tables, unless a failed statement aborted the transaction
        (its rollback drops them): the failure is what the caller must hear about."""
        try:
            for table in tables:
                self.con.execute(f"DROP TABLE IF EXISTS {table}")
        except duckdb.TransactionException:
            pass

    def _ingest_parts(self, batch: Batch, split: list[Part | None]) -> IngestResult:
        assert batch.file is not None
        total = IngestResult()
        self._seen_keys = set()
        # A contact in several parts is merged once per part but counts once for the batch.
        self.con.execute("CREATE OR REPLACE TEMP TABLE _merged_contacts (contact_key VARCHAR)")
        for number, part in enumerate(split, start=1):
            self._more_follows = number < len(split)
            total.add(self._ingest(batch, part))
        if batch.stream is Stream.CONTACTS:
            total.loaded = int(self.con.execute(
                "SELECT count(DISTINCT contact_key) FROM _merged_contacts").fetchall()[0][0])
        self.con.execute("DROP TABLE _merged_contacts")
        if batch.file.format == "jsonl":
            # Each part maps the keys it holds; the file as a whole must hold what the mapping names.
            self._column_map(batch.stream, sorted(self._seen_keys), batch.file.columns)
        return total

    def _ingest(self, batch: Batch, part: Part | None) -> IngestResult:
        self._part = part
        self._stage(batch)
        self._resolve_emails()
        validate = {
            Stream.CONTACTS: self._validate_contacts,
            Stream.EVENTS: self._validate_events,
            Stream.CONSENT: self._validate_consent,
        }[batch.stream]
        validate()
        result = self._record_errors(batch.stream)
        merge = {
            Stream.CONTACTS: self._merge_contacts,
            Stream.EVENTS: self._merge_events,
            Stream.CONSENT: self._merge_consent,
        }[batch.stream]
        result.loaded = merge()
        return result

    def _common_checks(self) -> list[str]:
        return [
            "CASE WHEN _malformed THEN {'field': 'line', 'reason': 'not a JSON object'} END",
            "CASE WHEN NOT _malformed AND s.email IS NULL THEN {'field': 'email', 'reason': 'missing'} END",
            "CASE WHEN k.error IS NOT NULL THEN {'field': 'email', 'reason': k.error} END",
        ]

    @staticmethod
    def _timestamp_check(column: str, *, required: bool) -> list[str]:
        col = f"s.{identifier(column)}"
        checks = [
            f"CASE WHEN {col} IS NOT NULL AND NOT regexp_matches({col}, {literal(_ISO_WITH_OFFSET)}) "
            f"THEN {{'field': {literal(column)}, 'reason': 'not an ISO 8601 timestamp with a time zone (e.g. 2024-05-01T10:00:00Z): ' || {col}}} END",
            # The cast first: the pattern is then matched only where it failed (a conjunction's
            # second term sees only the rows the first let through).
            f"CASE WHEN try_cast({col} AS TIMESTAMPTZ) IS NULL AND regexp_matches({col}, {literal(_ISO_WITH_OFFSET)}) "
            f"THEN {{'field': {literal(column)}, 'reason': 'not a valid date/time: ' || {col}}} END",
        ]
        if required:
            checks.append(
                f"CASE WHEN NOT _malformed AND {col} IS NULL THEN {{'field': {literal(column)}, 'reason': 'missing'}} END"
            )
        return checks

    def _create_valid(self, typed: str, checks: list[str], source: str = "_staged") -> None:
        errors = "list_filter([" + ", ".join(checks) + "], lambda e: e IS NOT NULL)"
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _checked AS
            SELECT s._row, s._record_id, k.key AS contact_key, {typed}, {errors} AS _errors
            FROM {source} s LEFT JOIN _keys k ON k.raw = s.email
            """
        )

    def _validate_contacts(self) -> None:
        def text(col: str) -> str:
            return f"nullif(trim(s.{identifier(col)}), '') AS {identifier(col)}"

        typed = ", ".join(
            [
                *(text(c) for c in ("first_name", "last_name", "company", "job_title",
                                    "department", "industry", "lifecycle_stage", "external_id")),
                "try_cast(nullif(trim(s.company_size), '') AS INTEGER) AS company_size",
                "upper(nullif(trim(s.country), '')) AS country",
                "nullif(trim(s.timezone), '') AS timezone",
                "try_cast(s.created_at AS TIMESTAMPTZ) AS created_at",
                "CASE WHEN json_type(s.external) = 'OBJECT' THEN s.external::JSON END AS external",
                "json_merge_patch(coalesce(s._extra, '{}'), "
                "CASE WHEN json_type(s.custom) = 'OBJECT' THEN s.custom ELSE '{}' END) AS custom",
            ]
        )
        checks = [
            *self._common_checks(),
            "CASE WHEN nullif(trim(s.company_size), '') IS NOT NULL AND "
            "(try_cast(trim(s.company_size) AS INTEGER) IS NULL OR try_cast(trim(s.company_size) AS INTEGER) < 0) "
            "THEN {'field': 'company_size', 'reason': 'not a non-negative whole number: ' || s.company_size} END",
            "CASE WHEN nullif(trim(s.country), '') IS NOT NULL AND NOT regexp_full_match(upper(trim(s.country)), '[A-Z]{2}') "
            "THEN {'field': 'country', 'reason': 'not an ISO 3166-1 alpha-2 code: ' || s.country} END",
            "CASE WHEN nullif(trim(s.timezone), '') IS NOT NULL AND trim(s.timezone) NOT IN "
            "(SELECT name FROM pg_timezone_names()) "
            "THEN {'field': 'timezone', 'reason': 'unknown IANA time zone: ' || s.timezone} END",
            "CASE WHEN s.custom IS NOT NULL AND json_type(s.custom) <> 'OBJECT' "
            "THEN {'field': 'custom', 'reason': 'not a JSON object'} END",
            "CASE WHEN s.external IS NOT NULL AND json_type(s.external) <> 'OBJECT' "
            "THEN {'field': 'external', 'reason': 'not a JSON object'} END",
            "CASE WHEN s.external IS NOT NULL AND nullif(trim(s.external_id), '') IS NULL "
            "THEN {'field': 'external', 'reason': 'needs an external_id to be recorded against'} END",
            *self._timestamp_check("created_at", required=False),
        ]
        self._create_valid(typed, checks)

    def _validate_events(self) -> None:
        def prop(col: str) -> str:
            return f"s._{col}"

        props = (
            "CASE WHEN s.properties IS NULL THEN '{}'::JSON "
            "WHEN json_valid(s.properties) AND json_type(s.properties::JSON) = 'OBJECT' THEN s.properties::JSON END"
        )
        # value/currency/url/category: a top-level column wins over the same key inside
        # properties. Extracted once here, not once per check below.
        lifted = ", ".join(
            f"coalesce(nullif(trim(p.{identifier(col)}), ''), p._props ->> {literal('$.' + col)}) AS _{col}"
            for col in ("value", "currency", "url", "category")
        )
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP VIEW _staged_events AS
            SELECT *, {lifted} FROM (SELECT *, {props} AS _props FROM _staged s) p
            """
        )
        merged_properties = (
            "json_merge_patch(coalesce(s._props, '{}'), s._extra)" if self._has_extras
            else "coalesce(s._props, '{}')"
        )
        typed = ", ".join(
            [
                "lower(trim(s.type)) AS type",
                "try_cast(s.timestamp AS TIMESTAMPTZ) AS occurred_at",
                "trim(s.id) AS source_event_id",
                f"try_cast({prop('value')} AS DOUBLE) AS value",
                f"upper({prop('currency')}) AS currency",
                f"{prop('url')} AS url",
                f"{prop('category')} AS category",
                f"{merged_properties} AS properties",
            ]
        )
        checks = [
            *self._common_checks(),
            "CASE WHEN NOT _malformed AND nullif(trim(s.type), '') IS NULL THEN {'field': 'type', 'reason': 'missing'} END",
            "CASE WHEN nullif(trim(s.type), '') IS NOT NULL AND lower(trim(s.type)) NOT IN (SELECT name FROM _event_types) "
            "THEN {'field': 'type', 'reason': 'unknown event type ' || s.type || ' (see segsync plugins / docs/records.md)'} END",
            "CASE WHEN NOT _malformed AND nullif(trim(s.id), '') IS NULL THEN {'field': 'id', 'reason': 'missing (the source event id deduplicates events)'} END",
            "CASE WHEN s._props IS NULL THEN {'field': 'properties', 'reason': 'not a JSON object'} END",
            f"CASE WHEN {prop('value')} IS NOT NULL AND try_cast({prop('value')} AS DOUBLE) IS NULL "
            f"THEN {{'field': 'value', 'reason': 'not a number: ' || {prop('value')}}} END",
            f"CASE WHEN {prop('currency')} IS NOT NULL AND NOT regexp_full_match(upper({prop('currency')}), '[A-Z]{{3}}') "
            f"THEN {{'field': 'currency', 'reason': 'not an ISO 4217 code: ' || {prop('currency')}}} END",
            f"CASE WHEN lower(trim(s.type)) = 'order.completed' AND {prop('value')} IS NULL "
            "THEN {'field': 'value', 'reason': 'order.completed needs a value'} END",
            *self._timestamp_check("timestamp", required=True),
        ]
        self._create_valid(typed, checks, source="_staged_events")

    def _validate_consent(self) -> None:
        statuses = literal_list(s.value for s in ConsentStatus)
        channels = literal_list(c.value for c in Channel)
        methods = literal_list(CONSENT_METHODS)
        typed = ", ".join(
            [
                "coalesce(lower(nullif(trim(s.channel), '')), 'email') AS channel",
                f"coalesce(lower(nullif(trim(s.purpose), '')), {literal(DEFAULT_PURPOSE)}) AS purpose",
                "lower(trim(s.status)) AS status",
                "try_cast(s.timestamp AS TIMESTAMPTZ) AS recorded_at",
                "coalesce(lower(nullif(trim(s.method), '')), 'import') AS method",
                "nullif(trim(s.evidence), '') AS evidence",
            ]
        )
        checks = [
            *self._common_checks(),
            "CASE WHEN NOT _malformed AND nullif(trim(s.status), '') IS NULL THEN {'field': 'status', 'reason': 'missing'} END",
            f"CASE WHEN nullif(trim(s.status), '') IS NOT NULL AND lower(trim(s.status)) NOT IN ({statuses}) "
            f"THEN {{'field': 'status', 'reason': 'unknown status ' || s.status || '; one of ' || {literal(', '.join(s.value for s in ConsentStatus))}}} END",
            f"CASE WHEN nullif(trim(s.channel), '') IS NOT NULL AND lower(trim(s.channel)) NOT IN ({channels}) "
            "THEN {'field': 'channel', 'reason': 'unknown channel ' || s.channel} END",
            f"CASE WHEN nullif(trim(s.method), '') IS NOT NULL AND lower(trim(s.method)) NOT IN ({methods}) "
            "THEN {'field': 'method', 'reason': 'unknown method ' || s.method} END",
            *self._timestamp_check("timestamp", required=True),
        ]
        self._create_valid(typed, checks)

    def _record_errors(self, stream: Stream) -> IngestResult:
        """Record every rejected record: lines that could not be read (``_bad``) and rows that
        failed validation (``_checked``)."""
        bad = self._bad
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _bad AS SELECT unnest($rows::BIGINT[]) AS _row, "
            "unnest($ids::VARCHAR[]) AS _record_id, unnest($fields::VARCHAR[]) AS field, "
            "unnest($reasons::VARCHAR[]) AS reason",
            {"rows": [b[0] for b in bad], "ids": [b[1] for b in bad],
             "fields": [b[2] for b in bad], "reasons": [b[3] for b in bad]},
        )
        unreadable = len({b[0] for b in bad})
        counts = self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE len(_errors) > 0) FROM _checked"
        ).fetchall()[0]
        result = IngestResult(rows=counts[0] + unreadable, rejected=counts[1] + unreadable)
        if result.rejected:
            errors = f"""
                SELECT _row, {self._label_sql} AS _record, field, reason FROM _bad
                UNION ALL
                SELECT _row, _record, e.field, e.reason
                FROM (SELECT _row, {self._label_sql} AS _record, unnest(_errors) AS e
                      FROM _checked WHERE len(_errors) > 0)
            """
            self.con.execute(
                f"""
                INSERT INTO record_errors (run_id, connection, phase, record, field, reason, retryable, occurred_at)
                SELECT ?, ?, ?, _record, field, reason, false, now()
                FROM ({errors}) ORDER BY _row
                """,
                [self.run_id, self.connection, f"pull:{stream.value}"],
            )
            result.errors = dicts(
                self.con,
                f"SELECT first(_record) AS record, first(field) AS field, first(reason) AS reason "
                f"FROM ({errors}) GROUP BY _row ORDER BY _row LIMIT 20",
            )
        return result

    def _count(self, table: str) -> int:
        # fetchall, not fetchone: DuckDB keeps a half-read result open on the connection.
        return int(self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    def _ensure_contacts(self) -> None:
        """People first seen in an event or consent record get a bare contact row."""
        self.con.execute(
            f"""
            INSERT INTO contacts (contact_key, first_seen_at, updated_at, updated_by)
            SELECT DISTINCT contact_key, now(), now(), ?
            FROM _checked c
            WHERE len(_errors) = 0
              -- an anti-join, not ON CONFLICT: most keys exist, and probing the key index
              -- once per event row costs more than one hash join
              AND NOT EXISTS (SELECT 1 FROM contacts k WHERE k.contact_key = c.contact_key)
            """,
            [self.connection],
        )

    def _merge_contacts(self) -> int:
        attrs = [a for a in KNOWN_ATTRIBUTES]
        # The merge rule (docs/records.md): a non-empty value overwrites, an empty one never
        # erases; within a batch later rows win, field by field.
        latest = ", ".join(
            f"arg_max({a}, _row) FILTER (WHERE {a} IS NOT NULL) AS {a}"
            for a in ("external_id", "external", *attrs)
        )
        # Most people have one row in a part: their row is taken as it is; only the others are
        # merged by the aggregate (whose ordered list sorts every group it sees).
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _repeated_keys AS SELECT contact_key FROM _checked "
            "WHERE len(_errors) = 0 GROUP BY contact_key HAVING count(*) > 1"
        )
        names = ", ".join(("external_id", "external", *attrs, "custom"))
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _contacts_in AS
            SELECT contact_key, {names} FROM _checked c
            WHERE len(_errors) = 0
              AND NOT EXISTS (SELECT 1 FROM _repeated_keys r WHERE r.contact_key = c.contact_key)
            UNION ALL
            SELECT contact_key, {latest},
                   list_reduce(list(custom ORDER BY _row), lambda a, b: json_merge_patch(a, b)) AS custom
            FROM _checked c
            WHERE len(_errors) = 0
              AND EXISTS (SELECT 1 FROM _repeated_keys r WHERE r.contact_key = c.contact_key)
            GROUP BY contact_key
            """
        )
        updates = ", ".join(
            # created_at keeps the earliest known: a system's own sign-up time for the person
            # (often the day segsync pushed them there) never moves it later.
            f"{a} = least(EXCLUDED.{a}, contacts.{a})" if a == "created_at"
            else f"{a} = coalesce(EXCLUDED.{a}, contacts.{a})"
            for a in attrs
        )
        self.con.execute(
            f"""
            INSERT INTO contacts (contact_key, {', '.join(attrs)}, custom, first_seen_at, updated_at, updated_by)
            SELECT contact_key, {', '.join(attrs)}, custom, now(), now(), ?
            FROM _contacts_in
            ON CONFLICT (contact_key) DO UPDATE SET {updates},
                custom = json_merge_patch(contacts.custom, EXCLUDED.custom),
                updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
            """,
            [self.connection],
        )
        self.con.execute(
            f"""
            INSERT INTO identities (connection, external_id, contact_key, properties, seen_at)
            SELECT ?, external_id, contact_key, coalesce(external, '{{}}'), now()
            FROM _contacts_in
            WHERE external_id IS NOT NULL
            ON CONFLICT (connection, external_id) DO UPDATE SET
                contact_key = EXCLUDED.contact_key, seen_at = EXCLUDED.seen_at,
                properties = CASE WHEN EXCLUDED.properties = '{{}}' THEN identities.properties
                                  ELSE EXCLUDED.properties END
            """,
            [self.connection],
        )
        if self._part is not None:
            self.con.execute("INSERT INTO _merged_contacts SELECT contact_key FROM _contacts_in")
        return self._count("_contacts_in")

    def _begin_events(self, *, parts: int) -> None:
        """Prepare the deduplication of a batch of events (see :meth:`_merge_events`).

        ``(source, source_event_id)`` is unique in ``events``. A row of the batch may repeat an
        event loaded before (by an earlier batch, or an earlier part of this one) or an earlier
        row of its own part. Each part is checked against only what it can collide with, never
        by scanning the growing events table once per part: a single part probes the events
        table once; several parts keep the 64-bit hashes of the ids loaded so far (this batch's
        earlier parts, and the source's earlier events when it has any), and only the rows
        whose hash is among them are looked up in ``events`` by id (normally none: a batch
        without repeats never reads ``events``).
        """
        self._prior_events = bool(self.con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE source = ? LIMIT 1)", [self.connection]
        ).fetchall()[0][0])
        # Hashes only, not the ids: 8 bytes a row held in memory for the whole batch (the ids
        # took ~30 and their memory slowed every part's append to events by half at 20M events).
        self._batch_ids = parts > 1
        self.con.execute("CREATE OR REPLACE TEMP TABLE _batch_ids (h UBIGINT)")
        if self._batch_ids and self._prior_events:
            self.con.execute(
                "INSERT INTO _batch_ids SELECT hash(source_event_id) FROM events WHERE source = ?",
                [self.connection])

    def _merge_events(self) -> int:
        self._ensure_contacts()
        # The part's valid rows, each marked when it repeats an event already loaded or an
        # earlier row of the part (the first by line wins). Only rows whose hash occurs twice
        # are compared by id: with unique ids that is none of them.
        self.con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _part_ids AS
            SELECT _row, source_event_id, hash(source_event_id) AS h
            FROM _checked WHERE len(_errors) = 0
            """
        )
        earlier = ""
        params = {}
        # A row repeats an earlier event when events holds its id for this source: that holds
        # the source's earlier batches and this batch's earlier parts alike.
        in_events = """
            EXISTS (SELECT 1 FROM events e
                    WHERE e.source = $source AND e.source_event_id = p.source_event_id)
        """
        if self._batch_ids:
            # The hashes first (a scan of one integer column); events only for the rows whose
            # hash was loaded before.
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE _candidates AS "
                "SELECT DISTINCT h FROM _batch_ids WHERE h IN (SELECT h FROM _part_ids)")
            if self._count("_candidates"):
                earlier = f"""
                    UNION SELECT _row FROM _part_ids p
                    WHERE p.h IN (SELECT h FROM _candidates) AND {in_events}
                """
                params = {"source": self.connection}
        elif self._prior_events:
            earlier = f"UNION SELECT _row FROM _part_ids p WHERE {in_events}"
            params = {"source": self.connection}
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _repeated AS
            SELECT _row FROM _part_ids
            WHERE h IN (SELECT h FROM _part_ids GROUP BY h HAVING count(*) > 1)
            QUALIFY row_number() OVER (PARTITION BY source_event_id ORDER BY _row) > 1
            {earlier}
            """,
            params,
        )
        before = self._count("events")
        self.con.execute(
            """
            INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, value,
                                currency, url, category, properties, run_id,
                                campaign_key, contact_id)
            SELECT c.contact_key, type, occurred_at, $source, source_event_id, value, currency, url,
                   category, properties, $run,
                   -- typed columns segment evaluation reads (store migrations 4 and 5); most
                   -- events have no properties, which then need no JSON parse
                   CASE WHEN properties = '{}' THEN $source || source_event_id
                        ELSE coalesce(properties ->> '$.campaign_id', $source || source_event_id) END,
                   k.contact_id
            FROM _checked c JOIN contacts k ON k.contact_key = c.contact_key
            WHERE len(_errors) = 0 AND _row NOT IN (SELECT _row FROM _repeated)
            """,
            {"source": self.connection, "run": self.run_id},
        )
        if self._batch_ids and self._more_follows:
            # Repeats too: a hash that leads to a lookup in events is harmless, an anti-join is not free.
            self.con.execute("INSERT INTO _batch_ids SELECT h FROM _part_ids")
        return self._count("events") - before

    def _merge_consent(self) -> int:
        self._ensure_contacts()
        before = self._count("consent_ledger")
        # The ledger is append-only; re-reading the same record (same person, channel, purpose,
        # status, time, source and method) does not append it twice.
        self.con.execute(
            f"""
            INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source,
                                        method, evidence, ingested_at, run_id)
            SELECT DISTINCT ON (contact_key, channel, purpose, status, recorded_at, method)
                   contact_key, channel, purpose, status, recorded_at, ?, method, evidence,
                   now(), ?
            FROM _checked c
            WHERE len(_errors) = 0 AND NOT EXISTS (
                SELECT 1 FROM consent_ledger l
                WHERE l.contact_key = c.contact_key AND l.channel = c.channel
                  AND l.purpose = c.purpose AND l.status = c.status
                  AND l.recorded_at = c.recorded_at AND l.source = ? AND l.method = c.method
            )
            ORDER BY contact_key, channel, purpose, status, recorded_at, method
            """,
            [self.connection, self.run_id, self.connection],
        )
        return self._count("consent_ledger") - before


def _record_json(record: Mapping[str, Any]) -> tuple[str, tuple[str, str] | None]:
    """A connector's record as one JSON line, or the field and reason it cannot be taken."""
    for key, value in record.items():
        # The record is level 1, so its values may nest one level less than a record.
        if nesting_depth(value, MAX_JSON_DEPTH - 1) > MAX_JSON_DEPTH - 1:
            return "", (str(key), f"nested more than {MAX_JSON_DEPTH} levels deep")
    line = json.dumps(record, default=str)
    size = len(line.encode("utf-8"))
    if size > MAX_RECORD_BYTES:
        biggest = max(record, key=lambda k: len(json.dumps(record[k], default=str)))
        return "", (str(biggest), f"the record has {size:,} bytes as JSON; a record may have at most {MAX_RECORD_BYTES:,}")
    return line, None


def _spelling(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.casefold())


def missing_columns_message(label: str, stream: Stream, missing: Sequence[str], found: Sequence[str]) -> str:
    """Why a file's header cannot be read as ``stream`` records, and how to fix it."""
    expected = "; ".join(
        f"{name} (or {', '.join(COLUMN_SPELLINGS[name])})" if name in COLUMN_SPELLINGS else name
        for name in missing
    )
    example = ", ".join(f'{name} = "<your column>"' for name in missing)
    return (
        f"{label}: the header has no {' / '.join(missing)} column (found: {', '.join(found) or 'nothing'}); "
        f"expected {expected}, or map yours: {stream.value}_columns = {{ {example} }}"
    )


def _json_path_key(key: str) -> str:
    """A JSON path member for ``key``, quoted so dots and quotes in keys stay literal."""
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'

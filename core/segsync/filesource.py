"""For connectors whose sources are files the store reads itself (``Batch(file=FileSlice(...))``).

Part of the public API. The store scans a :class:`~segsync.FileSlice` with its own line-exact
readers; a connector handing it files needs the same view of them before it does: which lines
are finished (so a cursor never moves past a line still being written), whether a CSV header
can be read as a stream's records, and the newest timestamp in the finished lines. Everything
here reads files the way the store will, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from segsync.connector import Stream
from segsync.store.sourcefile import (
    HELD_BACK,
    MAX_JSON_DEPTH,
    MAX_RECORD_BYTES,
    Extent,
    SourceFileError,
    extent,
)

# The store's limits on one record (MAX_RECORD_BYTES a line, MAX_JSON_DEPTH levels of JSON),
# and the reason of the record error for a last line still being written (HELD_BACK).
__all__ = ["HELD_BACK", "MAX_JSON_DEPTH", "MAX_RECORD_BYTES", "Extent", "SourceFileError", "extent",
           "header_problem", "newest_timestamp"]


def header_problem(stream: Stream, path: Path, columns: Mapping[str, str], label: str) -> str | None:
    """Why the CSV header of ``path`` cannot be read as ``stream`` records with the column
    mapping ``columns`` (canonical name → the file's column), naming ``label`` and how to fix
    it; None when every required column is there (under a known spelling or mapped)."""
    from segsync.store.ingest import REQUIRED_COLUMNS, Ingestor, missing_columns_message
    from segsync.store.sourcefile import csv_header

    header, _ = csv_header(path)
    mapped, _ = Ingestor._column_map(stream, header, columns)
    missing = [c for c in REQUIRED_COLUMNS[stream] if c not in mapped]
    return missing_columns_message(label, stream, missing, header) if missing else None


def newest_timestamp(path: Path, format: Literal["csv", "jsonl"], column: str, rows: int) -> str | None:
    """The newest parseable ``column`` value among the first ``rows`` records of ``path`` (ISO
    8601, UTC), None when there is none; lines that do not parse are skipped. Raises
    :class:`SourceFileError` when a CSV header has no such column."""
    import duckdb

    from segsync.store.sourcefile import stage
    from segsync.store.sql import identifier, literal

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if format == "csv":
            stage(con, path, "csv", "_file", last_line=rows + 1)
            if column not in [r[0] for r in con.execute("DESCRIBE _file").fetchall()]:
                raise SourceFileError(f"{path}: timestamp_column {column!r} is not in the header")
            value = f"try_cast({identifier(column)} AS TIMESTAMPTZ)"
        else:
            stage(con, path, "jsonl", "_file", last_line=rows)
            value = (
                f"try_cast(CASE WHEN json_valid(line) THEN line::JSON ->> {literal('$.' + column)} END "
                "AS TIMESTAMPTZ)"
            )
        newest = con.execute(f"SELECT max({value}) FROM _file").fetchall()[0][0]
        return newest.isoformat() if newest else None
    finally:
        con.close()

"""The files connector: CSV/JSONL in (contacts, events, consent), audience files out."""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import Field, field_validator

from segsync import (
    Batch,
    Capability,
    Connector,
    ConnectorSettings,
    ContactChange,
    FileSlice,
    Stream,
    WriteResult,
)
from segsync.store.ingest import file_row_count, quote_ident, quote_literal
from segsync_files.audience import AudienceFile
from segsync_files.cursor import file_state, rows_already_loaded

FileFormat = Literal["csv", "jsonl"]


class FilesSettings(ConnectorSettings):
    """Paths are relative to the project folder; sources may be glob patterns."""

    contacts: str | None = Field(None, description="contacts file(s): CSV or JSONL")
    events: str | None = Field(None, description="events file(s): JSONL or CSV")
    consent: str | None = Field(None, description="consent file(s): CSV or JSONL")
    contacts_columns: dict[str, str] = Field(
        default_factory=dict, description="canonical name → column in the contacts file"
    )
    events_columns: dict[str, str] = Field(default_factory=dict)
    consent_columns: dict[str, str] = Field(default_factory=dict)
    incremental: Literal["append", "timestamp"] = Field(
        "append",
        description="append: new rows at the end of each file; timestamp: rows whose "
        "timestamp_column is newer than the last run's newest",
    )
    timestamp_column: dict[str, str] = Field(
        default_factory=dict,
        description="per stream, the column holding each row's change time (timestamp mode)",
    )
    output: str | None = Field(
        None, description="audience output path without extension: writes .csv and .jsonl"
    )

    @field_validator("timestamp_column")
    @classmethod
    def _streams(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - {s.value for s in Stream}
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; use contacts, events, consent")
        return value


class FilesConnector(Connector):
    type_name = "files"
    capabilities = frozenset(
        {
            Capability.READ_CONTACTS,
            Capability.READ_EVENTS,
            Capability.READ_CONSENT,
            Capability.WRITE_CONTACTS,
            Capability.WRITE_MEMBERSHIPS,
            Capability.WRITE_CONSENT,
            Capability.DELETE_CONTACTS,
        }
    )
    Settings = FilesSettings
    max_batch_size = None  # one atomic rewrite of the audience per run

    settings: FilesSettings

    def enabled_capabilities(self) -> frozenset[Capability]:
        enabled = set()
        s = self.settings
        for stream, capability in (
            (s.contacts, Capability.READ_CONTACTS),
            (s.events, Capability.READ_EVENTS),
            (s.consent, Capability.READ_CONSENT),
        ):
            if stream:
                enabled.add(capability)
        if s.output:
            enabled |= {
                Capability.WRITE_CONTACTS,
                Capability.WRITE_MEMBERSHIPS,
                Capability.WRITE_CONSENT,
                Capability.DELETE_CONTACTS,
            }
        return frozenset(enabled)

    # -- paths -------------------------------------------------------------------------------

    def _pattern(self, stream: Stream) -> str | None:
        return getattr(self.settings, stream.value)

    def _files(self, stream: Stream) -> list[Path]:
        pattern = self._pattern(stream)
        if not pattern:
            return []
        full = Path(pattern) if Path(pattern).is_absolute() else self.project_dir / pattern
        return sorted(Path(p) for p in glob.glob(str(full)))

    def _label(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.project_dir))
        except ValueError:
            return str(path)

    @staticmethod
    def _format(path: Path) -> FileFormat:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return "csv"
        if suffix in (".jsonl", ".ndjson", ".json"):
            return "jsonl"
        raise ValueError(f"{path}: unknown file type {suffix!r}; use .csv or .jsonl")

    def _audience(self) -> AudienceFile:
        assert self.settings.output
        out = Path(self.settings.output)
        return AudienceFile(out if out.is_absolute() else self.project_dir / out)

    # -- contract ----------------------------------------------------------------------------

    def check(self) -> list[str]:
        problems = []
        for stream in Stream:
            pattern = self._pattern(stream)
            if pattern and not self._files(stream):
                problems.append(f"{stream.value}: no file matches {pattern!r}")
            for path in self._files(stream):
                try:
                    self._format(path)
                except ValueError as exc:
                    problems.append(str(exc))
        if self.settings.incremental == "timestamp":
            for stream in Stream:
                if self._pattern(stream) and stream.value not in self.settings.timestamp_column:
                    problems.append(f"incremental = 'timestamp' needs timestamp_column.{stream.value}")
        if self.settings.output:
            parent = self._audience().base.parent
            if parent.exists() and not parent.is_dir():
                problems.append(f"output folder {parent} is not a folder")
        return problems

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        columns = getattr(self.settings, f"{stream.value}_columns")
        if self.settings.incremental == "timestamp":
            yield from self._read_by_timestamp(stream, cursor, columns)
            return
        state: dict[str, Any] = dict(cursor or {})
        for path in self._files(stream):
            key = self._label(path)
            skip = rows_already_loaded(path, state.get(key))
            rows, new_state = self._stable_count(path)
            if rows <= skip:
                if key not in state:
                    state[key] = new_state
                continue
            state[key] = new_state
            yield Batch(
                stream,
                cursor=dict(state),
                file=FileSlice(path, self._format(path), skip_rows=skip, until_row=rows,
                               columns=columns, label=key),
            )

    def _stable_count(self, path: Path) -> tuple[int, dict[str, Any]]:
        """Row count and cursor state taken while the file did not change underneath."""
        for _ in range(5):
            before = file_state(path, 0)
            rows = file_row_count(path, self._format(path))
            after = file_state(path, rows)
            if after["size"] == before["size"] and after["sha256"] == before["sha256"]:
                return rows, after
        raise RuntimeError(f"{path} kept changing while it was read; try again")

    def _read_by_timestamp(
        self, stream: Stream, cursor: Any | None, columns: dict[str, str]
    ) -> Iterator[Batch]:
        column = self.settings.timestamp_column[stream.value]
        since = (cursor or {}).get("newest")
        files = self._files(stream)
        newest = since
        for path in files:
            file_newest = _newest_timestamp(path, self._format(path), column)
            if file_newest and (newest is None or file_newest > newest):
                newest = file_newest
        for index, path in enumerate(files):
            done = index == len(files) - 1
            yield Batch(
                stream,
                # Only the last file's batch moves the cursor: earlier ones keep the old one.
                cursor={"newest": newest if done else since},
                file=FileSlice(
                    path,
                    self._format(path),
                    newer_than=(column, since) if since else None,
                    columns=columns,
                    label=self._label(path),
                ),
            )

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        if not changes:
            return WriteResult([], 0)
        audience = self._audience()
        outcomes = audience.apply(changes)
        calls = audience.save()
        return WriteResult(outcomes, calls)


def _newest_timestamp(path: Path, format: FileFormat, column: str) -> str | None:
    con = duckdb.connect()
    try:
        if format == "csv":
            source = f"read_csv({quote_literal(str(path))}, all_varchar = true, header = true)"
            value = f"try_cast({quote_ident(column)} AS TIMESTAMPTZ)"
        else:
            source = f"read_ndjson_objects({quote_literal(str(path))}, ignore_errors = true)"
            value = f"try_cast(json ->> {quote_literal('$.' + column)} AS TIMESTAMPTZ)"
        con.execute("SET TimeZone = 'UTC'")
        newest = con.execute(f"SELECT max({value}) FROM {source}").fetchall()[0][0]
        return newest.isoformat() if newest else None
    finally:
        con.close()

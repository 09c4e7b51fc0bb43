"""The files connector: CSV/JSONL in (contacts, events, consent), audience files out."""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from segsync import (
    Batch,
    Capability,
    Connector,
    ContactChange,
    FileSlice,
    Stream,
    WriteResult,
    lazy_settings,
)
from segsync_files.audience import AudienceFile, AudienceWrite

if TYPE_CHECKING:
    from segsync_files.settings import FilesSettings

# The store's readers (segsync.filesource: DuckDB, sqlglot) are imported where files are read: `segsync plugins`
# and `segsync --help` load this class without reading anything.

FileFormat = Literal["csv", "jsonl"]


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
    Settings = lazy_settings("segsync_files.settings:FilesSettings")  # pydantic: on first use
    # No limit: one atomic rewrite of the audience per run (a limit would rewrite every file
    # once per batch). The push stage hands the diff over a page at a time (write_session).
    max_batch_size = None

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

    def _full_pattern(self, stream: Stream) -> Path | None:
        pattern = self._pattern(stream)
        if not pattern:
            return None
        return Path(pattern) if Path(pattern).is_absolute() else self.project_dir / pattern

    def _files(self, stream: Stream) -> list[Path]:
        full = self._full_pattern(stream)
        if full is None:
            return []
        return sorted(Path(p) for p in glob.glob(str(full)) if Path(p).is_file())

    def _missing(self, stream: Stream) -> str | None:
        """Why the configured files cannot be there, or None.

        A plain path must name a file. A glob may match nothing while its folder exists (an
        append folder not written to yet); a glob whose folder is missing is an error.
        """
        full = self._full_pattern(stream)
        pattern = self._pattern(stream)
        if full is None:
            return None
        if not glob.has_magic(str(full)):
            if full.is_file():
                return None
            what = "a folder, not a file" if full.is_dir() else "no such file"
            return f"{stream.value}: no file matches {pattern!r} ({what})"
        folder = Path(*[part for part in _leading_parts(full)])
        if not folder.is_dir():
            return f"{stream.value}: no file matches {pattern!r} (no folder {self._label(folder)})"
        return None

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
            missing = self._missing(stream)
            if missing:
                problems.append(missing)
            elif pattern and not self._files(stream):
                problems.append(f"{stream.value}: no file matches {pattern!r}")
            for path in self._files(stream):
                try:
                    if self._format(path) == "csv":
                        problems.extend(self._check_header(stream, path))
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

    def _check_header(self, stream: Stream, path: Path) -> list[str]:
        """The header must name (or map) every column a row of ``stream`` needs."""
        from segsync.filesource import header_problem

        problem = header_problem(stream, path, getattr(self.settings, f"{stream.value}_columns"),
                                 self._label(path))
        return [problem] if problem else []

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        from segsync.filesource import SourceFileError
        from segsync_files.cursor import rows_already_loaded, unchanged_since

        missing = self._missing(stream)
        if missing:
            raise SourceFileError(missing)
        columns = getattr(self.settings, f"{stream.value}_columns")
        if self.settings.incremental == "timestamp":
            yield from self._read_by_timestamp(stream, cursor, columns)
            return
        state: dict[str, Any] = dict(cursor or {})
        for path in self._files(stream):
            key = self._label(path)
            if unchanged_since(path, state.get(key)):
                continue  # not even read: a re-run over unchanged files costs a stat each
            skip, skip_bytes = rows_already_loaded(path, state.get(key))
            rows, new_state = self._complete_rows(path, skip, skip_bytes)
            if rows <= skip:
                if key not in state or rows == skip:
                    state[key] = new_state  # the same rows: remember the file as it is now
                continue
            state[key] = new_state
            yield Batch(
                stream,
                cursor=dict(state),
                file=FileSlice(path, self._format(path), skip_rows=skip, until_row=rows,
                               columns=columns, label=key, skip_bytes=skip_bytes),
            )

    def _complete_rows(self, path: Path, skip: int = 0, skip_bytes: int | None = None) -> tuple[int, dict[str, Any]]:
        """Rows on finished lines, and the cursor state that covers exactly their bytes.

        A last line without its line break may still be written: it is neither counted nor
        fingerprinted, so the cursor never moves past it (the store reports it as held back).
        ``skip_bytes``: where row ``skip + 1`` starts (a cursor's offset): only the bytes from
        there on are read to count the rows.
        """
        from segsync.filesource import extent
        from segsync_files.cursor import file_state

        before = path.stat()  # before reading: a write while it is read changes it again
        header = 1 if self._format(path) == "csv" else 0
        if skip_bytes:
            complete = extent(path, lines=skip + header, offset=skip_bytes)
        else:
            complete = extent(path)
        rows = max(complete.lines - header, 0)
        return rows, file_state(path, complete, rows, before)

    def _read_by_timestamp(
        self, stream: Stream, cursor: Any | None, columns: dict[str, str]
    ) -> Iterator[Batch]:
        column = self.settings.timestamp_column[stream.value]
        since = (cursor or {}).get("newest")
        from segsync.filesource import newest_timestamp

        files = [(path, self._complete_rows(path)[0]) for path in self._files(stream)]
        newest = since
        for path, rows in files:
            file_newest = newest_timestamp(path, self._format(path), column, rows)
            if file_newest and (newest is None or file_newest > newest):
                newest = file_newest
        for index, (path, rows) in enumerate(files):
            done = index == len(files) - 1
            yield Batch(
                stream,
                # Only the last file's batch moves the cursor: earlier ones keep the old one.
                cursor={"newest": newest if done else since},
                file=FileSlice(
                    path,
                    self._format(path),
                    # The same finished lines the newest timestamp was taken from.
                    until_row=rows,
                    newer_than=(column, since) if since else None,
                    columns=columns,
                    label=self._label(path),
                ),
            )

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        if not changes:
            return WriteResult([], 0)
        session = self.write_session()
        try:
            written = session.write(changes)
            return WriteResult(written.outcomes, session.commit())
        finally:
            session.abort()

    def write_session(self) -> AudienceWrite:
        """The run's changes a page at a time, merged into the audience in one atomic rewrite
        (segsync_files.audience): memory holds a page, not the whole audience."""
        return self._audience().session()


def _leading_parts(pattern: Path) -> list[str]:
    """The parts of a glob pattern before the first one with a wildcard: its fixed folder."""
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return parts

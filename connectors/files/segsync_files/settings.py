"""The files connector's settings (see docs/files-connector.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from segsync import ConnectorSettings, Stream


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

"""Configuration of one Mailchimp connection (an audience in one account)."""

from __future__ import annotations

import re
from typing import Literal

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator
from segsync.http import HttpSettings

_KEY_SUFFIX = re.compile(r"-([a-z]+\d+)$")


class MailchimpSettings(HttpSettings):
    """``api_key`` is secret and comes from the environment; the rest from ``segsync.toml``.

    Named as in every connector (``segsync.http.HttpSettings``): ``timeout``, ``max_attempts``,
    ``retry_wait_initial``, ``retry_wait_max``, ``max_connections``, ``segment_mode``,
    ``segment_attribute``, ``attribute_mapping``. The old names are still read.
    """

    renamed_settings: ClassVar[dict[str, str]] = {
        "segments_as": "segment_mode", "merge_fields": "attribute_mapping", "segment_merge_field": "segment_attribute"}
    renamed_values: ClassVar[dict[str, dict[str, str]]] = {"segment_mode": {"merge_field": "attribute"}}

    api_key: SecretStr = Field(description="Marketing API key, e.g. '…-us21'")
    server: str | None = Field(
        default=None, description="data-centre prefix such as 'us21'; derived from the key when absent"
    )
    list_id: str = Field(description="the audience (list) id")
    segment_mode: Literal["tags", "static_segments", "attribute"] = Field(
        default="tags",
        description="how memberships are written: tags (Mailchimp stores them as static "
        "segments, so 'static_segments' uses the same endpoints) or one merge field "
        "('attribute'; formerly segments_as = 'merge_field')",
    )
    segment_attribute: str = Field(
        default="SEGMENTS", description="merge tag holding the comma-separated segment names "
        "(segment_mode = 'attribute'; formerly segment_merge_field)"
    )
    attribute_mapping: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "FNAME", "last_name": "LNAME"},
        description="attribute name -> merge tag; unmapped attributes are not pushed (formerly merge_fields)",
    )
    host: str | None = Field(
        default=None,
        description="API base URL override, e.g. the emulator's http://127.0.0.1:PORT/3.0",
    )
    max_connections: int = Field(
        default=10, ge=1, le=10,
        description="parallel requests of this connection; every connection and process using the "
        "same account shares Mailchimp's 10 (segsync.http.budget)",
    )
    abandoned_hold: float | None = Field(
        default=None, ge=0,
        description="seconds a request given up after a timeout still counts against the account's "
        "10 connections (the server may still be running it); default: the timeout again",
    )
    retry_wait_initial: float = Field(default=1.0, ge=0, description="first back-off in seconds (doubles per try)")
    retry_wait_max: float = Field(default=60.0, ge=0, description="longest wait between tries, Retry-After included")
    activity_window_days: int = Field(
        default=30, ge=0, description="re-read activity of campaigns sent this many days before the cursor"
    )
    cursor_overlap_seconds: int = Field(
        default=1, ge=0, description="re-read this much before the previous cursor (clock skew, ties)"
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        if not re.match(r"^https?://", value):
            raise ValueError("host must be an http(s) URL such as http://127.0.0.1:8080/3.0")
        # The SDK replaces the word 'server' with the data-centre prefix across the whole URL.
        if "server" in value:
            raise ValueError("host must not contain the word 'server' (the Mailchimp SDK rewrites it)")
        return value

    @model_validator(mode="after")
    def _server(self) -> MailchimpSettings:
        if self.server is None and not _KEY_SUFFIX.search(self.api_key.get_secret_value()):
            raise ValueError("api_key has no '-usNN' data-centre suffix; set server explicitly")
        return self

    @property
    def resolved_server(self) -> str:
        if self.server:
            return self.server
        match = _KEY_SUFFIX.search(self.api_key.get_secret_value())
        assert match is not None  # checked by the validator
        return match.group(1)

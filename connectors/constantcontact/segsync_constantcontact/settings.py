"""Configuration of one Constant Contact connection (``type = "constantcontact"``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from segsync.http import HttpSettings

from segsync_constantcontact.limits import IMPORT_MAX_BYTES, REQUESTS_PER_SECOND

DEFAULT_HOST = "https://api.cc.email/v3"
DEFAULT_TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token"

# Canonical attribute -> a contacts_json_import column. The four are contact properties of
# every account; "cf:<name>" columns are custom fields, which must exist (`check --fix`).
DEFAULT_ATTRIBUTES: dict[str, str] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "job_title": "job_title",
    "company": "company_name",
}
CUSTOM_FIELD_PREFIX = "cf:"


class ConstantContactSettings(HttpSettings):
    access_token: SecretStr = Field(description="OAuth2 access token, sent as a Bearer token")
    refresh_token: SecretStr | None = Field(
        None, description="OAuth2 refresh token: with client_id (and client_secret) a 401 for an "
        "expired access token gets a new one, kept in memory only")
    client_id: str | None = Field(None, description="The application's API key (OAuth2 client id)")
    client_secret: SecretStr | None = Field(None, description="The application's client secret")
    host: str = Field(DEFAULT_HOST, description="API root; the emulator's url for dry runs")
    token_url: str = Field(DEFAULT_TOKEN_URL, description="OAuth2 token endpoint")
    audience_list: str = Field(
        "segsync", description="Contact list every synced contact is imported into (an import needs one)")
    segment_mode: Literal["tags", "lists"] = Field(
        "tags", description="A segment is a Constant Contact tag, or a contact list, of its name")
    create_segments: bool = Field(True, description="Create the tag or list of a segment that has none")
    attribute_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical or custom attribute -> import column (first_name, …) or custom field "
        "as cf:<name>")
    max_connections: int = Field(
        4, ge=1, description="Simultaneous requests of this connection (no more than a second's worth)")
    requests_per_second: float = Field(
        REQUESTS_PER_SECOND, gt=0, description="Most requests a second (the API key's limit)")
    import_max_bytes: int = Field(IMPORT_MAX_BYTES - 64 * 1024, gt=0, le=IMPORT_MAX_BYTES)
    activity_poll_seconds: float = Field(1.0, gt=0, description="First wait between activity polls")
    activity_timeout_seconds: float = Field(900.0, gt=0)

    @model_validator(mode="after")
    def _refresh_needs_client_id(self) -> ConstantContactSettings:
        if self.refresh_token is not None and not self.client_id:
            raise ValueError("refresh_token needs client_id (the application's API key) to refresh "
                             "the access token")
        return self

    def import_columns(self) -> dict[str, str]:
        """Attribute -> import column, the defaults overridden by ``attribute_mapping``."""
        return {**DEFAULT_ATTRIBUTES, **self.attribute_mapping}

    def custom_fields(self) -> dict[str, str]:
        """Attribute -> custom field name, for the mapped attributes stored in custom fields."""
        return {attribute: column[len(CUSTOM_FIELD_PREFIX):]
                for attribute, column in self.import_columns().items()
                if column.startswith(CUSTOM_FIELD_PREFIX)}

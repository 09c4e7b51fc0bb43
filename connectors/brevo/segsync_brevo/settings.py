"""Configuration of one Brevo connection (``type = "brevo"`` in segsync.toml)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from segsync.http import HttpSettings

from segsync_brevo.limits import IMPORT_MAX_BYTES, IMPORT_SAFE_BYTES

# Defined here, not in api.py: the settings (and the connector class) must not import the SDK.
DEFAULT_HOST = "https://api.brevo.com/v3"

# Canonical attribute -> Brevo contact attribute. FIRSTNAME/LASTNAME exist in every Brevo
# account; the others are created by `segsync check --fix` when missing.
DEFAULT_ATTRIBUTES: dict[str, str] = {
    "first_name": "FIRSTNAME",
    "last_name": "LASTNAME",
    "company": "COMPANY",
    "job_title": "JOB_TITLE",
    "department": "DEPARTMENT",
    "industry": "INDUSTRY",
    "company_size": "COMPANY_SIZE",
    "country": "COUNTRY",
    "timezone": "TIMEZONE",
    "lifecycle_stage": "LIFECYCLE_STAGE",
}


class BrevoSettings(HttpSettings):
    """Named as in every connector (``segsync.http.HttpSettings``): ``timeout``, ``max_attempts``,
    ``retry_wait_initial``, ``retry_wait_max``, ``max_connections``, ``segment_mode``,
    ``segment_attribute``, ``attribute_mapping``. The old names are still read."""

    renamed_settings: ClassVar[dict[str, str]] = {"timeout_seconds": "timeout"}

    api_key: SecretStr = Field(description="Brevo API v3 key, sent as the api-key header")
    host: str = Field(DEFAULT_HOST, description="API root; the emulator's url for dry runs")
    audience_list: str = Field(
        "segsync",
        description="List every synced contact is imported into (Brevo's import needs a list)",
    )
    list_mapping: dict[str, int] = Field(
        default_factory=dict, description="Segment name -> existing Brevo list id"
    )
    segment_mode: Literal["lists", "attribute"] = Field(
        "lists", description="A Brevo list per segment, or one contact attribute holding them"
    )
    segment_attribute: str = Field("SEGSYNC_SEGMENTS", description="Attribute for segment_mode=attribute")
    create_lists: bool = Field(True, description="Create a list for a segment that has none")
    list_folder: str = Field("segsync", description="Folder for lists the connector creates")
    attribute_mapping: dict[str, str] = Field(
        default_factory=dict, description="Canonical or custom attribute -> Brevo attribute name"
    )
    retry_wait_initial: float = Field(0.25, ge=0, description="first back-off in seconds (doubles per try)")
    max_connections: int = Field(
        10, ge=1, le=50,
        description="Simultaneous requests per Brevo account, shared by every connection and "
        "process using the same key (segsync.http.budget); a request given up after a timeout "
        "counts for one more timeout",
    )
    import_max_bytes: int = Field(IMPORT_SAFE_BYTES, gt=0, le=IMPORT_MAX_BYTES)
    batch_size: int = Field(100, ge=1, le=1000, description="Contacts per POST /contacts/batch")
    process_timeout_seconds: float = Field(900.0, gt=0)
    import_poll_seconds: float = Field(1.0, gt=0, description="First wait between import-process polls")
    events_initial_days: int = Field(90, ge=1, le=90)

    @field_validator("attribute_mapping")
    @classmethod
    def _upper(cls, value: dict[str, str]) -> dict[str, str]:
        return {k: v.upper() for k, v in value.items()}

    def brevo_attributes(self) -> dict[str, str]:
        return {**DEFAULT_ATTRIBUTES, **self.attribute_mapping}

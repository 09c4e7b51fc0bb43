"""Configuration of one HubSpot connection (``type = "hubspot"`` in segsync.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from segsync.http import HttpSettings

from segsync_hubspot.limits import API_ROOT, SEARCH_PAGE_MAX, SEARCH_REQUESTS_PER_SECOND

# Canonical attribute -> HubSpot contact property (internal names). Every one exists in every
# HubSpot account; lead_status has no typed column in segsync and is a custom attribute there.
DEFAULT_PROPERTIES: dict[str, str] = {
    "first_name": "firstname",
    "last_name": "lastname",
    "company": "company",
    "job_title": "jobtitle",
    "industry": "industry",
    "country": "country",
    "lifecycle_stage": "lifecyclestage",
    "lead_status": "hs_lead_status",
}


class HubSpotSettings(HttpSettings):
    access_token: SecretStr = Field(
        description="A private app's access token, sent as 'Authorization: Bearer <token>'"
    )
    host: str = Field(API_ROOT, description="API root; the emulator's url for dry runs")
    segment_mode: Literal["lists", "attribute", "both"] = Field(
        "lists",
        description="Segments as static (MANUAL) lists, as the options of one multi-checkbox "
        "contact property (attribute), or both",
    )
    segment_attribute: str = Field(
        "segsync_segments", description="The multi-checkbox contact property for segment_mode=attribute/both"
    )
    list_mapping: dict[str, str] = Field(
        default_factory=dict, description="Segment (tag or list name) -> existing HubSpot list id"
    )
    create_lists: bool = Field(True, description="Create a MANUAL list for a segment that has none")
    create_options: bool = Field(
        True, description="Add a missing segment option to the segment property when writing"
    )
    attribute_mapping: dict[str, str] = Field(
        default_factory=dict, description="Canonical or custom attribute -> HubSpot property name"
    )
    subscription_id: int | None = Field(
        None,
        description="Email subscription type whose status is read as consent and set for "
        "subscribed contacts (communication preferences API); none: only opt-outs are synced",
    )
    legal_basis: str = Field(
        "CONSENT_WITH_NOTICE", description="legalBasis sent when subscribing a contact (GDPR accounts)"
    )
    page_size: int = Field(SEARCH_PAGE_MAX, ge=1, le=SEARCH_PAGE_MAX, description="Contacts per search page")
    search_requests_per_second: float = Field(
        SEARCH_REQUESTS_PER_SECOND, gt=0,
        description="Searches per second this connection sends (HubSpot limits search per account "
        "and reports nothing about it in its answers)",
    )
    max_connections: int = Field(
        4, ge=1, le=10,
        description="Simultaneous requests per HubSpot account, shared by every connection and "
        "process using the same token (the ten-second window is shared too)",
    )

    def hubspot_properties(self) -> dict[str, str]:
        return {**DEFAULT_PROPERTIES, **self.attribute_mapping}

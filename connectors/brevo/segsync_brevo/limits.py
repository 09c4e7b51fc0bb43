"""Brevo's documented API limits, shared by the connector (pacing) and the emulator (enforcing).

Source: https://developers.brevo.com/docs/api-limits ("General rate limits" table) and the
Swagger spec's ``maximum``/``maxItems`` values; see the README for the full citations.
"""

from __future__ import annotations

# Rate-limit buckets of the general tier: (requests, window in seconds) pairs, all enforced at
# once ("when both are specified, you must respect both limits simultaneously").
GENERAL_TIER: dict[str, tuple[tuple[int, float], ...]] = {
    "contacts": ((10, 1.0), (36_000, 3600.0)),  # all endpoints under /v3/contacts/{...}
    "smtp_blocked": ((1_000, 1.0), (3_600_000, 3600.0)),  # GET /v3/smtp/blockedContacts
    "smtp": ((300, 3600.0),),  # other endpoints under /v3/smtp/{...}
    "other": ((100, 3600.0),),  # every endpoint not listed, e.g. /v3/processes/{id}
}

CONTACTS_PAGE_MAX = 1000  # GET /contacts limit maximum
LISTS_PAGE_MAX = 50  # GET /contacts/lists and /contacts/folders limit maximum
BLOCKED_PAGE_MAX = 100  # GET /smtp/blockedContacts limit maximum
EVENTS_PAGE_MAX = 5000  # GET /smtp/statistics/events limit maximum (SDK enforces the same)
EVENTS_MAX_DAYS = 90  # "The date range can not exceed 90 days"
LIST_MEMBERS_PER_CALL = 150  # add/remove list members: maxItems 150
IMPORT_MAX_BYTES = 10 * 1024 * 1024  # jsonBody: "Maximum allowed json body size is 10MB"
IMPORT_SAFE_BYTES = 8 * 1024 * 1024  # "we recommend a safe limit of around 8 MB"


def bucket_for(path: str) -> str:
    """The rate-limit bucket of an API path relative to the v3 root (``/contacts/lists``)."""
    if path.startswith("/v3/"):
        path = path[3:]
    if path == "/contacts" or path.startswith("/contacts/"):
        return "contacts"
    if path == "/smtp/blockedContacts":
        return "smtp_blocked"
    if path.startswith("/smtp/"):
        return "smtp"
    return "other"

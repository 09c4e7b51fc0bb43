"""Constant Contact's documented API v3 limits, shared by the connector and the emulator.

Each value's source is cited in the connector's README ("Sources").
"""

from __future__ import annotations

REQUESTS_PER_SECOND = 4  # standard API keys: 4 requests per second ...
REQUESTS_PER_DAY = 10_000  # ... and 10,000 per day, per key
CONTACTS_PAGE_MAX = 500  # GET /contacts: limit 1-500, default 50
TAGS_PAGE_MAX = 500  # GET /contact_tags: limit up to 500
LISTS_PAGE_MAX = 500  # GET /contact_lists: "from 1 - 500"
CUSTOM_FIELDS_PAGE_MAX = 100  # GET /contact_custom_fields: limit 1-100
IMPORT_MAX_CONTACTS = 40_000  # contacts_json_import: at most 40,000 contacts a payload
IMPORT_MAX_BYTES = 4 * 1024 * 1024  # ... and less than 4 MB (the rest is dropped silently)
IMPORT_MAX_LISTS = 50  # contacts_json_import: list_ids, 1 to 50
IMPORT_MAX_CUSTOM_FIELDS = 25  # custom fields per contact
ACTIVITY_MAX_CONTACT_IDS = 500  # add/remove list memberships, taggings add/remove, contact_delete
ACTIVITY_MAX_TAGS = 50  # contacts_taggings_add/remove: tag_ids, at most 50
QUEUED_ACTIVITIES_MAX = 1_000  # more queued activities per account answer 429
ACTIVITY_DONE_STATES = frozenset({"completed", "cancelled", "failed", "timed_out"})

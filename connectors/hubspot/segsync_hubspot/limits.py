"""HubSpot's documented API limits, shared by the connector (paging, batching, pacing) and the
emulator (enforcing them). Each value's source is cited in the README's "HubSpot facts" table.
"""

from __future__ import annotations

API_ROOT = "https://api.hubapi.com"

# CRM search (POST /crm/v3/objects/contacts/search)
SEARCH_PAGE_MAX = 200  # "limit: the maximum results to return, up to 200 objects"
SEARCH_RESULTS_MAX = 10_000  # "limited to 10,000 total results for any given query" (400 past it)
SEARCH_REQUESTS_PER_SECOND = 4  # per token (changelog); search answers carry no X-HubSpot-RateLimit-* headers
SEARCH_FILTER_GROUPS_MAX = 6  # "up to 6 groups of filters"

# Batch endpoints (contacts batch upsert/archive/read)
BATCH_MAX = 100  # inputs per CRM batch call

# Lists v3 (MANUAL/SNAPSHOT lists only accept membership writes). No documented maximum of ids
# per add-and-remove call was found; one call carries one write batch (BATCH_MAX contacts).
CONTACT_OBJECT_TYPE = "0-1"  # objectTypeId of contacts

# Communication preferences v4 batch endpoints
# No documented maximum was found for these; the connector sends at most one CRM batch's worth.
SUBSCRIPTION_BATCH_MAX = BATCH_MAX

# Rate limits of a private app (the ten-second rolling window and the daily quota), Free/Starter
# tier; Professional/Enterprise and the API limit increase raise both.
TEN_SECONDLY_MAX = 100
TEN_SECONDLY_WINDOW_MS = 10_000
DAILY_MAX = 250_000

RATE_LIMIT_REMAINING = "X-HubSpot-RateLimit-Remaining"
RATE_LIMIT_INTERVAL = "X-HubSpot-RateLimit-Interval-Milliseconds"
RATE_LIMIT_MAX = "X-HubSpot-RateLimit-Max"
RATE_LIMIT_DAILY = "X-HubSpot-RateLimit-Daily"
RATE_LIMIT_DAILY_REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"

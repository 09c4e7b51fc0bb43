"""Mailchimp's API limits the connector plans by, in a module of their own so that the connector
class can name them without importing the SDK-backed writer."""

from __future__ import annotations

BATCH_MAX = 500  # members per batch-subscribe call (POST /lists/{list_id})

"""Brevo marketing webhooks.

Brevo POSTs JSON: one event object, or an array of them for a webhook created with
``batched: true``. Every event has ``event``, ``email`` and ``ts_event`` (seconds, UTC; ``ts``
on some events); ``date_event`` is in the account's local time zone and is not used. A webhook
created with ``auth: {"type": "bearer", "token": ...}`` carries ``Authorization: Bearer <token>``;
that token is the secret checked here. Sources: Brevo's "Marketing webhooks" page and the
``createWebhook`` operation of its API reference (README).

``unsubscribe`` (opted out by the person, ``email_link``), ``hard_bounce`` (``bounce``) and
``spam`` (a complaint) are consent records, as the connector's pull makes of the blocklist.
The other events (``contact_deleted``, opens, clicks, deliveries, soft bounces, list additions,
contact updates) state no consent: they are acknowledged and not queued (the next sync reads
the contact as it is).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import requests

from segsync import Connector, Stream, mask_email

from segsync_serve.receivers import Delivery, Malformed, Received, Unauthorized, consent_row, one_batch, same_secret

# Brevo's event words (the payload's ``event``) → consent status and method.
CONSENT_EVENTS = {
    "unsubscribe": ("opted_out", "email_link"),
    "unsubscribed": ("opted_out", "email_link"),
    "hard_bounce": ("bounced", "bounce"),
    "spam": ("complained", "complaint"),
}
# What the webhook is created with (the createWebhook ``events`` words).
EVENTS = ("unsubscribed", "hardBounce", "spam", "contactDeleted")
MAX_EVENTS = 1000


class BrevoReceiver:
    def url(self, public_url: str, connection: str, secret: str) -> str:
        return f"{public_url.rstrip('/')}/webhooks/{connection}"

    def authenticate(self, delivery: Delivery, secret: str) -> None:
        scheme, _, token = delivery.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(token.strip(), secret):
            raise Unauthorized("the Authorization header does not carry the webhook's bearer token")

    def parse(self, delivery: Delivery, connector: Connector) -> Received:
        if delivery.content_type != "application/json":
            raise Malformed(f"content type {delivery.content_type or 'none'!r}; Brevo sends application/json")
        try:
            document = json.loads(delivery.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(f"the body is not JSON: {exc}") from None
        events = document if isinstance(document, list) else [document]
        if not events or len(events) > MAX_EVENTS:
            raise Malformed(f"expected 1 to {MAX_EVENTS} events, got {len(events)}")
        rows, ignored = [], []
        for position, event in enumerate(events):
            where = f"event {position + 1}: " if isinstance(document, list) else ""
            if not isinstance(event, dict):
                raise Malformed(f"{where}not a JSON object")
            kind = event.get("event")
            if not isinstance(kind, str) or not kind:
                raise Malformed(f"{where}event: missing")
            if kind not in CONSENT_EVENTS:
                ignored.append(kind)
                continue
            email = event.get("email")
            if not isinstance(email, str) or not email.strip():
                raise Malformed(f"{where}email: missing")
            when = _timestamp(event, where)
            status, method = CONSENT_EVENTS[kind]
            campaign = event.get("camp_id")
            evidence = f"brevo webhook {kind}" + (f" campaign {campaign}" if campaign is not None else "")
            if isinstance(event.get("reason"), str) and event["reason"]:
                evidence += f"; reason {event['reason'][:200]}"
            rows.append((Stream.CONSENT, consent_row(email.strip(), status, when, method, evidence),
                         f"brevo webhook {kind} {mask_email(email.strip())}"))
        return Received(batches=one_batch(rows), ignored=ignored)

    def register(self, connector: Connector, url: str, secret: str) -> str:
        """Create a marketing webhook (``POST /webhooks``) with the bearer token, unless one
        with this URL exists."""
        settings = connector.settings
        headers = {"api-key": settings.api_key.get_secret_value(), "accept": "application/json"}
        timeout = getattr(settings, "timeout_seconds", 30.0)
        endpoint = f"{settings.host.rstrip('/')}/webhooks"
        existing = requests.get(endpoint, params={"type": "marketing"}, headers=headers, timeout=timeout)
        existing.raise_for_status()
        if any(w.get("url") == url for w in existing.json().get("webhooks", [])):
            return "Brevo: marketing webhook already registered"
        created = requests.post(endpoint, headers=headers, timeout=timeout, json={
            "type": "marketing", "url": url, "events": list(EVENTS), "description": "segsync serve",
            "auth": {"type": "bearer", "token": secret}})
        if created.status_code >= 400:
            raise RuntimeError(f"Brevo refused the webhook ({created.status_code}): {created.text[:300]}")
        return f"Brevo: marketing webhook {created.json().get('id')} registered"


def _timestamp(event: dict[str, Any], where: str) -> str:
    for name in ("ts_event", "ts"):
        value = event.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**37:
            raise Malformed(f"{where}{name}: {str(value)[:40]!r} is not a timestamp in seconds")
        return datetime.fromtimestamp(value, timezone.utc).isoformat()
    raise Malformed(f"{where}ts_event: missing")

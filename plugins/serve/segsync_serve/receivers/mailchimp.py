"""Mailchimp audience webhooks.

Mailchimp POSTs ``application/x-www-form-urlencoded`` bodies: ``type``, ``fired_at``
(``YYYY-MM-DD HH:MM:SS``, GMT) and ``data[...]`` fields; it validates a webhook URL with a GET
when the webhook is created, and it does not sign its requests, so the secret travels in the
URL (``?secret=``). Sources: the "Sync audience data with webhooks" guide and the list-webhooks
API reference (README).

What each type means for segsync (the same records the connector's pull makes of the member):

* ``unsubscribe``: opted out by the person (``email_link``; ``reason=abuse`` is a complaint;
  ``action=delete`` is an admin's removal, ``admin``);
* ``cleaned``: a hard bounce (``bounce``; ``reason=abuse``: a complaint);
* ``subscribe``: opted in. The request does not say who subscribed the person (a form, an admin,
  an import), so the method is ``sync``, which never lifts an opt-out recorded elsewhere; the next
  pull reads the member's ``source`` and records the precise method (docs/consent.md);
* ``profile``: the mapped merge fields (``attribute_mapping``) as contact attributes;
* ``upemail``: the new address as a contact (its consent arrives with the next pull);
* ``campaign``: nothing to apply (acknowledged, not queued).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

import requests

from segsync import Connector, Stream

from segsync_serve.receivers import (
    Delivery,
    Malformed,
    Received,
    Unauthorized,
    consent_row,
    one_batch,
    same_secret,
    text_field,
)

FORM = "application/x-www-form-urlencoded"
EVENTS = ("subscribe", "unsubscribe", "profile", "cleaned", "upemail")
# Only what people and admins do: segsync's own API writes must not come back as webhooks.
SOURCES = {"user": True, "admin": True, "api": False}
MAX_FIELDS = 500


def member_id(email: str) -> str:
    """Mailchimp's member id (the MD5 of the lower-case address): how records are named."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class MailchimpReceiver:
    def url(self, public_url: str, connection: str, secret: str) -> str:
        return f"{public_url.rstrip('/')}/webhooks/{quote(connection)}?secret={quote(secret)}"

    def authenticate(self, delivery: Delivery, secret: str) -> None:
        if not same_secret(delivery.query.get("secret"), secret):
            raise Unauthorized("the webhook URL's secret is missing or wrong")

    def parse(self, delivery: Delivery, connector: Connector) -> Received:
        if delivery.content_type != FORM:
            raise Malformed(f"content type {delivery.content_type or 'none'!r}; Mailchimp sends {FORM}")
        try:
            pairs = parse_qsl(delivery.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                              max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError) as exc:
            raise Malformed(f"the body is not a form: {exc}") from None
        form = dict(pairs)
        kind = text_field(form, "type")
        fired = _fired_at(text_field(form, "fired_at"))
        list_id = text_field(form, "data[list_id]")
        expected = connector.settings.list_id
        if list_id != expected:
            raise Malformed(f"data[list_id]: {list_id!r} is not this connection's audience {expected!r}")
        if kind == "campaign":
            return Received(ignored=["campaign"])
        if kind not in EVENTS:
            raise Malformed(f"type: {kind!r} is not a Mailchimp webhook type ({', '.join((*EVENTS, 'campaign'))})")
        return Received(batches=one_batch(_rows(kind, fired, form, list_id, connector)))

    def register(self, connector: Connector, url: str, secret: str) -> str:
        """Create the audience's webhook (``POST /lists/{list_id}/webhooks``) unless one with
        this URL exists; Mailchimp checks the URL with a GET before it answers."""
        settings = connector.settings
        base = settings.host or f"https://{_server(settings)}.api.mailchimp.com/3.0"
        endpoint = f"{base}/lists/{settings.list_id}/webhooks"
        auth = ("segsync", settings.api_key.get_secret_value())
        timeout = getattr(settings, "timeout", 30.0)
        existing = requests.get(endpoint, auth=auth, timeout=timeout)
        existing.raise_for_status()
        if any(w.get("url") == url for w in existing.json().get("webhooks", [])):
            return f"Mailchimp audience {settings.list_id}: webhook already registered"
        created = requests.post(endpoint, auth=auth, timeout=timeout, json={
            "url": url, "events": {e: True for e in EVENTS} | {"campaign": False}, "sources": SOURCES})
        if created.status_code >= 400:
            raise RuntimeError(f"Mailchimp refused the webhook ({created.status_code}): {created.text[:300]}")
        return f"Mailchimp audience {settings.list_id}: webhook {created.json().get('id')} registered"


def _server(settings: Any) -> str:
    server = getattr(settings, "server", None)
    return server or settings.api_key.get_secret_value().rpartition("-")[2]


def _fired_at(raw: str) -> str:
    try:
        when = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise Malformed(f"fired_at: {raw[:40]!r} is not YYYY-MM-DD HH:MM:SS") from None
    return when.isoformat()


def _rows(kind: str, fired: str, form: dict[str, str], list_id: str, connector: Connector) -> list:
    if kind == "upemail":
        new = text_field(form, "data[new_email]")
        return [(Stream.CONTACTS, {"email": new}, f"mailchimp webhook upemail member {member_id(new)}")]
    email = text_field(form, "data[email]")
    name = f"mailchimp webhook {kind} member {member_id(email)}"
    reason = form.get("data[reason]", "").strip()
    campaign = form.get("data[campaign_id]", "").strip()
    evidence = f"mailchimp webhook {kind} list {list_id} member {member_id(email)} fired {fired}"
    evidence += f"; reason {reason}" if reason else ""
    evidence += f"; campaign {campaign}" if campaign else ""
    if kind == "unsubscribe":
        if reason == "abuse":
            status, method = "complained", "complaint"
        elif form.get("data[action]", "").strip() == "delete":
            status, method = "opted_out", "admin"
        else:
            status, method = "opted_out", "email_link"
        return [(Stream.CONSENT, consent_row(email, status, fired, method, evidence), name)]
    if kind == "cleaned":
        status, method = ("complained", "complaint") if reason == "abuse" else ("bounced", "bounce")
        return [(Stream.CONSENT, consent_row(email, status, fired, method, evidence), name)]
    if kind == "subscribe":
        return [(Stream.CONSENT, consent_row(email, "opted_in", fired, "sync", evidence), name)]
    # profile: the merge fields the connection maps back to attributes
    mapping = {tag: attribute for attribute, tag in connector.settings.attribute_mapping.items()}
    row: dict[str, Any] = {"email": email}
    for key, value in form.items():
        if key.startswith("data[merges][") and key.endswith("]"):
            attribute = mapping.get(key[len("data[merges]["):-1])
            if attribute is not None and value.strip():
                row[attribute] = value.strip()
    return [(Stream.CONTACTS, row, name)]

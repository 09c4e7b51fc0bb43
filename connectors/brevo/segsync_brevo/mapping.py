"""Translations between Brevo's records and segsync's canonical ones."""

from __future__ import annotations

import hashlib
from typing import Any

from segsync.model import InvalidEmail, normalize_email

BLACKLISTED_STATUSES = frozenset({"unsubscribed", "cleaned", "complained"})

# GET /smtp/blockedContacts reason codes -> (consent status, consent method).
BLOCK_REASONS: dict[str, tuple[str, str]] = {
    "hardBounce": ("bounced", "bounce"),
    "contactFlaggedAsSpam": ("complained", "complaint"),
    "unsubscribedViaEmail": ("opted_out", "email_link"),
    "unsubscribedViaApi": ("opted_out", "api"),
    "unsubscribedViaMA": ("opted_out", "api"),
    "adminBlocked": ("opted_out", "admin"),
}

# GET /smtp/statistics/events event names -> canonical event types (and fixed properties).
# Events with no canonical type (deferred, blocked, invalid, error, loadedByProxy) are skipped.
EVENT_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "requests": ("email.sent", {}),
    "delivered": ("email.delivered", {}),
    "opened": ("email.opened", {}),
    "clicks": ("email.clicked", {}),
    "hardBounces": ("email.bounced", {"bounce_type": "hard"}),
    "softBounces": ("email.bounced", {"bounce_type": "soft"}),
    "bounces": ("email.bounced", {}),
    "spam": ("email.complained", {}),
    "unsubscribed": ("email.unsubscribed", {}),
}


def blacklist_target(status: str) -> bool | None:
    """The emailBlacklisted value a subscription status calls for (None: leave it alone)."""
    if status in BLACKLISTED_STATUSES:
        return True
    if status == "subscribed":
        return False
    return None


def valid_email(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except InvalidEmail:
        return None


def contact_row(contact: dict[str, Any], reverse: dict[str, str], list_names: dict[int, str]) -> dict[str, Any]:
    """A GET /contacts item as a canonical contact row."""
    row: dict[str, Any] = {"email": contact["email"]}
    for name, value in (contact.get("attributes") or {}).items():
        if value in (None, ""):
            continue
        row[reverse.get(name.upper(), name.lower())] = value
    # Brevo's own view (its id, list memberships) is recorded on the identity, not as
    # attributes: lists are written by segsync and must not echo back as attribute changes.
    row["external_id"] = str(contact["id"])
    blacklisted = bool(contact.get("emailBlacklisted"))
    row["external"] = {
        # In segsync's destination vocabulary, so the core can see a system drift back to
        # mailable after an opt-out (segsync.sync.diff).
        "status": "unsubscribed" if blacklisted else "subscribed",
        "lists": sorted(list_names.get(i, str(i)) for i in contact.get("listIds") or []),
        "email_blacklisted": blacklisted,
        # Brevo's record creation time: often the day segsync imported the person, so it is
        # not the contact's created_at (that would echo back as a change everywhere).
        "created_at": contact.get("createdAt"),
    }
    return row


def event_id(event: dict[str, Any]) -> str:
    """Stable across pulls: the same Brevo event always hashes to the same id."""
    key = "|".join(
        str(event.get(k, "")) for k in ("messageId", "event", "date", "email", "link")
    )
    return "brevo:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def event_row(event: dict[str, Any]) -> dict[str, Any] | None:
    mapped = EVENT_TYPES.get(event.get("event", ""))
    if mapped is None:
        return None
    type_, fixed = mapped
    properties: dict[str, Any] = {"message_id": event.get("messageId"), **fixed}
    for src, dst in (("subject", "subject"), ("tag", "tag"), ("link", "url"), ("reason", "reason"), ("templateId", "template_id")):
        if event.get(src) is not None:
            properties[dst] = event[src]
    return {
        "email": event["email"],
        "type": type_,
        "timestamp": event["date"],
        "id": event_id(event),
        "properties": properties,
    }

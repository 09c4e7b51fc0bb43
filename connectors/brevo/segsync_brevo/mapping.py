"""Translations between Brevo's records and segsync's canonical ones."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from segsync import (
    MAILABLE_STATUSES,
    OPT_OUT_STATUSES,
    InvalidEmail,
    mask_email,
    normalize_email,
    payload,
)

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


def blacklist_target(status: str, previous: str | None = None) -> bool | None:
    """The emailBlacklisted value a subscription status calls for (None: leave it alone).

    Brevo mails every contact that is not blocklisted, so consent withdrawn from a mailable
    contact (``none`` after ``subscribed`` or ``pending``) blocklists it, as Mailchimp's
    connector unsubscribes it.
    """
    if status in OPT_OUT_STATUSES:
        return True
    if status == "subscribed":
        return False
    if status == "none" and previous in MAILABLE_STATUSES:
        return True
    return None


def no_consent_refusal(status: str, previous: str | None) -> str | None:
    """Why a new contact must not be added to Brevo at all, or None.

    Brevo has neither a "no consent" nor a "pending" state: a contact it holds is mailed unless
    blocklisted, so a new contact without a confirmed opt-in stays out (blocklisting it instead
    would read back as an opt-out the person never made).
    """
    if previous is not None:
        return None
    if status == "none":
        return "no marketing consent on record; the contact is not added to Brevo"
    if status == "pending":
        return ("the opt-in is not confirmed yet and Brevo has no pending state; the contact is "
                "added once it is confirmed")
    return None


def valid_email(raw: str) -> str | None:
    try:
        return normalize_email(raw)
    except InvalidEmail:
        return None


def contact_name(contact: Any, position: int) -> str:
    """How record errors name a Brevo contact: its id, else its masked address, else its place."""
    if isinstance(contact, Mapping):
        if isinstance(contact.get("id"), (int, str)) and not isinstance(contact.get("id"), bool):
            return f"contact {str(contact['id'])[:64]}"
        if isinstance(contact.get("email"), str):
            return f"contact {mask_email(contact['email'])}"
    return f"contact #{position + 1} of its page"


def contact_row(contact: Any, reverse: Mapping[str, str], list_names: Mapping[int, str]) -> dict[str, Any]:
    """A GET /contacts item as a canonical contact row (:class:`PayloadError` names a bad field)."""
    contact = payload.record(contact, "contact")
    row: dict[str, Any] = {"email": payload.text(contact, "email", required=True)}
    for name, value in payload.obj(contact, "attributes").items():
        if value in (None, ""):
            continue
        row[reverse.get(str(name).upper(), str(name).lower())] = value
    # Brevo's own view (its id, list memberships) is recorded on the identity, not as
    # attributes: lists are written by segsync and must not echo back as attribute changes.
    row["external_id"] = payload.identifier(contact, "id", required=True)
    lists = []
    for list_id in payload.items(contact, "listIds"):
        if not isinstance(list_id, int) or isinstance(list_id, bool):
            raise payload.PayloadError("listIds", f"not a list of list ids: {payload.show(list_id)}")
        lists.append(list_names.get(list_id, str(list_id)))
    blacklisted = payload.flag(contact, "emailBlacklisted")
    row["external"] = {
        # In segsync's destination vocabulary, so the core can see a system drift back to
        # mailable after an opt-out (segsync.sync.diff).
        "status": "unsubscribed" if blacklisted else "subscribed",
        "lists": sorted(lists),
        "email_blacklisted": blacklisted,
        # Brevo's record creation time: often the day segsync imported the person, so it is
        # not the contact's created_at (that would echo back as a change everywhere).
        "created_at": payload.text(contact, "createdAt"),
    }
    return row


def blocklist_consent_row(contact: Any) -> dict[str, Any] | None:
    """A GET /contacts item's ``emailBlacklisted`` as an opt-out (None when not blocklisted:
    a contact that is not blocklisted carries no opt-in)."""
    contact = payload.record(contact, "contact")
    if not payload.flag(contact, "emailBlacklisted"):
        return None
    return {
        "email": payload.text(contact, "email", required=True),
        "channel": "email",
        "purpose": "marketing",
        "status": "opted_out",
        "timestamp": payload.timestamp(contact, "modifiedAt", required=True)[0],
        "method": "sync",
        "evidence": "Brevo contact emailBlacklisted=true",
    }


def blocked_name(item: Any, position: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("email"), str):
        return f"blocked contact {mask_email(item['email'])}"
    return f"blocked contact #{position + 1} of its page"


def blocked_consent_row(item: Any) -> dict[str, Any]:
    """A GET /smtp/blockedContacts item as a consent row (the reason code decides its status)."""
    item = payload.record(item, "blocked contact")
    reason = payload.obj(item, "reason")
    code = payload.text(reason, "code", required=True, prefix="reason.")
    status, method = BLOCK_REASONS.get(code, ("opted_out", "sync"))
    message = payload.text(reason, "message", prefix="reason.") or ""
    return {
        "email": payload.text(item, "email", required=True),
        "channel": "email",
        "purpose": "marketing",
        "status": status,
        "timestamp": payload.timestamp(item, "blockedAt", required=True)[0],
        "method": method,
        "evidence": f"Brevo transactional blocklist: {code} ({message}), "
        f"sender {payload.text(item, 'senderEmail') or ''}",
    }


def event_id(event: dict[str, Any]) -> str:
    """Stable across pulls: the same Brevo event always hashes to the same id."""
    key = "|".join(
        str(event.get(k, "")) for k in ("messageId", "event", "date", "email", "link")
    )
    return "brevo:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def event_name(event: Any, position: int) -> str:
    if isinstance(event, Mapping) and isinstance(event.get("messageId"), str):
        return f"event {payload.show(event['messageId'])} {payload.show(event.get('event'))}"
    return f"event #{position + 1} of its page"


def event_row(event: Any) -> dict[str, Any] | None:
    """A GET /smtp/statistics/events item as a canonical event (None: no canonical type)."""
    event = payload.record(event, "event")
    mapped = EVENT_TYPES.get(payload.text(event, "event") or "")
    if mapped is None:
        return None
    type_, fixed = mapped
    properties: dict[str, Any] = {"message_id": payload.text(event, "messageId"), **fixed}
    for src, dst in (("subject", "subject"), ("tag", "tag"), ("link", "url"), ("reason", "reason"), ("templateId", "template_id")):
        if event.get(src) is not None:
            properties[dst] = event[src]
    return {
        "email": payload.text(event, "email", required=True),
        "type": type_,
        "timestamp": payload.timestamp(event, "date", required=True)[0],
        "id": event_id(event),
        "properties": properties,
    }

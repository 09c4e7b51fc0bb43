"""Translation between Mailchimp members/reports and segsync's canonical records."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

KNOWN_ATTRIBUTES = frozenset({
    "first_name", "last_name", "company", "job_title", "department", "industry",
    "company_size", "country", "timezone", "lifecycle_stage", "created_at",
})

# Mailchimp member status -> segsync consent status. "transactional" and "archived" carry no
# marketing consent statement, so they produce no consent record (the contact row notes them).
CONSENT_STATUS = {
    "subscribed": "opted_in",
    "unsubscribed": "opted_out",
    "cleaned": "bounced",
    "pending": "pending",
}

EVENT_TYPES = {"open": "email.opened", "click": "email.clicked", "bounce": "email.bounced"}

# A member's ``source`` (Mailchimp's "Source" column) → the consent method of its opt-in. Only
# Mailchimp's own sign-up forms carry the person's own consent (method ``form``, which lifts an
# opt-out recorded elsewhere; docs/consent.md). Whatever is written through the API — "API -
# Generic" or an integration's "API - <name>", including segsync itself or a plugin going around
# the gate — is ``api``; an admin's hand entry is ``admin``; a list upload is ``import``. None of
# them lifts an opt-out. Unknown sources are ``sync`` (no consent of the person's own either).
FORM_SOURCES = frozenset({
    "hosted signup form", "embedded form", "signup form", "pop-up form", "popup form",
    "landing page", "subscriber profile", "form builder",
})
SOURCE_PREFIXES = (("api", "api"), ("admin", "admin"), ("import", "import"))


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _when(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


def contact_row(member: Mapping[str, Any], tag_to_attribute: Mapping[str, str], segment_field: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"email": member["email_address"]}
    for tag, value in (member.get("merge_fields") or {}).items():
        if value in ("", None, {}) or tag == segment_field:
            continue
        row[tag_to_attribute.get(tag, f"mailchimp_{tag.lower()}")] = value
    # Mailchimp's own view is recorded on the identity, not as attributes: status and tags are
    # written by segsync and must not echo back as attribute changes to every destination.
    row["external_id"] = member.get("id") or subscriber_hash(member["email_address"])
    row["external"] = {
        "status": member.get("status"),
        "tags": sorted(t["name"] for t in member.get("tags") or ()),
        # Sign-up time in this audience; not the contact's created_at (an import through
        # segsync would otherwise echo back as a change to every destination).
        "timestamp_signup": member.get("timestamp_signup") or None,
    }
    return row


def consent_row(member: Mapping[str, Any], list_id: str) -> dict[str, Any] | None:
    status = CONSENT_STATUS.get(member.get("status", ""))
    if status is None:
        return None
    signup, opt = _when(member.get("timestamp_signup")), _when(member.get("timestamp_opt"))
    source = member.get("source") or ""
    if status == "opted_in":
        timestamp = member.get("timestamp_opt") or member.get("timestamp_signup") or member["last_changed"]
        method = _opt_in_method(source, signup, opt, member.get("ip_opt") or "")
    elif status == "pending":
        # A form's sign-up awaiting its confirmation mail; pending written through the API or an
        # import is that writer's request, not the person's.
        timestamp = member.get("timestamp_signup") or member["last_changed"]
        method = "double_opt_in" if source_method(source) == "form" else source_method(source)
    elif status == "bounced":
        timestamp, method = member["last_changed"], "bounce"
    else:
        reason = member.get("unsubscribe_reason") or ""
        timestamp = member["last_changed"]
        method = "email_link" if "unsubscribe link" in reason.lower() else "sync"
    evidence = [f"mailchimp list {list_id} member {member['id']}", f"status {member.get('status')}"]
    if source:
        evidence.append(f"source {source}")
    if status == "opted_in" and member.get("ip_opt"):
        evidence.append(f"opt-in IP {member['ip_opt']}")
    if member.get("unsubscribe_reason"):
        evidence.append(f"reason {member['unsubscribe_reason']}")
    return {
        "email": member["email_address"], "channel": "email", "purpose": "marketing",
        "status": status, "timestamp": timestamp, "method": method, "evidence": "; ".join(evidence),
    }


def source_method(source: str) -> str:
    """The consent method a member's ``source`` stands for (see ``FORM_SOURCES``)."""
    lowered = source.strip().lower()
    for prefix, method in SOURCE_PREFIXES:
        if lowered.startswith(prefix):
            return method
    return "form" if lowered in FORM_SOURCES else "sync"


def _opt_in_method(source: str, signup: datetime | None, opt: datetime | None, ip_opt: str) -> str:
    method = source_method(source)
    # A confirmation recorded after a form's sign-up is Mailchimp's trace of a double opt-in.
    # Through the API, an import or an admin, ip_opt and timestamp_opt are whatever the writer
    # sent: no proof that the person confirmed anything.
    if method == "form" and ip_opt and signup and opt and opt > signup:
        return "double_opt_in"
    return method


def activity_events(email_row: Mapping[str, Any], campaign: Mapping[str, Any]) -> list[dict[str, Any]]:
    events = []
    for act in email_row.get("activity") or ():
        kind = EVENT_TYPES.get(act.get("action", ""))
        if kind is None:
            continue
        properties: dict[str, Any] = {"campaign_id": campaign["id"], "list_id": campaign.get("list_id")}
        if act.get("url"):
            properties["url"] = act["url"]
        if act.get("type"):
            properties["bounce_type"] = act["type"]
        events.append({
            "email": email_row["email_address"], "type": kind, "timestamp": act["timestamp"],
            "id": event_id(campaign["id"], email_row["email_id"], act["action"], act["timestamp"], act.get("url")),
            "properties": properties,
        })
    return events


def unsubscribe_event(row: Mapping[str, Any], campaign: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "email": row["email_address"], "type": "email.unsubscribed", "timestamp": row["timestamp"],
        "id": event_id(campaign["id"], row["email_id"], "unsubscribe", row["timestamp"]),
        "properties": {"campaign_id": campaign["id"], "list_id": campaign.get("list_id"),
                       "reason": row.get("reason") or ""},
    }


def event_id(campaign_id: str, email_id: str, action: str, timestamp: str, url: str | None = None) -> str:
    """Stable across re-reads: the same action always yields the same id (dedup key)."""
    parts = [campaign_id, email_id, action, timestamp] + ([url] if url else [])
    return "mailchimp:" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:24]


def merge_fields_for(attributes: Mapping[str, Any], attribute_to_tag: Mapping[str, str]) -> dict[str, Any]:
    """Mapped attributes as merge fields; private keys (``_…``) and unmapped ones are left out."""
    fields = {}
    for name, value in attributes.items():
        tag = attribute_to_tag.get(name)
        if tag is None or name.startswith("_"):
            continue
        fields[tag] = "" if value is None else (value.isoformat() if isinstance(value, datetime) else value)
    return fields

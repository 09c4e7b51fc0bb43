"""Translation between Mailchimp members/reports and segsync's canonical records."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from segsync import payload

# Mailchimp member status -> segsync consent status. "transactional" and "archived" carry no
# marketing consent statement, so they produce no consent record (the contact row notes them).
CONSENT_STATUS = {
    "subscribed": "opted_in",
    "unsubscribed": "opted_out",
    "cleaned": "bounced",
    "pending": "pending",
}
NO_CONSENT_STATUSES = frozenset({"transactional", "archived"})

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


def member_name(member: Any, position: int) -> str:
    """How record errors name a member: its Mailchimp id (the hash of its address), never the
    address itself; its place in the page when it has neither."""
    if isinstance(member, Mapping):
        if isinstance(member.get("email_address"), str):
            return f"member {subscriber_hash(member['email_address'])}"
        if isinstance(member.get("id"), str) and member["id"]:
            return f"member {member['id'][:64]}"
    return f"member #{position + 1} of its page"


def contact_row(member: Any, tag_to_attribute: Mapping[str, str], segment_field: str | None) -> dict[str, Any]:
    """A member as a canonical contact row; :class:`PayloadError` names a field of the wrong shape."""
    member = payload.record(member, "member")
    email = payload.text(member, "email_address", required=True)
    row: dict[str, Any] = {"email": email}
    for tag, value in payload.obj(member, "merge_fields").items():
        if value in ("", None, {}) or tag == segment_field:
            continue
        row[tag_to_attribute.get(tag, f"mailchimp_{str(tag).lower()}")] = value
    tags = []
    for tag in payload.items(member, "tags"):
        name = tag.get("name") if isinstance(tag, Mapping) else None
        if not isinstance(name, str):
            raise payload.PayloadError("tags", f"an entry is not an object with a name: {payload.show(tag)}")
        tags.append(name)
    # Mailchimp's own view is recorded on the identity, not as attributes: status and tags are
    # written by segsync and must not echo back as attribute changes to every destination.
    row["external_id"] = payload.text(member, "id") or subscriber_hash(email)
    row["external"] = {
        "status": payload.text(member, "status"),
        "tags": sorted(tags),
        # Sign-up time in this audience; not the contact's created_at (an import through
        # segsync would otherwise echo back as a change to every destination).
        "timestamp_signup": payload.text(member, "timestamp_signup"),
    }
    return row


def consent_row(member: Any, list_id: str) -> dict[str, Any] | None:
    """A member's consent as a canonical row (None for statuses that state none: transactional,
    archived); :class:`PayloadError` names a field of the wrong shape or an unknown status."""
    member = payload.record(member, "member")
    email = payload.text(member, "email_address", required=True)
    raw_status = payload.text(member, "status", required=True)
    if raw_status in NO_CONSENT_STATUSES:
        return None
    status = CONSENT_STATUS.get(raw_status)
    if status is None:
        raise payload.PayloadError(
            "status", f"unknown Mailchimp member status {payload.show(raw_status)}; one of "
            + ", ".join(sorted({*CONSENT_STATUS, *NO_CONSENT_STATUSES})))
    signup = payload.timestamp(member, "timestamp_signup")
    opt = payload.timestamp(member, "timestamp_opt")
    source = payload.text(member, "source") or ""
    ip_opt = payload.text(member, "ip_opt") or ""
    reason = payload.text(member, "unsubscribe_reason") or ""

    def last_changed() -> str:
        return payload.timestamp(member, "last_changed", required=True)[0]

    if status == "opted_in":
        timestamp = (opt or signup or (last_changed(),))[0]
        method = _opt_in_method(source, signup and signup[1], opt and opt[1], ip_opt)
    elif status == "pending":
        # A form's sign-up awaiting its confirmation mail; pending written through the API or an
        # import is that writer's request, not the person's.
        timestamp = signup[0] if signup else last_changed()
        method = "double_opt_in" if source_method(source) == "form" else source_method(source)
    elif status == "bounced":
        timestamp, method = last_changed(), "bounce"
    else:
        timestamp = last_changed()
        method = "email_link" if "unsubscribe link" in reason.lower() else "sync"
    evidence = [f"mailchimp list {list_id} member {payload.text(member, 'id') or subscriber_hash(email)}",
                f"status {raw_status}"]
    if source:
        evidence.append(f"source {source}")
    if status == "opted_in" and ip_opt:
        evidence.append(f"opt-in IP {ip_opt}")
    if reason:
        evidence.append(f"reason {reason}")
    return {
        "email": email, "channel": "email", "purpose": "marketing",
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


def activity_name(row: Any, position: int) -> str:
    """How record errors name a row of a campaign's email activity or unsubscribes."""
    if isinstance(row, Mapping) and isinstance(row.get("email_id"), str) and row["email_id"]:
        return f"campaign email {row['email_id'][:64]}"
    if isinstance(row, Mapping) and isinstance(row.get("email_address"), str):
        return f"campaign email {subscriber_hash(row['email_address'])}"
    return f"campaign email #{position + 1} of its page"


def activity_events(email_row: Any, campaign: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One recipient's opens, clicks and bounces of a campaign as canonical events; other
    actions are skipped. :class:`PayloadError` names a field of the wrong shape."""
    email_row = payload.record(email_row, "email activity")
    email = payload.text(email_row, "email_address", required=True)
    email_id = payload.text(email_row, "email_id", required=True)
    events = []
    for act in payload.items(email_row, "activity"):
        act = payload.record(act, "activity")
        action = payload.text(act, "action", prefix="activity.") or ""
        kind = EVENT_TYPES.get(action)
        if kind is None:
            continue
        when = payload.timestamp(act, "timestamp", required=True)[0]
        url = payload.text(act, "url", prefix="activity.")
        properties: dict[str, Any] = {"campaign_id": campaign["id"], "list_id": campaign.get("list_id")}
        if url:
            properties["url"] = url
        bounce_type = payload.text(act, "type", prefix="activity.")
        if bounce_type:
            properties["bounce_type"] = bounce_type
        events.append({
            "email": email, "type": kind, "timestamp": when,
            "id": event_id(campaign["id"], email_id, action, when, url),
            "properties": properties,
        })
    return events


def unsubscribe_event(row: Any, campaign: Mapping[str, Any], since: datetime | None = None) -> dict[str, Any] | None:
    """An unsubscribe of a campaign's recipient as a canonical event (None: not after ``since``)."""
    row = payload.record(row, "unsubscribe")
    raw, when = payload.timestamp(row, "timestamp", required=True)
    if since is not None and when <= since:
        return None
    return {
        "email": payload.text(row, "email_address", required=True), "type": "email.unsubscribed", "timestamp": raw,
        "id": event_id(campaign["id"], payload.text(row, "email_id", required=True), "unsubscribe", raw),
        "properties": {"campaign_id": campaign["id"], "list_id": campaign.get("list_id"),
                       "reason": payload.text(row, "reason") or ""},
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

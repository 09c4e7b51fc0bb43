"""Translations between HubSpot's contact records and segsync's canonical ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from segsync import payload

# HubSpot's internal lifecycle stage values -> segsync's stage words (docs/records.md); values
# not listed (a custom stage's numeric id) pass through unchanged.
LIFECYCLE_FROM_HUBSPOT = {
    "marketingqualifiedlead": "mql",
    "salesqualifiedlead": "sql",
}
LIFECYCLE_TO_HUBSPOT = {v: k for k, v in LIFECYCLE_FROM_HUBSPOT.items()}

# Read with every contact besides the mapped attributes: the record's time (cursor) and the
# "unsubscribed from all email" flag (consent).
LAST_MODIFIED = "lastmodifieddate"
OPTED_OUT = "hs_email_optout"

# v4 subscription statuses -> consent ledger statuses (NOT_SPECIFIED carries no consent).
SUBSCRIPTION_STATUS = {"SUBSCRIBED": "opted_in", "UNSUBSCRIBED": "opted_out"}


def contact_name(contact: Any, position: int) -> str:
    """How record errors name a HubSpot contact: its id, else its place in the page."""
    if isinstance(contact, Mapping) and isinstance(contact.get("id"), (str, int)) \
            and not isinstance(contact.get("id"), bool):
        return f"contact {str(contact['id'])[:64]}"
    return f"contact #{position + 1} of its page"


def modified_ms(contact: Any) -> int | None:
    """A search result's ``lastmodifieddate`` in epoch milliseconds (the search cursor's unit);
    None when it has none that parses (its mapping then reports it)."""
    try:
        found = payload.timestamp(payload.obj(payload.record(contact), "properties"), LAST_MODIFIED)
    except payload.PayloadError:
        return None
    return to_ms(found[1]) if found else None


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def iso_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def contact_row(contact: Any, reverse: Mapping[str, str]) -> dict[str, Any]:
    """A search result as a canonical contact row (:class:`PayloadError` names a bad field).

    ``reverse`` maps HubSpot property names to canonical attribute names. Empty values are left
    out: in HubSpot an empty property is "no value", and segsync never erases with one.
    """
    contact = payload.record(contact, "contact")
    properties = payload.obj(contact, "properties")
    row: dict[str, Any] = {
        "email": payload.text(properties, "email", required=True, prefix="properties."),
        "external_id": payload.identifier(contact, "id", required=True),
    }
    for hubspot_name, canonical in reverse.items():
        if hubspot_name == "email":
            continue
        value = payload.text(properties, hubspot_name, prefix="properties.")
        if value is None:
            continue
        if canonical == "lifecycle_stage":
            value = LIFECYCLE_FROM_HUBSPOT.get(value, value)
        elif canonical == "country" and len(value.strip()) != 2:
            # HubSpot's country is free text ("Germany"); segsync's is an ISO code. A name is
            # kept, as a custom attribute, rather than refused.
            canonical = "country_name"
        row[canonical] = value
    return row


def hubspot_properties(attributes: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, str]:
    """A change's attributes as HubSpot property values (text; HubSpot stores every property as
    text). Attributes without a property in ``mapping`` are not sent; None is sent as "" (which
    clears the property)."""
    properties: dict[str, str] = {}
    for name, value in attributes.items():
        target = mapping.get(name)
        if target is None:
            continue
        if value is None:
            properties[target] = ""
        elif isinstance(value, bool):
            properties[target] = "true" if value else "false"
        elif name == "lifecycle_stage":
            properties[target] = LIFECYCLE_TO_HUBSPOT.get(str(value), str(value))
        else:
            properties[target] = str(value)
    return properties


def checkbox_value(segments: Iterable[str]) -> str:
    """A multi-checkbox property's value: its options joined by ';' (empty clears it)."""
    return ";".join(sorted(set(segments)))


def optout_row(contact: Any, wide: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The consent row of a contact whose ``hs_email_optout`` is true: opted out of all email.

    ``wide`` is the contact's portal-wide status from the subscriptions API; its timestamp is
    when the person opted out. Without it (the API did not report one) the record's last
    modification is used: never earlier than the opt-out, so the opt-out still wins over any
    older opt-in.
    """
    contact = payload.record(contact, "contact")
    properties = payload.obj(contact, "properties")
    if payload.text(properties, OPTED_OUT, prefix="properties.") != "true":
        return None
    email = payload.text(properties, "email", required=True, prefix="properties.")
    when = None
    if wide is not None:
        found = payload.timestamp(wide, "timestamp")
        when = found[0] if found else None
    if when is None:
        when = payload.text(properties, LAST_MODIFIED, required=True, prefix="properties.")
    return {"email": email, "channel": "email", "purpose": "marketing", "status": "opted_out",
            "timestamp": when, "method": "sync", "evidence": "HubSpot: unsubscribed from all email"}


def subscription_row(status: Any) -> dict[str, Any] | None:
    """A v4 subscription status of the configured subscription type as a consent row.

    HubSpot does not say whether a SUBSCRIBED status is the person's own act (a form, a
    preferences page) or another tool's API write, so an opt-in read from HubSpot has method
    ``sync``: it counts as consent where nothing says otherwise, but never lifts an opt-out,
    a complaint or a bounce recorded anywhere (docs/consent.md).
    """
    status = payload.record(status, "status")
    state = payload.text(status, "status", required=True)
    if state == "NOT_SPECIFIED":
        return None
    if state not in SUBSCRIPTION_STATUS:
        raise payload.PayloadError("status", f"not a subscription status: {payload.show(state)}")
    when = payload.timestamp(status, "timestamp", required=True)
    return {
        "email": payload.text(status, "subscriberIdString", required=True),
        "channel": "email",
        "purpose": "marketing",
        "status": SUBSCRIPTION_STATUS[state],
        "timestamp": when[0],  # type: ignore[index]
        "method": "sync",
        "evidence": f"HubSpot subscription {payload.identifier(status, 'subscriptionId')}: "
                    f"{payload.text(status, 'source') or 'no source'}",
    }

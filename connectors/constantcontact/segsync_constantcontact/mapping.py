"""Translations between Constant Contact's contacts and segsync's canonical records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segsync import mask_email, payload

# email_address.permission_to_send -> segsync's destination vocabulary (what a system holds),
# recorded on the identity so the diff sees a contact drift back to mailable after an opt-out.
HELD_STATUS = {
    "explicit": "subscribed",
    "implicit": "subscribed",
    "pending_confirmation": "pending",
    "unsubscribed": "unsubscribed",
    "not_set": "none",
    "temp_hold": "none",
}
# Permissions that state no consent either way: no consent record is pulled for them.
NO_CONSENT = frozenset({"not_set", "temp_hold"})
# The contact's own action: only these opt-ins may lift an opt-out (docs/consent.md).
OWN_SOURCE = "Contact"


def contact_name(contact: Any, position: int) -> str:
    """How record errors name a contact: its id, else its masked address, else its place."""
    if isinstance(contact, Mapping):
        if isinstance(contact.get("contact_id"), str) and contact["contact_id"]:
            return f"contact {contact['contact_id'][:64]}"
        email = contact.get("email_address")
        if isinstance(email, Mapping) and isinstance(email.get("address"), str):
            return f"contact {mask_email(email['address'])}"
    return f"contact #{position + 1} of its page"


def _email(contact: Mapping[str, Any]) -> Mapping[str, Any]:
    email = payload.obj(contact, "email_address")
    if not email:
        raise payload.PayloadError("email_address", "missing")
    return email


def _permission(email: Mapping[str, Any]) -> str:
    permission = payload.text(email, "permission_to_send", required=True, prefix="email_address.")
    if permission not in HELD_STATUS:
        raise payload.PayloadError(
            "email_address.permission_to_send",
            f"unknown permission {payload.show(permission)}; one of {', '.join(sorted(HELD_STATUS))}")
    return permission


def _ids(contact: Mapping[str, Any], key: str, names: Mapping[str, str]) -> list[str]:
    found = []
    for value in payload.items(contact, key):
        if not isinstance(value, str):
            raise payload.PayloadError(key, f"not a list of ids: {payload.show(value)}")
        found.append(names.get(value, value))
    return sorted(found)


def contact_row(
    contact: Any,
    reverse: Mapping[str, str],
    field_names: Mapping[str, str],
    list_names: Mapping[str, str],
    tag_names: Mapping[str, str],
) -> dict[str, Any]:
    """A GET /contacts item as a canonical contact row (:class:`PayloadError` names a bad field).

    ``reverse`` maps import columns (``first_name``, ``cf:plan``) back to attributes;
    ``field_names`` custom field ids to names; ``list_names``/``tag_names`` ids to names.
    """
    contact = payload.record(contact, "contact")
    email = _email(contact)
    row: dict[str, Any] = {"email": payload.text(email, "address", required=True, prefix="email_address.")}
    for prop in ("first_name", "last_name", "job_title", "company_name"):
        value = payload.text(contact, prop)
        if value is not None:
            row[reverse.get(prop, prop)] = value
    for position, field in enumerate(payload.items(contact, "custom_fields")):
        if not isinstance(field, Mapping):
            raise payload.PayloadError("custom_fields", f"entry {position + 1} is not an object: {payload.show(field)}")
        field_id = payload.text(field, "custom_field_id", required=True, prefix="custom_fields.")
        value = field.get("value")
        if value in (None, ""):
            continue
        name = field_names.get(field_id, field_id)
        column = f"cf:{name}"
        row[reverse.get(column, f"constantcontact_{name}".lower())] = value
    # Constant Contact's own view is recorded on the identity, not as attributes: lists, tags
    # and permission are written by segsync and must not echo back as attribute changes.
    row["external_id"] = payload.text(contact, "contact_id", required=True)
    permission = _permission(email)
    row["external"] = {
        "status": HELD_STATUS[permission],
        "permission_to_send": permission,
        "lists": _ids(contact, "list_memberships", list_names),
        "tags": _ids(contact, "taggings", tag_names),
    }
    return row


def consent_row(contact: Any) -> dict[str, Any] | None:
    """A contact's ``email_address`` as a consent record (None for ``not_set``/``temp_hold``).

    * ``explicit`` is an opt-in. Its method is the person's own only when Constant Contact says
      the contact opted in (``opt_in_source`` ``Contact``): ``double_opt_in`` once they
      confirmed (``confirm_status`` ``confirmed``), else ``form``. An opt-in by the account
      (``Account``: an admin, an import, any API client) is ``api`` and lifts no opt-out.
    * ``implicit`` (what every import and every contact added by the account gets) is an
      opt-in by ``import``: mailable, never lifting an opt-out.
    * ``pending_confirmation`` is ``pending``; ``unsubscribed`` is an opt-out, by the contact
      (``opt_out_source`` ``Contact``: the unsubscribe link or their request, ``email_link``)
      or by the account (``admin``).
    """
    contact = payload.record(contact, "contact")
    email = _email(contact)
    address = payload.text(email, "address", required=True, prefix="email_address.")
    permission = _permission(email)
    if permission in NO_CONSENT:
        return None

    def when(*keys: str) -> str:
        for key in keys:
            found = payload.timestamp(email, key)
            if found:
                return found[0]
        return payload.timestamp(contact, "updated_at", required=True)[0]

    opt_in_source = payload.text(email, "opt_in_source") or ""
    evidence = [f"constantcontact contact {payload.text(contact, 'contact_id') or '?'}",
                f"permission_to_send {permission}"]
    if permission == "unsubscribed":
        source = payload.text(email, "opt_out_source") or ""
        status, timestamp = "opted_out", when("opt_out_date", "updated_at")
        method = "email_link" if source == OWN_SOURCE else "admin"
        evidence.append(f"opt_out_source {source or '?'}")
        reason = payload.text(email, "opt_out_reason")
        if reason:
            evidence.append(f"reason {reason}")
    elif permission == "pending_confirmation":
        status, timestamp = "pending", when("created_at", "updated_at")
        method = "double_opt_in" if opt_in_source == OWN_SOURCE else "api"
    elif permission == "explicit":
        status, timestamp = "opted_in", when("opt_in_date", "updated_at")
        if opt_in_source == OWN_SOURCE:
            confirmed = payload.text(email, "confirm_status") == "confirmed"
            method = "double_opt_in" if confirmed else "form"
        else:
            method = "api"
        evidence.append(f"opt_in_source {opt_in_source or '?'}")
    else:  # implicit
        status, timestamp, method = "opted_in", when("opt_in_date", "created_at", "updated_at"), "import"
    return {
        "email": address, "channel": "email", "purpose": "marketing", "status": status,
        "timestamp": timestamp, "method": method, "evidence": "; ".join(evidence),
    }


def import_row(email: str, attributes: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
    """One contacts_json_import entry: the address and every mapped, non-empty attribute."""
    row: dict[str, Any] = {"email": email}
    for attribute, column in columns.items():
        value = attributes.get(attribute)
        if value is None or value == "":
            continue
        row[column] = value if isinstance(value, str) else str(value)
    return row

"""The emulated HubSpot account: contacts, contact properties, static lists and email
subscription statuses, with HubSpot's validation rules. Thread-safe; no HTTP here (routes.py).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from segsync_hubspot.limits import CONTACT_OBJECT_TYPE

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

LIFECYCLE_STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
                    "customer", "evangelist", "other")
LEAD_STATUSES = ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT",
                 "CONNECTED", "BAD_TIMING")
# Properties HubSpot maintains itself: a write to one is a validation error.
READ_ONLY = ("hs_object_id", "lastmodifieddate", "createdate", "hs_email_optout")
DEFAULT_SUBSCRIPTION = {"id": "1", "name": "Marketing Information",
                        "description": "Marketing offers and updates."}


class ApiError(Exception):
    """An error answer: HTTP status, HubSpot's category and message (routes.py renders it)."""

    def __init__(self, status: int, category: str, message: str, context: Mapping[str, list[str]] | None = None):
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = dict(context or {})


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def parse_time(value: str) -> int:
    """A filter value: epoch milliseconds or an ISO 8601 date-time (HubSpot takes both)."""
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "VALIDATION_ERROR", f"{value!r} is not a valid date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


def _property(name: str, type_: str = "string", field_type: str = "text", options: Iterable[str] = (),
              read_only: bool = False, description: str = "") -> dict[str, Any]:
    return {
        "name": name, "label": name, "description": description, "type": type_, "fieldType": field_type,
        "groupName": "contactinformation", "hubspotDefined": True,
        "options": [_option(o, i) for i, o in enumerate(options)],
        "modificationMetadata": {"readOnlyValue": read_only, "archivable": not read_only, "readOnlyDefinition": True},
    }


def _option(value: str, order: int, label: str | None = None, hidden: bool = False) -> dict[str, Any]:
    return {"label": label or value, "value": value, "displayOrder": order, "hidden": hidden}


def default_properties() -> dict[str, dict[str, Any]]:
    found = {name: _property(name) for name in ("email", "firstname", "lastname", "company", "jobtitle",
                                                 "industry", "country", "phone", "city")}
    found["lifecyclestage"] = _property("lifecyclestage", "enumeration", "radio", LIFECYCLE_STAGES)
    found["hs_lead_status"] = _property("hs_lead_status", "enumeration", "radio", LEAD_STATUSES)
    found["hs_email_optout"] = _property("hs_email_optout", "enumeration", "booleancheckbox", ("true", "false"),
                                         read_only=True)
    for name in ("hs_object_id", "lastmodifieddate", "createdate"):
        found[name] = _property(name, "datetime" if name != "hs_object_id" else "number",
                                "date" if name != "hs_object_id" else "number", read_only=True)
    return found


def _as_option(given: Any, order: int) -> dict[str, Any]:
    """An option as HubSpot stores it: label, value, displayOrder, hidden."""
    if not isinstance(given, dict) or not isinstance(given.get("value"), str):
        raise ApiError(400, "VALIDATION_ERROR", "an option needs a value (and a label)")
    return _option(given["value"], int(given.get("displayOrder", order)), given.get("label"), bool(given.get("hidden")))


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    created: int
    updated: int

    def view(self, names: Iterable[str] | None) -> dict[str, Any]:
        wanted = ("email", "firstname", "lastname", "createdate", "lastmodifieddate", "hs_object_id") \
            if names is None else tuple(names)
        # HubSpot answers null for a requested property without a value; its spec says text, so
        # the emulator leaves such properties out (the connector reads both as no value).
        props = {n: self.properties[n] for n in wanted if self.properties.get(n) is not None}
        props["hs_object_id"] = self.id
        props["createdate"] = iso(self.created)
        props["lastmodifieddate"] = iso(self.updated)
        return {"id": self.id, "properties": props, "createdAt": iso(self.created),
                "updatedAt": iso(self.updated), "archived": False}


@dataclass
class StaticList:
    id: str
    name: str
    processing_type: str
    created: int
    members: set[str] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        return {"listId": self.id, "listVersion": 1, "name": self.name, "objectTypeId": CONTACT_OBJECT_TYPE,
                "processingStatus": "COMPLETE", "processingType": self.processing_type,
                "createdAt": iso(self.created), "updatedAt": iso(self.created),
                "additionalProperties": {"hs_list_size": str(len(self.members))}}


@dataclass
class SubscriptionStatus:
    status: str  # SUBSCRIBED | UNSUBSCRIBED
    timestamp: int
    source: str
    legal_basis: str | None = None


class AccountState:
    """One HubSpot account. ``clock`` gives epoch milliseconds; every write gets a strictly later
    time than the one before, so ``lastmodifieddate`` orders writes the way they happened."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._lock = threading.RLock()
        self._clock = clock or (lambda: int(time.time() * 1000))
        self._last = 0
        self._next_id = 1001
        self.contacts: dict[str, Contact] = {}
        self._by_email: dict[str, str] = {}
        self.properties = default_properties()
        self.lists: dict[str, StaticList] = {}
        self.subscriptions = [dict(DEFAULT_SUBSCRIPTION)]
        self.statuses: dict[str, dict[str, SubscriptionStatus]] = {}  # email -> subscription id -> status
        self.opted_out_of_all: dict[str, SubscriptionStatus] = {}  # email -> portal-wide unsubscribe
        self.deleted: list[str] = []  # emails given to GDPR delete, in order (tests read it)

    # -- time and ids ----------------------------------------------------------------------

    def now(self) -> int:
        with self._lock:
            self._last = max(self._clock(), self._last + 1)
            return self._last

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    # -- contacts --------------------------------------------------------------------------

    def contact_by_email(self, email: str) -> Contact | None:
        with self._lock:
            found = self._by_email.get(email.strip().lower())
            return self.contacts.get(found) if found else None

    def add_contact(self, email: str, properties: Mapping[str, str] | None = None, *, at: int | None = None) -> Contact:
        """A contact created outside the API (tests, the demo's seed data)."""
        with self._lock:
            when = at if at is not None else self.now()
            contact = Contact(self._new_id(), {"email": email.lower(), **(properties or {})}, when, when)
            self.contacts[contact.id] = contact
            self._by_email[email.lower()] = contact.id
            return contact

    def touch(self, contact: Contact, properties: Mapping[str, str], *, at: int | None = None) -> None:
        """Set properties as HubSpot itself would (no validation); the record's time moves on."""
        with self._lock:
            contact.properties.update(properties)
            contact.updated = at if at is not None else self.now()

    def upsert(self, inputs: list[Any]) -> list[tuple[Contact, bool]]:
        """Batch upsert by email. Validation is all-or-nothing, as HubSpot's: one bad input fails
        the whole batch with a 400 naming it."""
        with self._lock:
            seen: set[str] = set()
            for position, item in enumerate(inputs):
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    raise ApiError(400, "VALIDATION_ERROR", f"inputs[{position}].id is required")
                if item.get("idProperty") != "email":
                    raise ApiError(400, "VALIDATION_ERROR",
                                   f"inputs[{position}]: upserts are keyed by a unique property; use idProperty=email")
                email = item["id"].strip().lower()
                if email in seen:
                    raise ApiError(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input: [" + email + "]")
                seen.add(email)
                if not _EMAIL.match(email):
                    raise ApiError(400, "VALIDATION_ERROR", f"Property values were not valid: email {item['id']!r} "
                                   "is not a valid email address", {"INVALID_EMAIL": [item["id"]]})
                self.validate(item.get("properties") or {})
            results = []
            for item in inputs:
                email = item["id"].strip().lower()
                values = {k: v for k, v in (item.get("properties") or {}).items() if k != "email"}
                contact = self.contact_by_email(email)
                if contact is None:
                    results.append((self.add_contact(email, values), True))
                else:
                    self.touch(contact, values)
                    results.append((contact, False))
            return results

    def validate(self, values: Any) -> None:
        if not isinstance(values, dict):
            raise ApiError(400, "VALIDATION_ERROR", "properties must be an object")
        for name, value in values.items():
            definition = self.properties.get(name)
            if definition is None:
                raise ApiError(400, "VALIDATION_ERROR", f'Property values were not valid: Property "{name}" does not exist',
                               {"propertyName": [name]})
            if name in READ_ONLY:
                raise ApiError(400, "VALIDATION_ERROR",
                               f'Property values were not valid: "{name}" is a read only property; its value cannot be set.',
                               {"propertyName": [name]})
            if not isinstance(value, str):
                raise ApiError(400, "VALIDATION_ERROR", f"Property values were not valid: {name} must be text")
            if definition["type"] == "enumeration" and value != "":
                allowed = {o["value"] for o in definition["options"]}
                chosen = value.split(";") if definition["fieldType"] == "checkbox" else [value]
                for option in chosen:
                    if option not in allowed:
                        raise ApiError(400, "VALIDATION_ERROR",
                                       f'Property values were not valid: {option} was not one of the allowed options '
                                       f'for "{name}"', {"propertyName": [name], "value": [option]})

    def gdpr_delete(self, email: str) -> None:
        """Delete permanently. HubSpot also blocklists an address it does not know ("if email
        address is not found, the email address will be added to a blocklist"); the emulator
        records every address it was given and does not refuse them later."""
        with self._lock:
            self.deleted.append(email.strip().lower())
            contact = self.contact_by_email(email)
            if contact is None:
                return
            del self.contacts[contact.id]
            del self._by_email[contact.properties["email"]]
            for members in self.lists.values():
                members.members.discard(contact.id)
            self.statuses.pop(contact.properties["email"], None)
            self.opted_out_of_all.pop(contact.properties["email"], None)

    def search(self, filter_groups: list[dict[str, Any]], sort: tuple[str, bool] | None) -> list[Contact]:
        """Contacts matching any group (all filters of a group), sorted (property, ascending)
        with the record id breaking ties."""
        with self._lock:
            found = [c for c in self.contacts.values()
                     if not filter_groups or any(self._matches(c, g.get("filters") or []) for g in filter_groups)]
        if sort is None:
            return sorted(found, key=lambda c: int(c.id))
        name, ascending = sort
        found.sort(key=lambda c: (self._sort_value(c, name), int(c.id)), reverse=not ascending)
        return found

    def _value(self, contact: Contact, name: str) -> str | None:
        if name == "lastmodifieddate":
            return str(contact.updated)
        if name == "createdate":
            return str(contact.created)
        if name == "hs_object_id":
            return contact.id
        return contact.properties.get(name)

    def _sort_value(self, contact: Contact, name: str) -> Any:
        value = self._value(contact, name)
        if name in ("lastmodifieddate", "createdate", "hs_object_id"):
            return int(value or 0)
        return value or ""

    def _matches(self, contact: Contact, filters: list[dict[str, Any]]) -> bool:
        for f in filters:
            name, op = f.get("propertyName"), f.get("operator")
            actual = self._value(contact, name)
            timed = name in ("lastmodifieddate", "createdate")
            if op == "HAS_PROPERTY":
                ok = actual not in (None, "")
            elif op == "NOT_HAS_PROPERTY":
                ok = actual in (None, "")
            elif op in ("IN", "NOT_IN"):
                values = [str(v).lower() for v in f.get("values") or []]
                ok = (str(actual or "").lower() in values) == (op == "IN")
            elif op in ("EQ", "NEQ", "GT", "GTE", "LT", "LTE"):
                wanted = str(f.get("value", ""))
                if timed:
                    left, right = int(actual or 0), parse_time(wanted)
                else:
                    left, right = str(actual or "").lower(), wanted.lower()
                ok = {"EQ": left == right, "NEQ": left != right, "GT": left > right, "GTE": left >= right,
                      "LT": left < right, "LTE": left <= right}[op]
            else:
                raise ApiError(400, "VALIDATION_ERROR", f"operator {op!r} is not supported here")
            if not ok:
                return False
        return True

    # -- properties ------------------------------------------------------------------------

    def create_property(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = body.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ApiError(400, "VALIDATION_ERROR", f"property name {name!r} is not valid")
            if name in self.properties:
                raise ApiError(409, "OBJECT_ALREADY_EXISTS", f"A property named {name!r} already exists.")
            definition = _property(name, str(body.get("type", "string")), str(body.get("fieldType", "text")),
                                   description=str(body.get("description") or ""))
            definition.update(label=body.get("label") or name, hubspotDefined=False,
                              modificationMetadata={"readOnlyValue": False, "archivable": True,
                                                    "readOnlyDefinition": False})
            definition["options"] = [_as_option(o, i) for i, o in enumerate(body.get("options") or [])]
            self.properties[name] = definition
            return definition

    def update_property(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            definition = self.properties.get(name)
            if definition is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
            if "options" in body:  # PATCH replaces the whole option list
                definition["options"] = [_as_option(o, i) for i, o in enumerate(body["options"] or [])]
            if "label" in body:
                definition["label"] = body["label"]
            return definition

    def add_segment_property(self, name: str, options: Iterable[str] = ()) -> None:
        """The multi-checkbox property `segsync check --fix` creates."""
        self.create_property({"name": name, "label": "segsync segments", "type": "enumeration",
                              "fieldType": "checkbox", "options": [_option(o, i) for i, o in enumerate(options)]})

    # -- lists -----------------------------------------------------------------------------

    def create_list(self, name: str, processing_type: str = "MANUAL") -> StaticList:
        with self._lock:
            if any(existing.name.lower() == name.lower() for existing in self.lists.values()):
                raise ApiError(400, "VALIDATION_ERROR", f"A list named {name} already exists.")
            found = StaticList(self._new_id(), name, processing_type, self.now())
            self.lists[found.id] = found
            return found

    def list_by_name(self, name: str) -> StaticList | None:
        with self._lock:
            return next((found for found in self.lists.values() if found.name.lower() == name.lower()), None)

    def change_members(self, list_id: str, add: list[str], remove: list[str]) -> dict[str, list[str]]:
        with self._lock:
            found = self.lists.get(list_id)
            if found is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            if found.processing_type not in ("MANUAL", "SNAPSHOT"):
                raise ApiError(400, "VALIDATION_ERROR",
                               f"List {list_id} is {found.processing_type}; only MANUAL and SNAPSHOT lists take records")
            added, removed, missing = [], [], []
            for record in add:
                if record not in self.contacts:
                    missing.append(record)
                elif record not in found.members:
                    found.members.add(record)
                    added.append(record)
            for record in remove:
                if record not in self.contacts:
                    missing.append(record)
                elif record in found.members:
                    found.members.discard(record)
                    removed.append(record)
            return {"recordsIdsAdded": added, "recordIdsRemoved": removed, "recordIdsMissing": missing}

    def member_emails(self, name: str) -> set[str]:
        """Who is in the list named ``name`` (tests)."""
        found = self.list_by_name(name)
        return set() if found is None else {self.contacts[i].properties["email"] for i in found.members}

    # -- subscriptions ---------------------------------------------------------------------

    def subscription_ids(self) -> set[str]:
        return {str(s["id"]) for s in self.subscriptions}

    def unsubscribe_all(self, email: str, source: str = "Public API") -> SubscriptionStatus:
        with self._lock:
            email = email.strip().lower()
            at = self.now()
            wide = SubscriptionStatus("UNSUBSCRIBED", at, source)
            self.opted_out_of_all[email] = wide
            for sid in self.subscription_ids():
                self.statuses.setdefault(email, {})[sid] = SubscriptionStatus("UNSUBSCRIBED", at, source)
            contact = self.contact_by_email(email)
            if contact is not None:
                self.touch(contact, {"hs_email_optout": "true"}, at=at)
            return wide

    def set_status(self, email: str, subscription_id: str, status: str, source: str = "Public API",
                   legal_basis: str | None = None) -> SubscriptionStatus:
        with self._lock:
            email = email.strip().lower()
            if subscription_id not in self.subscription_ids():
                raise ApiError(400, "VALIDATION_ERROR", f"subscription {subscription_id} does not exist")
            at = self.now()
            record = SubscriptionStatus(status, at, source, legal_basis)
            self.statuses.setdefault(email, {})[subscription_id] = record
            contact = self.contact_by_email(email)
            if status == "SUBSCRIBED" and email in self.opted_out_of_all:
                # v4 resubscribes a contact who opted out of all (v3 refused to).
                del self.opted_out_of_all[email]
                if contact is not None:
                    self.touch(contact, {"hs_email_optout": "false"}, at=at)
            elif contact is not None:
                self.touch(contact, {}, at=at)
            return record

    def status_view(self, email: str, subscription_id: str, record: SubscriptionStatus) -> dict[str, Any]:
        name = next(s["name"] for s in self.subscriptions if str(s["id"]) == subscription_id)
        view = {"channel": "EMAIL", "subscriberIdString": email, "subscriptionId": int(subscription_id),
                "subscriptionName": name, "status": record.status, "source": record.source,
                "timestamp": iso(record.timestamp)}
        if record.legal_basis:
            view["legalBasis"] = record.legal_basis
        return view

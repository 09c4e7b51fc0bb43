"""The emulated Constant Contact account: contacts, lists, tags, custom fields, bulk activities
and OAuth2 tokens. Plain Python, no HTTP; ``routes.py`` maps requests onto it.

Activities run asynchronously: each is applied ``activity_delay`` seconds after it was
created, at the first request after that (``advance()``), so a client must poll it.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from segsync_constantcontact.limits import IMPORT_MAX_BYTES, QUEUED_ACTIVITIES_MAX

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PERMISSIONS = ("explicit", "implicit", "not_set", "pending_confirmation", "temp_hold", "unsubscribed")
PROPERTIES = ("first_name", "last_name", "job_title", "company_name", "birthday_month", "birthday_day",
              "anniversary")


class ApiError(Exception):
    """An error answer: ``[{"error_key": key, "error_message": message}]`` with ``status``."""

    def __init__(self, status: int, key: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.key = key
        self.message = message


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Activity:
    activity_id: str
    kind: str
    body: dict[str, Any]
    created_at: datetime
    due: float  # monotonic time it is applied at
    state: str = "initialized"
    completed_at: datetime | None = None
    errors: list[str] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "activity_id": self.activity_id, "state": self.state, "created_at": iso(self.created_at),
            "updated_at": iso(self.completed_at or self.created_at),
            "percent_done": 100 if self.state == "completed" else 0,
            "activity_errors": list(self.errors), "status": dict(self.status),
            "_links": {"self": {"href": f"/v3/activities/{self.activity_id}"}},
        }
        if self.completed_at:
            out["started_at"] = iso(self.created_at)
            out["completed_at"] = iso(self.completed_at)
        return out


class ConstantContactState:
    def __init__(self, *, activity_delay: float = 0.05) -> None:
        self.activity_delay = activity_delay
        self.lock = threading.RLock()
        self.contacts: dict[str, dict[str, Any]] = {}  # contact_id -> contact, in creation order
        self.lists: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self.custom_fields: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, Activity] = {}
        self._last = datetime.now(timezone.utc)
        # OAuth2: one application and one authorization of it.
        self.client_id = "emulator-client"
        self.client_secret = "emulator-client-secret-" + secrets.token_hex(8)
        self.access_token = "emulator-access-" + secrets.token_hex(12)
        self.refresh_token = "emulator-refresh-" + secrets.token_hex(12)
        self.rotate_refresh_tokens = False
        self.tokens_issued = 0

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Strictly increasing UTC times (millisecond steps), so updated_at orders changes."""
        with self.lock:
            current = datetime.now(timezone.utc)
            current = current.replace(microsecond=current.microsecond // 1000 * 1000)
            self._last = max(current, self._last + timedelta(milliseconds=1))
            return self._last

    # -- tokens ----------------------------------------------------------------------------

    def authorized(self, token: str | None) -> bool:
        return bool(token) and secrets.compare_digest(token or "", self.access_token)

    def expire_access_token(self) -> None:
        """The access token stops working (as after its 24 hours)."""
        with self.lock:
            self.access_token = "emulator-access-" + secrets.token_hex(12)

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any]:
        with self.lock:
            if client_id != self.client_id or not secrets.compare_digest(client_secret, self.client_secret):
                raise ApiError(401, "invalid_client", "Client authentication failed.")
            if not secrets.compare_digest(refresh_token, self.refresh_token):
                raise ApiError(400, "invalid_grant", "The refresh token is invalid or expired.")
            self.access_token = "emulator-access-" + secrets.token_hex(12)
            if self.rotate_refresh_tokens:
                self.refresh_token = "emulator-refresh-" + secrets.token_hex(12)
            self.tokens_issued += 1
            return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                    "token_type": "Bearer", "expires_in": 86400, "scope": "contact_data offline_access"}

    # -- seeding (tests, the demo) ---------------------------------------------------------

    def add_list(self, name: str) -> dict[str, Any]:
        with self.lock:
            if any(item["name"] == name for item in self.lists.values()):
                raise ApiError(409, "conflict", f"A list named {name} already exists.")
            now = iso(self.now())
            item = {"list_id": str(uuid.uuid4()), "name": name, "favorite": False,
                    "created_at": now, "updated_at": now}
            self.lists[item["list_id"]] = item
            return item

    def add_tag(self, name: str) -> dict[str, Any]:
        with self.lock:
            if not name or len(name) > 255:
                raise ApiError(400, "invalid_name", "Tag names have 1 to 255 characters.")
            if any(item["name"] == name for item in self.tags.values()):
                raise ApiError(409, "conflict", f"A tag named {name} already exists.")
            now = iso(self.now())
            item = {"tag_id": str(uuid.uuid4()), "name": name, "created_at": now, "updated_at": now}
            self.tags[item["tag_id"]] = item
            return item

    def add_custom_field(self, label: str, type_: str = "string") -> dict[str, Any]:
        with self.lock:
            name = label.replace(" ", "_")
            if any(item["name"] == name for item in self.custom_fields.values()):
                raise ApiError(409, "conflict", f"A custom field named {name} already exists.")
            now = iso(self.now())
            item = {"custom_field_id": str(uuid.uuid4()), "label": label, "name": name, "type": type_,
                    "created_at": now, "updated_at": now}
            self.custom_fields[item["custom_field_id"]] = item
            return item

    def seed_contact(self, email: str, *, permission: str = "implicit", opt_in_source: str = "Account",
                     opt_out_source: str | None = None, confirmed: bool = False,
                     lists: tuple[str, ...] = (), tags: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
        """A contact as if made in Constant Contact itself (``lists``/``tags`` by name)."""
        with self.lock:
            contact = self._create(email, permission, source=opt_in_source)
            contact["email_address"]["confirm_status"] = "confirmed" if confirmed else "off"
            if permission == "unsubscribed":
                self._unsubscribe(contact, opt_out_source or "Contact", None)
            for key, value in properties.items():
                contact[key] = value
            names = {item["name"]: item["list_id"] for item in self.lists.values()}
            contact["list_memberships"] = [names.get(n) or self.add_list(n)["list_id"] for n in lists]
            tag_ids = {item["name"]: item["tag_id"] for item in self.tags.values()}
            contact["taggings"] = [tag_ids.get(n) or self.add_tag(n)["tag_id"] for n in tags]
            return contact

    # -- contacts --------------------------------------------------------------------------

    def by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.strip().lower()
        for contact in self.contacts.values():
            if contact["email_address"]["address"].lower() == wanted:
                return contact
        return None

    def _create(self, email: str, permission: str, *, source: str) -> dict[str, Any]:
        now = iso(self.now())
        contact = {
            "contact_id": str(uuid.uuid4()),
            "email_address": {"address": email, "permission_to_send": permission, "created_at": now,
                              "updated_at": now, "opt_in_source": source, "confirm_status": "off"},
            "create_source": source, "update_source": source, "created_at": now, "updated_at": now,
            "custom_fields": [], "list_memberships": [], "taggings": [],
        }
        if permission in ("explicit", "implicit"):
            contact["email_address"]["opt_in_date"] = now
        self.contacts[contact["contact_id"]] = contact
        return contact

    def _touch(self, contact: dict[str, Any]) -> None:
        contact["updated_at"] = iso(self.now())

    def _unsubscribe(self, contact: dict[str, Any], source: str, reason: str | None) -> None:
        email = contact["email_address"]
        now = iso(self.now())
        email.update(permission_to_send="unsubscribed", opt_out_source=source, opt_out_date=now, updated_at=now)
        if reason:
            email["opt_out_reason"] = reason
        # Unsubscribed contacts are members of no list.
        contact["list_memberships"] = []

    def view(self, contact: dict[str, Any], include: set[str]) -> dict[str, Any]:
        out = {k: v for k, v in contact.items()
               if k not in ("custom_fields", "list_memberships", "taggings", "phone_numbers", "street_addresses")}
        out["email_address"] = dict(contact["email_address"])
        for sub in include:
            out[sub] = list(contact.get(sub) or [])
        return out

    def post_contact(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            source = body.get("create_source")
            if source not in ("Contact", "Account"):
                raise ApiError(400, "create_source.invalid", "create_source must be Contact or Account.")
            email = body.get("email_address") or {}
            address = email.get("address")
            if not isinstance(address, str) or not EMAIL.match(address) or len(address) > 80:
                raise ApiError(400, "email_address.address.invalid", "The email address is not valid.")
            if (found := self.by_email(address)) is not None and not found.get("deleted_at"):
                raise ApiError(409, "conflict", "A contact with this email address already exists.")
            permission = email.get("permission_to_send") or "implicit"
            if permission not in PERMISSIONS:
                raise ApiError(400, "permission_to_send.invalid", f"Unknown permission {permission}.")
            contact = self._create(address, "implicit" if permission == "unsubscribed" else permission, source=source)
            if permission == "unsubscribed":
                self._unsubscribe(contact, source, None)
            for prop in PROPERTIES:
                if body.get(prop) is not None:
                    contact[prop] = body[prop]
            return contact

    def put_contact(self, contact_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            contact = self.contacts.get(contact_id)
            if contact is None:
                raise ApiError(404, "not_found", "The requested resource was not found.")
            source = body.get("update_source")
            if source not in ("Contact", "Account"):
                raise ApiError(400, "update_source.invalid", "update_source must be Contact or Account.")
            for prop in PROPERTIES:  # PUT: what is not sent is set to null
                contact[prop] = body.get(prop)
            for sub in ("custom_fields", "list_memberships", "taggings"):
                if sub in body:
                    contact[sub] = list(body[sub])
            contact.pop("deleted_at", None)  # a PUT revives a deleted contact
            contact["update_source"] = source
            wanted = (body.get("email_address") or {}).get("permission_to_send")
            email = contact["email_address"]
            if wanted == "unsubscribed" and email["permission_to_send"] != "unsubscribed":
                self._unsubscribe(contact, source, (body.get("email_address") or {}).get("opt_out_reason"))
            elif wanted and wanted != email["permission_to_send"]:
                if email["permission_to_send"] == "unsubscribed" and email.get("opt_out_source") == "Contact":
                    raise ApiError(400, "contact.unsubscribed",
                                   "The contact unsubscribed; only the contact can opt back in.")
                email.update(permission_to_send=wanted, updated_at=iso(self.now()))
            self._touch(contact)
            return contact

    def search(self, *, email: str | None = None, lists: list[str] | None = None,
               updated_after: datetime | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Contacts matching the query, in creation order (the API documents no order)."""
        with self.lock:
            found = []
            for contact in self.contacts.values():
                if status != "all" and contact.get("deleted_at"):
                    continue
                if email and contact["email_address"]["address"].lower() != email.strip().lower():
                    continue
                if lists and not set(lists) & set(contact["list_memberships"]):
                    continue
                if updated_after and datetime.fromisoformat(contact["updated_at"]) <= updated_after:
                    continue
                found.append(contact)
            return found

    # -- activities ------------------------------------------------------------------------

    def start_activity(self, kind: str, body: dict[str, Any]) -> Activity:
        with self.lock:
            queued = sum(1 for a in self.activities.values() if a.state in ("initialized", "processing"))
            if queued >= QUEUED_ACTIVITIES_MAX:
                raise ApiError(429, "too_many_requests", "You exceeded 1,000 queued activities.")
            activity = Activity(str(uuid.uuid4()), kind, body, self.now(), time.monotonic() + self.activity_delay)
            self.activities[activity.activity_id] = activity
            return activity

    def advance(self) -> None:
        """Apply every activity that is due."""
        with self.lock:
            now = time.monotonic()
            for activity in self.activities.values():
                if activity.state == "initialized" and activity.due <= now:
                    getattr(self, "_apply_" + activity.kind)(activity)
                    activity.state = "completed"
                    activity.completed_at = self.now()

    def _live(self, contact_ids: list[str]) -> list[dict[str, Any]]:
        return [self.contacts[i] for i in contact_ids if i in self.contacts and not self.contacts[i].get("deleted_at")]

    def _apply_contacts_json_import(self, activity: Activity) -> None:
        rows, list_ids = activity.body["import_data"], activity.body["list_ids"]
        fields = {item["name"]: item["custom_field_id"] for item in self.custom_fields.values()}
        status = {"items_total_count": len(rows), "person_count": 0, "error_count": 0,
                  "correctable_count": 0, "cannot_add_to_list_count": 0}
        size = 0
        for number, row in enumerate(rows, start=1):
            size += len(repr(row))
            if size > IMPORT_MAX_BYTES:  # past 4 MB the rest is dropped without a word
                break
            email = row.get("email")
            if not isinstance(email, str) or not EMAIL.match(email) or not email.isascii():
                status["correctable_count"] += 1
                activity.errors.append(f"Row {number}: invalid email address")
                continue
            unknown = [k[3:] for k in row if k.startswith("cf:") and k[3:] not in fields]
            if unknown:
                status["error_count"] += 1
                activity.errors.append(f"Row {number}: unknown custom field {unknown[0]}")
                continue
            contact = self.by_email(email)
            if contact is None or contact.get("deleted_at"):
                if contact is not None:
                    contact.pop("deleted_at", None)
                    contact["email_address"]["permission_to_send"] = "implicit"
                else:
                    contact = self._create(email, "implicit", source="Account")
            status["person_count"] += 1
            for key, value in row.items():
                if key in PROPERTIES:
                    contact[key] = value
                elif key.startswith("cf:"):
                    field_id = fields[key[3:]]
                    contact["custom_fields"] = [f for f in contact["custom_fields"] if f["custom_field_id"] != field_id]
                    contact["custom_fields"].append({"custom_field_id": field_id, "value": value})
            if contact["email_address"]["permission_to_send"] == "unsubscribed":
                status["cannot_add_to_list_count"] += 1
            else:
                contact["list_memberships"] = sorted(set(contact["list_memberships"]) | set(list_ids))
            self._touch(contact)
        activity.status = status

    def _memberships(self, activity: Activity, key: str, ids_key: str, add: bool) -> None:
        contacts = self._live(activity.body["source"]["contact_ids"])
        ids = set(activity.body[ids_key])
        for contact in contacts:
            if add and key == "list_memberships" and contact["email_address"]["permission_to_send"] == "unsubscribed":
                continue
            before = set(contact[key])
            after = before | ids if add else before - ids
            if after != before:
                contact[key] = sorted(after)
                self._touch(contact)
        activity.status = {"items_total_count": len(contacts), "items_completed_count": len(contacts)}

    def _apply_add_list_memberships(self, activity: Activity) -> None:
        self._memberships(activity, "list_memberships", "list_ids", True)

    def _apply_remove_list_memberships(self, activity: Activity) -> None:
        self._memberships(activity, "list_memberships", "list_ids", False)

    def _apply_contacts_taggings_add(self, activity: Activity) -> None:
        self._memberships(activity, "taggings", "tag_ids", True)

    def _apply_contacts_taggings_remove(self, activity: Activity) -> None:
        self._memberships(activity, "taggings", "tag_ids", False)

    def _apply_contact_delete(self, activity: Activity) -> None:
        contacts = self._live(activity.body["contact_ids"])
        for contact in contacts:
            contact["deleted_at"] = iso(self.now())[:10]
            contact["list_memberships"] = []
            self._touch(contact)
        activity.status = {"items_total_count": len(contacts), "items_completed_count": len(contacts)}

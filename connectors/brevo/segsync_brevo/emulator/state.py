"""The emulated Brevo account: contacts, lists, folders, attributes, processes, blocklists.

All mutation goes through :class:`BrevoState` under one lock, so the HTTP threads and the
import worker see a consistent account. Semantics follow Brevo's API reference (see the README
for each rule's source); where the reference is silent the rule is marked "emulator choice".
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from segsync_brevo.emulator.clock import Clock, fmt, parse
from segsync_brevo.emulator.errors import ApiError, bad_request, not_found
from segsync_brevo.limits import IMPORT_MAX_BYTES

# Close to what Brevo accepts: one @, no spaces, a dotted domain with a 2+ letter TLD.
# Imports processed at once. Brevo runs imports as background processes (202 + processId,
# queued -> in_process -> completed) and documents no limit on how many of an account's run
# together; the emulator processes a few at a time rather than one after another.
IMPORT_WORKERS = 4
IMPORT_SLICE = 5_000  # rows applied per hold of the account lock
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'!#$&*/=?^`{|}~-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")

BLOCK_REASONS = {
    "unsubscribedViaMA": "Unsubscribed via marketing automation",
    "unsubscribedViaEmail": "Unsubscribed via email",
    "adminBlocked": "Admin blocked",
    "unsubscribedViaApi": "Unsubscribed via API",
    "hardBounce": "Hard bounce",
    "contactFlaggedAsSpam": "Contact flagged as spam",
}


@dataclass
class Contact:
    id: int
    email: str
    created_at: datetime
    modified_at: datetime
    attributes: dict[str, Any] = field(default_factory=dict)
    list_ids: set[int] = field(default_factory=set)
    email_blacklisted: bool = False
    sms_blacklisted: bool = False
    registered: bool = False  # the account owner's address: DELETE answers 405

    def to_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "id": self.id,
            "emailBlacklisted": self.email_blacklisted,
            "smsBlacklisted": self.sms_blacklisted,
            "createdAt": fmt(self.created_at),
            "modifiedAt": fmt(self.modified_at),
            "listIds": sorted(self.list_ids),
            "attributes": dict(self.attributes),
        }


@dataclass
class ContactList:
    id: int
    name: str
    folder_id: int
    members: set[int] = field(default_factory=set)


@dataclass
class Process:
    id: int
    name: str
    status: str = "queued"
    info: dict[str, Any] | None = None


@dataclass
class Blocked:
    email: str
    sender_email: str
    reason: str
    blocked_at: datetime


@dataclass
class EmailEvent:
    email: str
    event: str
    date: datetime
    message_id: str
    subject: str | None = None
    tag: str | None = None
    link: str | None = None
    reason: str | None = None
    sender: str | None = None
    template_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "email": self.email,
            "date": fmt(self.date),
            "messageId": self.message_id,
            "event": self.event,
        }
        for key, value in (
            ("subject", self.subject),
            ("tag", self.tag),
            ("link", self.link),
            ("reason", self.reason),
            ("from", self.sender),
            ("templateId", self.template_id),
        ):
            if value is not None:
                out[key] = value
        return out


def _page(query: dict[str, str], default_limit: int) -> tuple[int, int]:
    return int(query.get("limit", default_limit)), int(query.get("offset", 0))


def _day(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name} must be a date (YYYY-MM-DD)") from None


class BrevoState:
    def __init__(
        self,
        *,
        account_email: str = "owner@example.com",
        import_delay: float = 0.05,
        import_rows_per_second: float = 200_000.0,
        import_workers: int = IMPORT_WORKERS,
        report_base_url: str = "",
    ) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.contacts: dict[int, Contact] = {}
        self.by_email: dict[str, int] = {}
        self.lists: dict[int, ContactList] = {}
        self.folders: dict[int, str] = {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self.processes: dict[int, Process] = {}
        self.reports: dict[str, str] = {}
        self.blocked: list[Blocked] = []
        self.events: list[EmailEvent] = []
        # Custom events (POST /v3/events), oldest first: contact_id, event_name, event_date,
        # event_properties. Brevo keeps each one (it does not deduplicate them), and an
        # automation whose entry point is the event starts: automation_starts records that
        # as ("event", name, email).
        self.custom_events: list[dict[str, Any]] = []
        self.automation_starts: list[tuple[str, str, str]] = []
        self._ids = {k: itertools.count(1) for k in ("contact", "list", "folder", "process")}
        self.import_delay = import_delay
        self.import_rows_per_second = import_rows_per_second
        self.report_base_url = report_base_url
        self._jobs: queue.Queue[tuple[Process, dict[str, Any]] | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._run_imports, name=f"brevo-import-{n}", daemon=True)
                         for n in range(max(1, import_workers))]
        for worker in self._workers:
            worker.start()
        # A fresh Brevo account: its default folder and the usual contact attributes.
        self.add_folder("Your first folder")
        for name in ("FIRSTNAME", "LASTNAME", "SMS"):
            self.attributes[name] = {"name": name, "category": "normal", "type": "text"}
        self.seed_contact(account_email, registered=True)

    def close(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)

    # -- seeding (tests, demos, benchmarks) ------------------------------------------------

    def add_folder(self, name: str) -> int:
        with self.lock:
            folder_id = next(self._ids["folder"])
            self.folders[folder_id] = name
            return folder_id

    def add_list(self, name: str, folder_id: int | None = None) -> int:
        with self.lock:
            folder = folder_id if folder_id is not None else min(self.folders)
            if folder not in self.folders:
                raise not_found("Folder ID does not exist")
            list_id = next(self._ids["list"])
            self.lists[list_id] = ContactList(list_id, name, folder)
            return list_id

    def add_attribute(self, name: str, type_: str = "text", category: str = "normal") -> None:
        with self.lock:
            self.attributes[name.upper()] = {"name": name.upper(), "category": category, "type": type_}

    def seed_contact(
        self,
        email: str,
        *,
        attributes: dict[str, Any] | None = None,
        list_ids: list[int] | tuple[int, ...] = (),
        blacklisted: bool = False,
        registered: bool = False,
        modified_at: datetime | None = None,
    ) -> int:
        with self.lock:
            contact = self._upsert(email, attributes or {}, list_ids, blacklisted or None)
            contact.registered = registered
            if modified_at is not None:
                contact.modified_at = modified_at
                contact.created_at = min(contact.created_at, modified_at)
            return contact.id

    def add_blocked(
        self, email: str, reason: str, blocked_at: datetime | None = None,
        sender_email: str = "news@example.com",
    ) -> None:
        if reason not in BLOCK_REASONS:
            raise ValueError(f"unknown block reason {reason!r}")
        with self.lock:
            self.blocked.append(
                Blocked(email.lower(), sender_email, reason, blocked_at or self.clock.now())
            )

    def add_event(self, email: str, event: str, when: datetime | None = None, **fields: Any) -> None:
        with self.lock:
            fields.setdefault("message_id", f"<{len(self.events) + 1}.emulator@brevo.local>")
            self.events.append(EmailEvent(email.lower(), event, when or self.clock.now(), **fields))

    def create_custom_event(self, body: dict[str, Any]) -> None:
        """``POST /v3/events``. The emulator asks for an existing contact (by ``email_id``,
        ``contact_id`` or ``ext_id``): segsync sends events only for contacts it wrote there."""
        name = body.get("event_name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", name):
            raise bad_request("event_name: up to 255 letters, digits, - and _")
        identifiers = body.get("identifiers") or {}
        properties = body.get("event_properties") or {}
        if not isinstance(properties, dict):
            raise bad_request("event_properties must be an object")
        with self.lock:
            if identifiers.get("contact_id") is not None:
                contact = self._lookup(str(identifiers["contact_id"]))
            elif identifiers.get("email_id"):
                contact = self._lookup(str(identifiers["email_id"]))
            else:
                raise bad_request("identifiers: at least one identifier is required")
            when = self._since(body["event_date"], "event_date") if body.get("event_date") else self.clock.now()
            self.custom_events.append({"contact_id": contact.id, "event_name": name,
                                       "event_date": fmt(when), "event_properties": dict(properties),
                                       "object_type": "contact"})
            self.automation_starts.append(("event", name, contact.email))

    def get_contact(self, identifier: str) -> dict[str, Any]:
        """``GET /v3/contacts/{identifier}`` (an address or a contact id); the emulator keeps no
        campaign statistics, so ``statistics`` is empty."""
        with self.lock:
            return {**self._lookup(identifier).to_json(), "statistics": {}}

    def get_custom_events(self, query: dict[str, str]) -> dict[str, Any]:
        """``GET /v3/events``: filtered by ``contact_id`` and ``event_name``, newest first."""
        with self.lock:
            found = list(reversed(self.custom_events))
            if "contact_id" in query:
                found = [e for e in found if str(e["contact_id"]) == query["contact_id"]]
            if "event_name" in query:
                found = [e for e in found if e["event_name"] == query["event_name"]]
            limit, offset = int(query.get("limit", 100)), int(query.get("offset", 0))
            if not 1 <= limit <= 10_000 or offset < 0:
                raise bad_request("limit must be 1 to 10000 and offset at least 0")
            return {"events": found[offset:offset + limit], "count": len(found)}

    def contact(self, email: str) -> Contact | None:
        with self.lock:
            cid = self.by_email.get(email.lower())
            return self.contacts.get(cid) if cid is not None else None

    # -- the core mutation ---------------------------------------------------------------

    def _upsert(
        self,
        email: str,
        attributes: dict[str, Any],
        list_ids: Any,
        blacklisted: bool | None,
        *,
        update_existing: bool = True,
        empty_erases: bool = False,
        now: datetime | None = None,
    ) -> Contact:
        key = email.strip().lower()
        now = now or self.clock.now()
        cid = self.by_email.get(key)
        if cid is None:
            contact = Contact(next(self._ids["contact"]), key, now, now)
            self.contacts[contact.id] = contact
            self.by_email[key] = contact.id
            changed = True
        else:
            contact = self.contacts[cid]
            changed = False
            if not update_existing:
                return contact
        for name, value in attributes.items():
            if value in ("", None):
                if empty_erases and name in contact.attributes:
                    del contact.attributes[name]
                    changed = True
                continue
            if contact.attributes.get(name) != value:
                contact.attributes[name] = value
                changed = True
        for list_id in list_ids:
            if list_id not in contact.list_ids:
                contact.list_ids.add(list_id)
                self.lists[list_id].members.add(contact.id)
                changed = True
        if blacklisted is not None and contact.email_blacklisted != blacklisted:
            contact.email_blacklisted = blacklisted
            changed = True
        if changed:
            contact.modified_at = now
        return contact

    def _known_attributes(self, attributes: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        known, unknown = {}, []
        for name, value in (attributes or {}).items():
            canonical = name.upper()
            if canonical in self.attributes:
                known[canonical] = value
            else:
                unknown.append(name)
        return known, unknown

    def _lookup(self, identifier: str) -> Contact:
        if identifier.isdigit() and int(identifier) in self.contacts:
            return self.contacts[int(identifier)]
        cid = self.by_email.get(identifier.strip().lower())
        if cid is None:
            raise not_found("Contact does not exist")
        return self.contacts[cid]

    def _require_list(self, list_id: int) -> ContactList:
        found = self.lists.get(list_id)
        if found is None:
            raise not_found("List ID does not exist")
        return found

    # -- contacts ------------------------------------------------------------------------

    def get_contacts(self, query: dict[str, str]) -> dict[str, Any]:
        limit, offset = _page(query, 50)
        with self.lock:
            rows = sorted(self.contacts.values(), key=lambda c: c.id)
            if "modifiedSince" in query:
                since = self._since(query["modifiedSince"], "modifiedSince")
                rows = [c for c in rows if c.modified_at > since]
            if "createdSince" in query:
                since = self._since(query["createdSince"], "createdSince")
                rows = [c for c in rows if c.created_at > since]
            if query.get("sort", "desc") == "desc":
                rows.reverse()
            return {"contacts": [c.to_json() for c in rows[offset : offset + limit]], "count": len(rows)}

    @staticmethod
    def _since(raw: str, name: str) -> datetime:
        try:
            return parse(raw)
        except ValueError:
            raise bad_request(f"{name} must be a UTC date-time (YYYY-MM-DDTHH:mm:ss.SSSZ)") from None

    def delete_contact(self, identifier: str) -> None:
        with self.lock:
            contact = self._lookup(identifier)
            if contact.registered:
                raise ApiError(
                    405,
                    "method_not_allowed",
                    "You're not allowed to delete registered email contact with Brevo",
                )
            for list_id in contact.list_ids:
                self.lists[list_id].members.discard(contact.id)
            del self.contacts[contact.id]
            del self.by_email[contact.email]

    def update_batch(self, body: dict[str, Any]) -> None:
        items = body.get("contacts") or []
        if not items:
            raise bad_request("contacts is missing or empty", "missing_parameter")
        with self.lock:
            resolved = []
            missing: list[int] = []
            # Validate the whole batch first: an error answer leaves nothing half-applied
            # (emulator choice; Brevo's reference documents only "204 All contacts updated").
            for index, item in enumerate(items):
                ids = [k for k in ("email", "id", "sms") if k in item]
                if len(ids) != 1:
                    raise bad_request(f"contacts[{index}]: pass exactly one of email, id or sms")
                if "sms" in item:
                    raise bad_request(f"contacts[{index}]: no contact has this SMS")
                identifier = str(item.get("email", item.get("id")))
                try:
                    contact = self._lookup(identifier)
                except ApiError:
                    missing.append(index)
                    continue
                known, unknown = self._known_attributes(item.get("attributes") or {})
                if unknown:
                    raise bad_request(
                        f"contacts[{index}]: attribute {unknown[0]} does not exist in your account"
                    )
                for list_id in list(item.get("listIds") or []) + list(item.get("unlinkListIds") or []):
                    if list_id not in self.lists:
                        raise bad_request(f"contacts[{index}]: list {list_id} does not exist")
                resolved.append((contact, known, item))
            if missing:
                # Brevo answers one 404 for the whole batch, naming the positions of the
                # contacts it does not have (README: sources); whether they count from 0 is
                # not documented (emulator choice: from 0).
                raise ApiError(404, "document_not_found",
                               "No contact found for indexes " + ",".join(map(str, missing)))
            for contact, known, item in resolved:
                self._upsert(contact.email, known, item.get("listIds") or [], item.get("emailBlacklisted"))
                if item.get("smsBlacklisted") is not None:
                    contact.sms_blacklisted = bool(item["smsBlacklisted"])
                unlink = set(item.get("unlinkListIds") or []) & contact.list_ids
                if unlink:
                    for list_id in unlink:
                        contact.list_ids.discard(list_id)
                        self.lists[list_id].members.discard(contact.id)
                    contact.modified_at = self.clock.now()

    # -- lists and folders ---------------------------------------------------------------

    def _list_json(self, found: ContactList) -> dict[str, Any]:
        blacklisted = sum(1 for cid in found.members if self.contacts[cid].email_blacklisted)
        return {
            "id": found.id,
            "name": found.name,
            "totalBlacklisted": blacklisted,
            "totalSubscribers": len(found.members) - blacklisted,
            "uniqueSubscribers": len(found.members),
            "folderId": found.folder_id,
        }

    def get_lists(self, query: dict[str, str]) -> dict[str, Any]:
        limit, offset = _page(query, 10)
        with self.lock:
            rows = sorted(self.lists.values(), key=lambda l: l.id)
            if query.get("sort", "desc") == "desc":
                rows.reverse()
            return {
                "lists": [self._list_json(l) for l in rows[offset : offset + limit]],
                "count": len(rows),
            }

    def create_list(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.add_list(body["name"], int(body["folderId"]))}

    def get_folders(self, query: dict[str, str]) -> dict[str, Any]:
        limit, offset = _page(query, 10)
        with self.lock:
            rows = []
            for folder_id in sorted(self.folders):
                members = [l for l in self.lists.values() if l.folder_id == folder_id]
                unique = set().union(*(l.members for l in members)) if members else set()
                blacklisted = sum(1 for cid in unique if self.contacts[cid].email_blacklisted)
                rows.append(
                    {
                        "id": folder_id,
                        "name": self.folders[folder_id],
                        "totalBlacklisted": blacklisted,
                        "totalSubscribers": len(unique) - blacklisted,
                        "uniqueSubscribers": len(unique),
                    }
                )
            if query.get("sort", "desc") == "desc":
                rows.reverse()
            return {"folders": rows[offset : offset + limit], "count": len(rows)}

    def create_folder(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("name"):
            raise bad_request("name is missing", "missing_parameter")
        return {"id": self.add_folder(body["name"])}

    def _members_change(self, list_id: int, body: dict[str, Any], add: bool) -> dict[str, Any]:
        with self.lock:
            found = self._require_list(list_id)
            if not add and body.get("all"):
                process = self._new_process("REMOVE_ALL_LIST_CONTACTS")
                for cid in list(found.members):
                    self.contacts[cid].list_ids.discard(list_id)
                found.members.clear()
                process.status = "completed"
                return {"contacts": {"processId": process.id}}
            identifiers = [str(x) for x in (body.get("emails") or body.get("ids") or [])]
            if not identifiers:
                raise bad_request("emails or ids is required", "missing_parameter")
            success, failure = [], []
            for identifier in identifiers:
                try:
                    contact = self._lookup(identifier)
                except ApiError:
                    failure.append(identifier)
                    continue
                member = contact.id in found.members
                if add == member:
                    failure.append(identifier)
                    continue
                if add:
                    found.members.add(contact.id)
                    contact.list_ids.add(list_id)
                else:
                    found.members.discard(contact.id)
                    contact.list_ids.discard(list_id)
                contact.modified_at = self.clock.now()
                success.append(identifier)
            if not success:
                raise bad_request(
                    "Contact already in list and/or does not exist"
                    if add
                    else "Contact does not exist and/or not in list"
                )
            return {"contacts": {"success": success, "failure": failure}}

    def add_to_list(self, list_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._members_change(list_id, body, add=True)

    def remove_from_list(self, list_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._members_change(list_id, body, add=False)

    # -- attributes ----------------------------------------------------------------------

    def get_attributes(self) -> dict[str, Any]:
        with self.lock:
            return {"attributes": [dict(a) for a in self.attributes.values()]}

    def create_attribute(self, category: str, name: str, body: dict[str, Any]) -> None:
        with self.lock:
            if name.upper() in self.attributes:
                raise bad_request(f"Attribute name {name} already exists", "duplicate_parameter")
            if category != "normal":
                raise bad_request("the emulator creates normal attributes only")
            self.add_attribute(name, body.get("type") or "text", category)

    # -- import and processes ------------------------------------------------------------

    def _new_process(self, name: str) -> Process:
        process = Process(next(self._ids["process"]), name)
        self.processes[process.id] = process
        return process

    def import_contacts(self, body: dict[str, Any], body_bytes: int | None = None) -> dict[str, Any]:
        """Queue an import (``body_bytes``: the request's size, when known: the ``jsonBody``
        within it is measured only when the request is near the limit)."""
        sources = [k for k in ("fileUrl", "fileBody", "jsonBody") if body.get(k) is not None]
        if len(sources) != 1:
            raise bad_request("pass exactly one of fileUrl, fileBody or jsonBody", "missing_parameter")
        if sources[0] == "fileUrl":
            raise bad_request("fileUrl could not be downloaded (the emulator has no network)")
        if not body.get("listIds") and not body.get("newList"):
            raise bad_request("listIds is mandatory if newList is not defined", "missing_parameter")
        if sources[0] == "jsonBody":
            rows = body["jsonBody"]
            size = body_bytes if body_bytes is not None and body_bytes <= IMPORT_MAX_BYTES else len(
                json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode())
        else:
            size = len(body["fileBody"].encode())
            rows = _csv_rows(body["fileBody"])
        if size > IMPORT_MAX_BYTES:
            raise bad_request(f"{sources[0]} is {size} bytes; the maximum is 10MB", "out_of_range")
        with self.lock:
            list_ids = [int(x) for x in body.get("listIds") or []]
            for list_id in list_ids:
                self._require_list(list_id)
            if body.get("newList"):
                new = body["newList"]
                list_ids.append(self.add_list(new["listName"], new.get("folderId")))
            process = self._new_process("IMPORTUSER")
        self._jobs.put((process, {**body, "_rows": rows, "_lists": list_ids}))
        return {"processId": process.id}

    def _run_imports(self) -> None:
        """One import worker: imports are queued (``queued``), then processed (``in_process``)
        by up to ``import_workers`` at once, each taking ``import_delay`` plus its rows at
        ``import_rows_per_second`` before it is ``completed``. Its rows are applied at the start
        of that time (the emulator's own CPU is inside the modelled time, not added to it)."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            process, body = job
            with self.lock:
                process.status = "in_process"
            done_at = time.monotonic() + self.import_delay + len(body["_rows"]) / self.import_rows_per_second
            reports = self._apply_rows(body)
            time.sleep(max(0.0, done_at - time.monotonic()))
            self._complete(process, *reports)

    def _apply_rows(self, body: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Apply an import's rows; the addresses refused as invalid, and those seen twice."""
        invalid: list[str] = []
        duplicates: list[str] = []
        seen: set[str] = set()
        rows = body["_rows"]
        blacklist = True if body.get("emailBlacklist") else None
        update_existing = body.get("updateExistingContacts", True)
        empty_erases = body.get("emptyContactsAttributes", False)
        lists = body["_lists"]
        # The account lock is taken per slice of rows, so the API keeps answering while a big
        # import lands (contacts appear as it runs, as they do in Brevo during in_process). The
        # rows of one slice land at one instant: they share a modification time (readers see all
        # of a slice or none of it, so modifiedSince paging stays exact).
        for start in range(0, len(rows), IMPORT_SLICE):
            with self.lock:
                now = self.clock.now()
                known_names = self.attributes
                for row in rows[start:start + IMPORT_SLICE]:
                    attributes = row.get("attributes") or {}
                    email = str(row.get("email") or attributes.get("EMAIL") or "")
                    key = email.strip().lower()
                    if not EMAIL_RE.match(email.strip()):
                        invalid.append(email)
                        continue
                    if key in seen:
                        duplicates.append(email)
                        continue
                    seen.add(key)
                    # "Any contact attribute that doesn't exist in your account will be ignored."
                    known = {n.upper(): v for n, v in attributes.items() if n.upper() in known_names} \
                        if attributes else {}
                    self._upsert(email, known, lists, blacklist,
                                 update_existing=update_existing, empty_erases=empty_erases, now=now)
        return invalid, duplicates

    def _complete(self, process: Process, invalid: list[str], duplicates: list[str]) -> None:
        with self.lock:
            info: dict[str, Any] = {}
            for kind, emails in (("invalid_emails", invalid), ("duplicate_email_id", duplicates)):
                if emails:
                    key = f"{process.id}/{kind}.csv"
                    out = io.StringIO()
                    writer = csv.writer(out)
                    writer.writerow(["EMAIL"])
                    writer.writerows([e] for e in emails)
                    self.reports[key] = out.getvalue()
                    info[kind] = f"{self.report_base_url}/_reports/{key}"
            process.info = {"import": info}
            process.status = "completed"

    def get_process(self, process_id: int) -> dict[str, Any]:
        with self.lock:
            process = self.processes.get(process_id)
            if process is None:
                raise not_found("processId is invalid")
            out: dict[str, Any] = {"id": process.id, "status": process.status, "name": process.name}
            if process.status == "completed" and process.info is not None:
                out["info"] = process.info
            return out

    # -- transactional blocklist and events ----------------------------------------------

    def get_blocked(self, query: dict[str, str]) -> dict[str, Any]:
        limit, offset = _page(query, 50)
        rows = self._dated(self.blocked, query, lambda b: b.blocked_at)
        return {
            "count": len(rows),
            "contacts": [
                {
                    "email": b.email,
                    "senderEmail": b.sender_email,
                    "reason": {"code": b.reason, "message": BLOCK_REASONS[b.reason]},
                    "blockedAt": fmt(b.blocked_at),
                }
                for b in rows[offset : offset + limit]
            ],
        }

    def get_events(self, query: dict[str, str]) -> dict[str, Any]:
        limit, offset = _page(query, 2500)
        if "days" in query and ("startDate" in query or "endDate" in query):
            raise bad_request("days is not compatible with startDate and endDate")
        if "startDate" not in query and "endDate" not in query:
            today = datetime.now(timezone.utc).date()
            days = int(query.get("days", 30))
            query = {**query, "startDate": str(today - timedelta(days=days - 1)), "endDate": str(today)}
        start, end = _day(query["startDate"], "startDate"), _day(query["endDate"], "endDate")
        if (end - start).days > 90:
            raise bad_request("The date range can not exceed 90 days")
        rows = self._dated(self.events, query, lambda e: e.date)
        if "email" in query:
            rows = [e for e in rows if e.email == query["email"].lower()]
        if "event" in query:
            rows = [e for e in rows if e.event == query["event"]]
        return {"events": [e.to_json() for e in rows[offset : offset + limit]]}

    def _dated(self, items: list, query: dict[str, str], when) -> list:
        has_start, has_end = "startDate" in query, "endDate" in query
        if has_start != has_end:
            raise bad_request("startDate and endDate must be used together")
        with self.lock:
            rows = sorted(items, key=when)
        if has_start:
            start, end = _day(query["startDate"], "startDate"), _day(query["endDate"], "endDate")
            if start > end:
                raise bad_request("startDate must be lower than or equal to endDate")
            today = datetime.now(timezone.utc).date()
            if start > today or end > today:
                raise bad_request("dates cannot be in the future")
            rows = [r for r in rows if start <= when(r).date() <= end]
        if query.get("sort", "desc") == "desc":
            rows.reverse()
        return rows


def _csv_rows(text: str) -> list[dict[str, Any]]:
    """``fileBody``: semicolon-separated CSV with a header row naming EMAIL and attributes."""
    reader = csv.reader(io.StringIO(text), delimiter=";")
    header = [h.strip().upper() for h in next(reader, [])]
    rows = []
    for values in reader:
        record = dict(zip(header, values))
        email = record.pop("EMAIL", "")
        rows.append({"email": email, "attributes": record})
    return rows

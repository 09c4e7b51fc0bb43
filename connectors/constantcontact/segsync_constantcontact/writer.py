"""Push: opt-outs through each contact's permission to send, a bulk import for the rest, then
segment tags or lists and deletions as bulk activities.

One ``write`` gets at most 500 changes (the most contact ids one activity takes). In order:

1. Opt-outs (``unsubscribed``, ``cleaned``, ``complained``): ``PUT /contacts/{id}`` with
   ``permission_to_send`` ``unsubscribed`` (a PUT replaces every property it omits, so the
   contact is read first and its properties sent back); someone not in Constant Contact is
   created unsubscribed (``POST /contacts``). Constant Contact has no bulk unsubscribe.
2. ``subscribed``: one ``contacts_json_import`` into the audience list. New contacts get
   ``implicit`` permission; an import leaves an existing contact's permission as it is. A
   contact the *account* unsubscribed (segsync, for want of consent) is given permission again
   by ``PUT`` (``explicit`` when the consent is the person's own, else ``implicit``); one the
   *contact* unsubscribed is never made mailable again by segsync (reported rejected).
3. ``none``/``pending`` (no consent, or awaiting confirmation): an existing contact is
   unsubscribed by the account (``opt_out_source`` ``Account``: the account may add them back
   once they consent); nobody is created.
4. Segment memberships: ``contacts_taggings_add/remove`` (or ``add/remove_list_memberships``),
   one activity per distinct set of tags and 500 contacts.
5. Deletions: one ``contact_delete`` activity.

Each activity is polled until done. A step that fails leaves its changes ``retryable``; a
refusal that names a contact (an address the import did not take, a value too long) is
``rejected`` with the field.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from segsync import EXPLICIT_METHODS, OPT_OUT_STATUSES, ContactChange, Outcome, WriteResult

from segsync_constantcontact.api import ConstantContactApi, ConstantContactError
from segsync_constantcontact.directory import Directory
from segsync_constantcontact.limits import (
    ACTIVITY_MAX_CONTACT_IDS,
    ACTIVITY_MAX_TAGS,
    IMPORT_MAX_CONTACTS,
    IMPORT_MAX_LISTS,
)
from segsync_constantcontact.mapping import import_row
from segsync_constantcontact.settings import CUSTOM_FIELD_PREFIX, ConstantContactSettings

NO_CONSENT = frozenset({"none", "pending"})
MAILABLE = frozenset({"explicit", "implicit"})  # permissions Constant Contact sends to
# Who asks for the opt-out, as Constant Contact's update_source: a person's unsubscribe or
# complaint is the contact's own (Constant Contact then lets only them opt back in); a bounce
# and a missing consent are the account's (it may add the contact back).
UPDATE_SOURCE = {"unsubscribed": "Contact", "complained": "Contact", "cleaned": "Account",
                 "none": "Account", "pending": "Account"}
OPT_OUT_REASON = {
    "unsubscribed": "Unsubscribed in a connected system (segsync)",
    "complained": "Marked an email as spam in a connected system (segsync)",
    "cleaned": "Hard bounce in a connected system (segsync)",
    "none": "No marketing consent on record (segsync)",
    "pending": "Sign-up not confirmed yet (segsync)",
}
# Contact properties a PUT must send back (it nulls omitted ones), and their documented
# maximum lengths (the import's email column: 50 characters).
PROPERTIES = ("first_name", "last_name", "job_title", "company_name", "birthday_month", "birthday_day",
              "anniversary")
MAX_LENGTH = {"email": 50, "first_name": 50, "last_name": 50, "job_title": 50, "company_name": 50}
CUSTOM_VALUE_MAX = 255
INCLUDE_FOR_PUT = "custom_fields,phone_numbers,street_addresses,list_memberships,taggings"


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Write:
    """The state of one ``write``: contact ids found, and each change's first failure."""

    def __init__(self, changes: Sequence[ContactChange]) -> None:
        self.changes = list(changes)
        self.ids: dict[str, str] = {c.contact_key: c.external_id for c in changes if c.external_id}
        self.failed: dict[str, Outcome] = {}

    def alive(self, changes: Iterable[ContactChange]) -> list[ContactChange]:
        return [c for c in changes if c.contact_key not in self.failed]

    def reject(self, change: ContactChange, reason: str, field: str | None = None) -> None:
        self.failed.setdefault(change.contact_key, Outcome.rejected(change.contact_key, reason, field))

    def retry(self, changes: Iterable[ContactChange], reason: str) -> None:
        for change in changes:
            self.failed.setdefault(change.contact_key, Outcome.retryable(change.contact_key, reason))

    def outcomes(self) -> list[Outcome]:
        return [self.failed.get(c.contact_key) or Outcome.ok(c.contact_key, self.ids.get(c.contact_key))
                for c in self.changes]


class Writer:
    def __init__(self, api: ConstantContactApi, settings: ConstantContactSettings, directory: Directory) -> None:
        self.api = api
        self.settings = settings
        self.directory = directory
        self.columns = settings.import_columns()

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        if not changes:
            return WriteResult([], 0)
        before = self.api.calls
        w = _Write(changes)
        deletes = [c for c in changes if c.op == "delete"]
        upserts = [c for c in changes if c.op != "delete"]
        opt_outs = [c for c in upserts if c.status in OPT_OUT_STATUSES]
        subscribed = [c for c in upserts if c.status == "subscribed"]
        without_consent = [c for c in upserts if c.status in NO_CONSENT]
        self._step(w, upserts, self._validate)
        self._step(w, opt_outs, self._unsubscribe)
        self._step(w, subscribed, self._import)
        self._step(w, without_consent, self._unsubscribe)
        self._step(w, upserts, self._segments)
        self._step(w, deletes, self._delete)
        return WriteResult(w.outcomes(), self.api.calls - before)

    def _step(self, w: _Write, changes: list[ContactChange], do: Callable[[_Write, list[ContactChange]], None]) -> None:
        alive = w.alive(changes)
        if not alive:
            return
        try:
            do(w, alive)
        except ConstantContactError as exc:
            # Whatever this step had not finished is sent again next run (its writes are
            # idempotent: a permission, a list or tag membership, an import of the same row).
            w.retry(alive, str(exc))

    # -- checks before anything is sent ------------------------------------------------------

    def _validate(self, w: _Write, changes: list[ContactChange]) -> None:
        for change in changes:
            self._check(w, change)

    def _check(self, w: _Write, change: ContactChange) -> None:
        values = {"email": change.contact_key, **{
            column: change.attributes.get(attribute) for attribute, column in self.columns.items()}}
        for column, value in values.items():
            if not isinstance(value, str):
                continue
            limit = CUSTOM_VALUE_MAX if column.startswith(CUSTOM_FIELD_PREFIX) else MAX_LENGTH.get(column)
            if limit is not None and len(value) > limit:
                field = "email" if column == "email" else self._attribute_of(column)
                w.reject(change, f"Constant Contact takes at most {limit} characters in {column}; "
                                 f"this value has {len(value)}", field)
                return
        missing = [name for name in self._custom_fields_of(change) if name not in self.directory.custom_fields()]
        if missing:
            w.reject(change, f"Constant Contact has no custom field {missing[0]!r}; `segsync check --fix` "
                             "creates it", self._attribute_of(CUSTOM_FIELD_PREFIX + missing[0]))

    def _attribute_of(self, column: str) -> str:
        return next((a for a, c in self.columns.items() if c == column), column)

    def _custom_fields_of(self, change: ContactChange) -> list[str]:
        return [column[len(CUSTOM_FIELD_PREFIX):] for attribute, column in self.columns.items()
                if column.startswith(CUSTOM_FIELD_PREFIX) and change.attributes.get(attribute) not in (None, "")]

    # -- looking contacts up ---------------------------------------------------------------

    def _find(self, email: str, include: str = "list_memberships,taggings") -> dict[str, Any] | None:
        """The contact with this address (not deleted), or None."""
        page = self.api.call("GET", "/contacts", params={"email": email, "include": include},
                             endpoint="contacts.by_email") or {}
        for contact in page.get("contacts") or []:
            address = (contact.get("email_address") or {}).get("address")
            if isinstance(address, str) and address.strip().lower() == email and not contact.get("deleted_at"):
                return contact
        return None

    def _get(self, w: _Write, change: ContactChange, include: str) -> dict[str, Any] | None:
        """The change's contact, by its known id (which may be stale) or its address."""
        known = w.ids.get(change.contact_key)
        if known:
            found = self.api.call("GET", f"/contacts/{known}", params={"include": include},
                                  endpoint="contacts.get", ok=(404,))
            if found and found.get("status") != 404 and not found.get("deleted_at"):
                return found
            w.ids.pop(change.contact_key, None)
        contact = self._find(change.contact_key, include)
        if contact is not None:
            w.ids[change.contact_key] = contact["contact_id"]
        return contact

    # -- 1. opt-outs (and 3. no consent) --------------------------------------------------

    def _unsubscribe(self, w: _Write, changes: list[ContactChange]) -> None:
        for change in changes:
            contact = self._get(w, change, INCLUDE_FOR_PUT)
            if contact is None:
                if change.status in OPT_OUT_STATUSES:
                    self._create_unsubscribed(w, change)
                continue  # without consent, nobody is created
            email = contact.get("email_address") or {}
            body = self._put_body(change, contact)
            unchanged = (all(contact.get(k) == v for k, v in self._properties(change).items())
                         and "custom_fields" not in body)
            permission = email.get("permission_to_send")
            # Only a mailable contact is unsubscribed for want of consent: one awaiting Constant
            # Contact's own confirmation (pending_confirmation) or without permission keeps it.
            opt_out = permission != "unsubscribed" and (change.status in OPT_OUT_STATUSES or permission in MAILABLE)
            if not opt_out and unchanged:
                continue  # already as asked: a replayed batch changes nothing
            body["email_address"] = {"address": email.get("address") or change.contact_key,
                                     "permission_to_send": "unsubscribed" if opt_out else permission}
            if opt_out:
                body["email_address"]["opt_out_reason"] = OPT_OUT_REASON[change.status]
            body["update_source"] = UPDATE_SOURCE[change.status] if opt_out else "Account"
            try:
                self.api.call("PUT", f"/contacts/{contact['contact_id']}", json=body, endpoint="contacts.put")
            except ConstantContactError as exc:
                if exc.status != 400:
                    raise
                w.reject(change, str(exc))

    def _create_unsubscribed(self, w: _Write, change: ContactChange) -> None:
        """Create someone who opted out elsewhere as unsubscribed: an import (by segsync or any
        other tool) leaves an existing contact's permission alone, so they stay unmailable."""
        body: dict[str, Any] = {**self._properties(change), "create_source": "Account",
                                "email_address": {"address": change.contact_key,
                                                  "permission_to_send": "unsubscribed"}}
        try:
            created = self.api.call("POST", "/contacts", json=body, endpoint="contacts.create") or {}
        except ConstantContactError as exc:
            if exc.status != 409:
                raise
            # Created meanwhile (another run, or a create whose answer was lost): next run
            # finds it and unsubscribes it.
            w.retry([change], str(exc))
            return
        if isinstance(created.get("contact_id"), str):
            w.ids[change.contact_key] = created["contact_id"]

    def _put_body(self, change: ContactChange, contact: Mapping[str, Any]) -> dict[str, Any]:
        """The contact's properties with the change's (a PUT nulls what it omits), and its custom
        fields when the change sets one."""
        body: dict[str, Any] = {p: contact[p] for p in PROPERTIES if contact.get(p) not in (None, "")}
        body.update(self._properties(change))
        custom = self._custom_values(change, contact.get("custom_fields") or [])
        if custom is not None:
            body["custom_fields"] = custom
        return body

    def _properties(self, change: ContactChange) -> dict[str, Any]:
        return {column: value for column, value in import_row(change.contact_key, change.attributes,
                                                               self.columns).items()
                if column in PROPERTIES}

    def _custom_values(self, change: ContactChange, existing: list[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
        """The contact's custom fields with the change's mapped values (None: nothing to set)."""
        wanted = {self.directory.custom_fields()[name]: str(change.attributes[attribute])
                  for attribute, column in self.columns.items()
                  if column.startswith(CUSTOM_FIELD_PREFIX)
                  and change.attributes.get(attribute) not in (None, "")
                  and (name := column[len(CUSTOM_FIELD_PREFIX):]) in self.directory.custom_fields()}
        have = {f.get("custom_field_id"): f.get("value") for f in existing if isinstance(f, Mapping)}
        if all(have.get(k) == v for k, v in wanted.items()):
            return None
        return [{"custom_field_id": k, "value": v} for k, v in {**have, **wanted}.items() if isinstance(k, str)]

    # -- 2. the import ---------------------------------------------------------------------

    def _import(self, w: _Write, changes: list[ContactChange]) -> None:
        audience = self.directory.list_id(self.settings.audience_list)
        rows = [import_row(c.contact_key, c.attributes, self.columns) for c in changes]
        for part in self._import_parts(rows):
            keys = {row["email"] for row in part}
            done = self.api.activity("/activities/contacts_json_import",
                                     {"import_data": list(part), "list_ids": [audience][:IMPORT_MAX_LISTS]},
                                     endpoint="activities.contacts_json_import")
            status = done.get("status") or {}
            imported = [c for c in changes if c.contact_key in keys]
            trouble = bool(status.get("error_count") or status.get("correctable_count")
                           or status.get("cannot_add_to_list_count"))
            self._resolve(w, imported, audience, done, confirm=trouble)

    def _import_parts(self, rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
        """Rows in payloads under ``import_max_bytes`` and 40,000 contacts (Constant Contact
        drops whatever lies past 4 MB without a word)."""
        part: list[dict[str, Any]] = []
        size = 64  # the envelope and the list id
        for row in rows:
            row_size = len(json.dumps(row).encode()) + 2
            if part and (size + row_size > self.settings.import_max_bytes or len(part) >= IMPORT_MAX_CONTACTS):
                yield part
                part, size = [], 64
            part.append(row)
            size += row_size
        if part:
            yield part

    def _resolve(self, w: _Write, imported: list[ContactChange], audience: str, done: Mapping[str, Any],
                 *, confirm: bool) -> None:
        """Contact ids for the imported changes that need one (segments to write), and, when the
        import reported problems, each one's state: absent (the import refused the row) or
        unsubscribed (Constant Contact keeps them off lists) is rejected."""
        needed = [c for c in imported if confirm or ((c.tags_add or c.tags_remove) and c.contact_key not in w.ids)]
        if not needed:
            return
        seen: dict[str, dict[str, Any]] = {}
        since = done.get("created_at") or done.get("started_at")
        if since:
            params = {"lists": audience, "updated_after": since, "limit": 500,
                      "include": "list_memberships,taggings"}
            wanted = {c.contact_key for c in needed}
            for page, _ in self.api.pages("/contacts", "contacts", params, endpoint="contacts.list_imported"):
                for contact in page:
                    address = str((contact.get("email_address") or {}).get("address") or "").strip().lower()
                    if address in wanted:
                        seen[address] = contact
                if wanted <= set(seen):
                    break
        status = done.get("status") or {}
        counts = ", ".join(f"{status[k]} {k}" for k in ("error_count", "correctable_count") if status.get(k))
        for change in needed:
            contact = seen.get(change.contact_key) or self._find(change.contact_key)
            if contact is None:
                # The activity's errors name rows in a format Constant Contact does not document;
                # the contact's absence after a completed import is what says it was refused.
                w.reject(change, "Constant Contact's import did not take this address"
                         + (f" (the import reported {counts})" if counts else ""), "email")
                continue
            w.ids[change.contact_key] = contact["contact_id"]
            email = contact.get("email_address") or {}
            if email.get("permission_to_send") != "unsubscribed":
                continue
            if email.get("opt_out_source") == "Contact":
                w.reject(change, "unsubscribed in Constant Contact by the contact; Constant Contact lets only "
                                 "the contact opt back in (its sign-up form or a resubscribe email)")
            else:
                self._resubscribe(w, change, audience)

    def _resubscribe(self, w: _Write, change: ContactChange, audience: str) -> None:
        """Give a contact the account unsubscribed its permission back, into the audience list."""
        contact = self._get(w, change, INCLUDE_FOR_PUT)
        if contact is None:
            w.retry([change], "the contact disappeared from Constant Contact during the write")
            return
        body = self._put_body(change, contact)
        body["email_address"] = {"address": (contact.get("email_address") or {}).get("address") or change.contact_key,
                                 "permission_to_send": "explicit" if change.consent_method in EXPLICIT_METHODS
                                 else "implicit"}
        body["list_memberships"] = sorted({*(contact.get("list_memberships") or []), audience})
        body["update_source"] = "Account"
        self.api.call("PUT", f"/contacts/{contact['contact_id']}", json=body, endpoint="contacts.put")

    # -- 4. segments -----------------------------------------------------------------------

    def _segments(self, w: _Write, changes: list[ContactChange]) -> None:
        adds: dict[tuple[str, ...], list[ContactChange]] = defaultdict(list)
        removes: dict[tuple[str, ...], list[ContactChange]] = defaultdict(list)
        lists = self.settings.segment_mode == "lists"
        for change in changes:
            if not (change.tags_add or change.tags_remove):
                continue
            if change.contact_key not in w.ids and self._get(w, change, "list_memberships") is None:
                if change.tags_add and change.status == "subscribed":
                    w.reject(change, "not in Constant Contact, so its segments cannot be set")
                continue
            # An unsubscribed contact cannot join a list (Constant Contact refuses it).
            if change.tags_add and not (lists and change.status in OPT_OUT_STATUSES):
                adds[tuple(sorted(change.tags_add))].append(change)
            if change.tags_remove:
                removes[tuple(sorted(change.tags_remove))].append(change)
        for segments_of, group in adds.items():
            self._segment_activity(w, "add", segments_of, group)
        for segments_of, group in removes.items():
            self._segment_activity(w, "remove", segments_of, group)

    def _segment_activity(self, w: _Write, action: str, segments: tuple[str, ...],
                          group: list[ContactChange]) -> None:
        ids = []
        for segment in segments:
            found = self.directory.segment_id(segment)
            if found is None and action == "add":
                for change in group:
                    w.reject(change, f"segment {segment!r} has no Constant Contact "
                                     f"{self.settings.segment_mode[:-1]} and create_segments is off")
                return
            if found is not None:
                ids.append(found)
        group = w.alive(group)
        if not ids or not group:
            return
        lists = self.settings.segment_mode == "lists"
        path = (f"/activities/{action}_list_memberships" if lists else f"/activities/contacts_taggings_{action}")
        key = "list_ids" if lists else "tag_ids"
        for id_part in _chunks(ids, ACTIVITY_MAX_TAGS):
            for part in _chunks(group, ACTIVITY_MAX_CONTACT_IDS):
                try:
                    self.api.activity(path, {"source": {"contact_ids": [w.ids[c.contact_key] for c in part]},
                                             key: list(id_part)},
                                      endpoint="activities." + path.rsplit("/", 1)[1])
                except ConstantContactError as exc:
                    w.retry(part, str(exc))

    # -- 5. deletions ----------------------------------------------------------------------

    def _delete(self, w: _Write, changes: list[ContactChange]) -> None:
        present = []
        for change in changes:
            if change.contact_key not in w.ids:
                contact = self._find(change.contact_key)
                if contact is None:
                    continue  # already gone
                w.ids[change.contact_key] = contact["contact_id"]
            present.append(change)
        for part in _chunks(present, ACTIVITY_MAX_CONTACT_IDS):
            self.api.activity("/activities/contact_delete",
                              {"contact_ids": [w.ids[c.contact_key] for c in part]},
                              endpoint="activities.contact_delete")

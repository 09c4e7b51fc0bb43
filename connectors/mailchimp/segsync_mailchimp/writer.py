"""Push: ContactChanges to the fewest Mailchimp calls.

* Member upserts and status changes: batch-subscribe ``POST /lists/{id}`` with up to 500
  members per call, ``update_existing`` on and ``sync_tags`` off (tags that segsync does not
  manage must survive); its ``errors[]`` become per-record outcomes. The tags a member enters
  ride in its entry (``tags``: Mailchimp adds them to new and existing members and creates a
  tag it does not know), so they cost no call of their own.
* Other memberships (tags): one ``POST /lists/{id}/segments/{segment_id}`` per tag carries up
  to 500 additions *and* 500 removals: the removals, and the additions of contacts with nothing
  else to change (they have no batch-subscribe entry); a missing tag is created once with
  ``static_segment: []``.
* Erasure: ``POST …/members/{hash}/actions/delete-permanent`` (there is no bulk form).

A write is cut into *write batches*: up to 500 contacts with their batch-subscribe call and
their tag calls, or one erasure. Contacts with a batch-subscribe entry fill the first write
batches, the tag-only ones the next; each kind is ordered by the tag calls it still needs, so
that contacts entering or leaving the same tags share write batches and a tag costs as few
calls as its changes need. Write batches run in parallel on at most ``max_connections``
connections, and each is reported (``write(changes, report=...)``) as soon as its calls are
done, so the runner acknowledges it at once: a killed push re-sends at most ``max_connections``
write batches (10 × 500 contacts), never the whole write. They are planned as connections free
up (a generator the window draws from), so the first call goes out at once and planning
overlaps the calls in flight however large the write.

Compliance: an unsubscribed, cleaned or complained member is never sent back to
``subscribed``: a newer opt-in goes out as ``pending`` (Mailchimp mails a confirmation) unless
the change records confirmed consent (``ContactChange.consent_method`` = ``double_opt_in``).
A contact without marketing consent (``none``) is never added to the audience.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from segsync import (
    CONFIRMED_METHODS,
    OPT_OUT_STATUSES,
    ContactChange,
    Outcome,
    OutcomeReport,
    WriteResult,
    mask_email,
)
from segsync.collector import collector_paused

from segsync_mailchimp.api import MailchimpApi, MailchimpError
from segsync_mailchimp.limits import BATCH_MAX
from segsync_mailchimp.mapping import merge_fields_for, subscriber_hash
from segsync_mailchimp.settings import MailchimpSettings

log = logging.getLogger(__name__)

# segsync status -> Mailchimp status (complaints are unsubscribes there; "none" handled apart).
# Parts of the batch answers the writer does not read (only ``errors`` and the counts are):
# the full member documents, ~440 KB per 500-member call, are not sent at all.
UNUSED_BATCH_FIELDS = ("new_members", "updated_members", "_links")
UNUSED_TAG_FIELDS = ("members_added", "members_removed", "_links")
STATUS = {"subscribed": "subscribed", "unsubscribed": "unsubscribed", "pending": "pending",
          "cleaned": "cleaned", "complained": "unsubscribed"}


@dataclass(slots=True)
class _Planned:
    """One upsert, planned: its batch-subscribe entry (None: nothing but tags to change), the
    tag changes left to segment calls, or why it is refused without a call."""

    key: str
    member: dict[str, Any] | None
    tag_adds: tuple[str, ...]
    tag_removes: tuple[str, ...]
    refusal: Outcome | None

    def order(self) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
        """Batch-subscribe entries first, then tag-only changes, then changes without a call;
        within each, by the segment calls still needed."""
        kind = 0 if self.member is not None else 1 if (self.tag_adds or self.tag_removes) else 2
        return kind, self.tag_removes, self.tag_adds


@dataclass
class _Plan:
    """One write batch: at most 500 contacts (their batch-subscribe call and one tag call per
    tag), or one permanent delete. Its contacts are acknowledged together once all is done."""

    keys: list[str] = field(default_factory=list)  # the contacts this write batch answers for
    members: list[dict[str, Any]] = field(default_factory=list)  # batch-subscribe entries
    tag_adds: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tag_removes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    deletes: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # contact key -> outcome


class Writer:
    def __init__(self, api: MailchimpApi, settings: MailchimpSettings) -> None:
        self.api, self.settings = api, settings
        self._segment_ids: dict[str, int] | None = None
        # Read per change (a million in a first sync): the settings' values once, and the
        # status to send once per (status, previous status, consent method), a handful of them.
        self._attribute_to_tag = settings.attribute_mapping
        self._segment_attribute = settings.segment_attribute if settings.segment_mode == "attribute" else None
        self._statuses: dict[tuple[str, str | None, str | None], tuple[str | None, str | None]] = {}

    def write(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> WriteResult:
        calls_before = self.api.calls
        latest = {c.contact_key: c for c in changes}  # a later change to a contact supersedes
        outcomes: dict[str, Outcome] = {}

        def finished(plan: _Plan, _: None) -> None:
            # Every contact not refused is ok, its Mailchimp id (the subscriber hash) recorded
            # with it (the runner keeps it as the contact's identity in this audience).
            ok, refused = Outcome.ok, plan.outcomes
            answers = [refused.get(key) or ok(key, subscriber_hash(key)) for key in plan.keys]
            outcomes.update(zip(plan.keys, answers))
            if report is not None:
                report(answers)

        # The write batches are planned as the window asks for the next one (in this thread,
        # while earlier ones are in flight), so the first call goes out at once however large
        # the write is, and the connections stay busy while the rest is planned. A write makes
        # a dozen objects a contact and no cycles: with the collector running, its re-scans of
        # everything the process holds (the changes among it) were half of planning's and the
        # outcomes' CPU (the sync runner pauses it around a push too; here a caller that does
        # not is covered).
        with collector_paused():
            self.api.window(self._send, self._write_batches(latest.values()), finished)
        return WriteResult(outcomes=[outcomes[c.contact_key] for c in changes],
                           calls=self.api.calls - calls_before)

    def _write_batches(self, changes: Iterable[ContactChange]) -> Iterator[_Plan]:
        """Write batches, made as they are asked for: a delete alone (it is one call per
        contact), the other changes by up to 500 in the order of :meth:`_Planned.order` (one
        batch-subscribe call and ≤ 500 per tag call).

        Changes that need nothing but their batch-subscribe entry sort first and keep the
        order given (their key is the smallest, and the sort is stable), so they go out in
        write batches as they are planned; the others (segment calls, refusals, deletes) are
        sorted and cut once those are out, after the tags they need are resolved."""
        later: list[_Planned] = []
        deletes: list[ContactChange] = []
        plan_one = self._plan
        plan = _Plan()
        keys, members = plan.keys, plan.members
        for change in changes:
            if change.op == "delete":
                deletes.append(change)
                continue
            item = plan_one(change)
            member = item.member
            if member is None or item.tag_removes or item.refusal is not None:
                later.append(item)
                continue
            keys.append(item.key)  # what _add does for an entry with nothing else to change
            members.append(member)
            if len(keys) == BATCH_MAX:
                yield plan
                plan = _Plan()
                keys, members = plan.keys, plan.members
        later.sort(key=_Planned.order)
        rest: list[_Plan] = []
        for item in later:
            if len(plan.keys) == BATCH_MAX:
                rest.append(plan)
                plan = _Plan()
            _add(plan, item)
        if plan.keys:
            rest.append(plan)
        rest.extend(_Plan(keys=[c.contact_key], deletes=[c.contact_key]) for c in deletes)
        self._prepare_tags(rest)
        yield from rest

    def _send(self, plan: _Plan) -> None:
        """All calls of one write batch, in one worker thread (they run one after the other)."""
        if plan.deletes:
            self._delete(plan)
            return
        self._upsert(plan)
        self._tags(plan)

    # ------------------------------------------------------------------ planning
    def _plan(self, change: ContactChange) -> _Planned:
        email = change.contact_key
        decided = (change.status, change.previous_status, change.consent_method)
        try:
            status, reason = self._statuses[decided]
        except KeyError:
            status, reason = self._statuses[decided] = self._status(change)
        if reason:
            return _Planned(email, None, (), (), Outcome.rejected(email, reason, field="status"))
        merge_fields = merge_fields_for(change.attributes, self._attribute_to_tag)
        tags_add, tags_remove = change.tags_add, change.tags_remove
        if self._segment_attribute is not None:
            if tags_add or tags_remove or change.tags:
                current = (set(change.tags) | set(tags_add)) - set(tags_remove)
                merge_fields[self._segment_attribute] = ",".join(sorted(current))
            tags_add = tags_remove = ()
        tag_removes = tuple(sorted(tags_remove)) if tags_remove else ()
        if not merge_fields and status == change.previous_status:
            return _Planned(email, None, tuple(sorted(tags_add)) if tags_add else (), tag_removes, None)
        member: dict[str, Any] = {"email_address": email, "status": status, "merge_fields": merge_fields}
        if tags_add:
            member["tags"] = sorted(tags_add)  # added, never replacing others (sync_tags off)
        return _Planned(email, member, (), tag_removes, None)

    @staticmethod
    def _status(change: ContactChange) -> tuple[str | None, str | None]:
        """The Mailchimp status to send, or a reason not to send the contact at all."""
        previous = change.previous_status
        if change.status == "none":
            if previous in (None, "none"):
                return None, ("no marketing consent on record; the contact is not added to the "
                              "Mailchimp audience")
            # consent was withdrawn or erased since the last push: stop mailing
            return ("unsubscribed" if previous in ("subscribed", "pending") else STATUS.get(previous, "unsubscribed")), None
        if change.status not in STATUS:
            return None, f"unknown subscription status {change.status!r}"
        wanted = STATUS[change.status]
        if wanted == "subscribed" and previous in OPT_OUT_STATUSES:
            confirmed = (change.consent_method or "") in CONFIRMED_METHODS
            if not confirmed:
                return "pending", None  # Mailchimp sends a double opt-in confirmation
        return wanted, None

    # ------------------------------------------------------------------ upserts
    def _upsert(self, plan: _Plan) -> None:
        if not plan.members:
            return
        try:
            result = self.api.post("batch subscribe", f"/lists/{quote(self.settings.list_id)}",
                                   {"members": plan.members, "update_existing": True, "sync_tags": False},
                                   exclude_fields=UNUSED_BATCH_FIELDS)
        except MailchimpError as exc:
            self._fail_all(plan, [m["email_address"] for m in plan.members], exc)
            return
        by_address = {m["email_address"].lower(): m["email_address"] for m in plan.members}
        for err in (result or {}).get("errors") or ():
            email = by_address.get(str(err.get("email_address", "")).strip().lower())
            if email is None:
                continue
            reason = _batch_reason(err)
            log.info("Mailchimp refused %s: %s", mask_email(email), err.get("error_code"))
            plan.outcomes[email] = Outcome.rejected(email, reason, field=err.get("field") or None)

    # ------------------------------------------------------------------ tags
    def _prepare_tags(self, plans: list[_Plan]) -> None:
        """Resolve every tag ``plans`` add to its segment id, creating missing ones, before any
        of them starts (in the calling thread: the write batches only read the ids)."""
        needed = {tag for plan in plans for tag, emails in plan.tag_adds.items() if emails}
        if not needed and not any(plan.tag_removes for plan in plans):
            return
        if self._segment_ids is None:
            self._segment_ids = self._list_segments()
        for tag in sorted(needed - set(self._segment_ids)):
            try:
                created = self.api.call("create tag", lambda c: c.lists.create_segment(
                    self.settings.list_id, {"name": tag, "static_segment": []}))
                self._segment_ids[tag] = int((created or {})["id"])
            except MailchimpError as exc:
                # A retried create may have succeeded the first time: look again before failing.
                self._segment_ids = self._list_segments()
                if tag not in self._segment_ids:
                    for plan in plans:
                        self._fail_all(plan, plan.tag_adds.get(tag, []), exc)

    def _tags(self, plan: _Plan) -> None:
        ids = self._segment_ids or {}
        segments = f"/lists/{quote(self.settings.list_id)}/segments/"
        for tag in sorted(set(plan.tag_adds) | set(plan.tag_removes)):
            segment_id = ids.get(tag)
            if segment_id is None:
                continue  # removing a tag that does not exist: nothing to do
            body: dict[str, Any] = {}
            # Skip contacts already refused (by the upsert, or the tag could not be created).
            add = [e for e in plan.tag_adds.get(tag, []) if e not in plan.outcomes]
            remove = [e for e in plan.tag_removes.get(tag, []) if e not in plan.outcomes]
            if add:
                body["members_to_add"] = add
            if remove:
                body["members_to_remove"] = remove
            if not body:
                continue
            try:
                result = self.api.post("tag members", f"{segments}{segment_id}", body,
                                       exclude_fields=UNUSED_TAG_FIELDS)
            except MailchimpError as exc:
                self._fail_all(plan, add + remove, exc)
                continue
            for err in (result or {}).get("errors") or ():
                for address in err.get("email_addresses") or ():
                    email = str(address).lower()
                    if email not in plan.outcomes:
                        plan.outcomes[email] = Outcome.rejected(
                            email, f"Mailchimp could not change the tag: {err.get('error')}")

    def _list_segments(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        offset = 0
        while True:
            page = self.api.call("list tags", lambda c: c.lists.list_segments(
                self.settings.list_id, type="static", count=1000, offset=offset,
                fields=["segments.id", "segments.name", "total_items"])) or {}
            segments = page.get("segments") or []
            ids.update({s["name"]: int(s["id"]) for s in segments})
            offset += len(segments)
            if len(segments) < 1000 or offset >= int(page.get("total_items") or 0):
                return ids

    # ------------------------------------------------------------------ erasure
    def _delete(self, plan: _Plan) -> None:
        list_id = self.settings.list_id
        for email in plan.deletes:
            try:
                self.api.call("delete permanently", lambda client: client.lists.delete_list_member_permanent(
                    list_id, subscriber_hash(email)))
            except MailchimpError as exc:
                if exc.status != 404:  # 404: already gone
                    self._fail_all(plan, [email], exc)

    @staticmethod
    def _fail_all(plan: _Plan, emails: list[str], error: MailchimpError) -> None:
        for email in emails:
            if email in plan.outcomes:
                continue
            plan.outcomes[email] = (Outcome.retryable(email, str(error)) if error.retryable
                                    else Outcome.rejected(email, str(error)))


def _add(plan: _Plan, item: _Planned) -> None:
    """Put one planned upsert into a write batch."""
    plan.keys.append(item.key)
    if item.refusal is not None:
        plan.outcomes[item.key] = item.refusal
        return
    if item.member is not None:
        plan.members.append(item.member)
    for tag in item.tag_adds:
        plan.tag_adds[tag].append(item.key)
    for tag in item.tag_removes:
        plan.tag_removes[tag].append(item.key)


def _batch_reason(err: dict[str, Any]) -> str:
    """One readable line from a batch-subscribe error entry."""
    text = str(err.get("error") or "rejected")
    if "compliance state" in text.lower() or err.get("field_message") == "Member In Compliance State":
        return ("Member In Compliance State: Mailchimp keeps this contact unsubscribed or cleaned and "
                "refuses to subscribe it; it must opt in again through a Mailchimp form or confirmation")
    if "permanently deleted" in text.lower():
        return "Forgotten Email Not Subscribed: the contact was permanently deleted in Mailchimp " \
               "and cannot be re-imported; it must re-subscribe itself"
    parts = [text]
    if err.get("error_code"):
        parts.append(f"({err['error_code']})")
    if err.get("field"):
        parts.append(f"field {err['field']}: {err.get('field_message') or ''}".rstrip(": "))
    # Mailchimp puts the address in the message; outcomes are logged, so mask it.
    return " ".join(parts).replace(str(err.get("email_address") or "\0"), mask_email(str(err.get("email_address") or "")))

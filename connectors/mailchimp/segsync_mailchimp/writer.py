"""Push: ContactChanges to the fewest Mailchimp calls.

* Member upserts and status changes: batch-subscribe ``POST /lists/{id}`` with up to 500
  members per call, ``update_existing`` on and ``sync_tags`` off (tags that segsync does not
  manage must survive); its ``errors[]`` become per-record outcomes.
* Memberships (tags): one ``POST /lists/{id}/segments/{segment_id}`` per tag carries up to 500
  additions *and* 500 removals; a missing tag is created once with ``static_segment: []``.
* Erasure: ``POST …/members/{hash}/actions/delete-permanent`` (there is no bulk form).
Independent calls run in parallel on at most ``max_connections`` connections.

Compliance: an unsubscribed, cleaned or complained member is never sent back to
``subscribed``: a newer opt-in goes out as ``pending`` (Mailchimp mails a confirmation) unless
the change records confirmed consent (``ContactChange.consent_method`` = ``double_opt_in``).
A contact without marketing consent (``none``) is never added to the audience.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from segsync.connector import ContactChange, Outcome, WriteResult
from segsync.model import mask_email

from segsync_mailchimp.api import MailchimpApi, MailchimpError
from segsync_mailchimp.mapping import merge_fields_for, subscriber_hash
from segsync_mailchimp.settings import MailchimpSettings

log = logging.getLogger(__name__)

BATCH_MAX = 500
SUPPRESSED = frozenset({"unsubscribed", "cleaned", "complained"})
CONFIRMED_METHODS = frozenset({"double_opt_in"})
# segsync status -> Mailchimp status (complaints are unsubscribes there; "none" handled apart).
STATUS = {"subscribed": "subscribed", "unsubscribed": "unsubscribed", "pending": "pending",
          "cleaned": "cleaned", "complained": "unsubscribed"}


@dataclass
class _Plan:
    """What one write does; outcomes are filled in as calls come back."""

    members: list[dict[str, Any]] = field(default_factory=list)  # batch-subscribe entries
    tag_adds: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tag_removes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    deletes: list[str] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # contact key -> outcome


class Writer:
    def __init__(self, api: MailchimpApi, settings: MailchimpSettings) -> None:
        self.api, self.settings = api, settings
        self._segment_ids: dict[str, int] | None = None

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        calls_before = self.api.calls
        latest = {c.contact_key: c for c in changes}  # a later change to a contact supersedes
        plan = _Plan()
        for change in latest.values():
            self._plan(change, plan)
        self._upsert(plan)
        self._tags(plan)
        self._delete(plan)
        outcomes = []
        for change in changes:
            outcome = plan.outcomes.get(change.contact_key) or Outcome.ok(
                change.contact_key, subscriber_hash(change.contact_key))
            outcomes.append(outcome)
        return WriteResult(outcomes=outcomes, calls=self.api.calls - calls_before)

    # ------------------------------------------------------------------ planning
    def _plan(self, change: ContactChange, plan: _Plan) -> None:
        email = change.contact_key
        if change.op == "delete":
            plan.deletes.append(email)
            return
        status, reason = self._status(change)
        if reason:
            plan.outcomes[email] = Outcome.rejected(email, reason, field="status")
            return
        merge_fields = merge_fields_for(change.attributes, self.settings.merge_fields)
        memberships_in_field = self.settings.segments_as == "merge_field"
        if memberships_in_field and (change.tags_add or change.tags_remove or change.tags):
            current = (set(change.tags) | set(change.tags_add)) - set(change.tags_remove)
            merge_fields[self.settings.segment_merge_field] = ",".join(sorted(current))
        if merge_fields or status != change.previous_status:
            plan.members.append({"email_address": email, "status": status, "merge_fields": merge_fields})
        if not memberships_in_field:
            for tag in change.tags_add:
                plan.tag_adds[tag].append(email)
            for tag in change.tags_remove:
                plan.tag_removes[tag].append(email)

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
        if wanted == "subscribed" and previous in SUPPRESSED:
            confirmed = (change.consent_method or "") in CONFIRMED_METHODS
            if not confirmed:
                return "pending", None  # Mailchimp sends a double opt-in confirmation
        return wanted, None

    # ------------------------------------------------------------------ upserts
    def _upsert(self, plan: _Plan) -> None:
        chunks = [plan.members[i:i + BATCH_MAX] for i in range(0, len(plan.members), BATCH_MAX)]
        list_id = self.settings.list_id
        results = self.api.map(
            "batch subscribe",
            lambda client, chunk: client.lists.batch_list_members(
                list_id, {"members": chunk, "update_existing": True, "sync_tags": False}),
            chunks,
        )
        for chunk, result in zip(chunks, results):
            if isinstance(result, MailchimpError):
                self._fail_all(plan, [m["email_address"] for m in chunk], result)
                continue
            by_address = {m["email_address"].lower(): m["email_address"] for m in chunk}
            for err in (result or {}).get("errors") or ():
                email = by_address.get(str(err.get("email_address", "")).strip().lower())
                if email is None:
                    continue
                reason = _batch_reason(err)
                log.info("Mailchimp refused %s: %s", mask_email(email), err.get("error_code"))
                plan.outcomes[email] = Outcome.rejected(email, reason, field=err.get("field") or None)

    # ------------------------------------------------------------------ tags
    def _tags(self, plan: _Plan) -> None:
        def pending(emails: list[str]) -> list[str]:
            return [e for e in emails if e not in plan.outcomes]  # skip contacts already refused

        adds = {t: pending(e) for t, e in plan.tag_adds.items()}
        removes = {t: pending(e) for t, e in plan.tag_removes.items()}
        if not any(adds.values()) and not any(removes.values()):
            return
        ids = self._resolve_segments({t for t, e in adds.items() if e}, plan, adds)
        jobs: list[tuple[int, list[str], list[str]]] = []
        for tag in sorted(set(adds) | set(removes)):
            segment_id = ids.get(tag)
            if segment_id is None:
                continue  # removing a tag that does not exist: nothing to do
            add, remove = adds.get(tag, []), removes.get(tag, [])
            for i in range(0, max(len(add), len(remove)), BATCH_MAX):
                jobs.append((segment_id, add[i:i + BATCH_MAX], remove[i:i + BATCH_MAX]))
        list_id = self.settings.list_id

        def send(client: Any, job: tuple[int, list[str], list[str]]) -> Any:
            segment_id, add, remove = job
            body: dict[str, Any] = {}
            if add:
                body["members_to_add"] = add
            if remove:
                body["members_to_remove"] = remove
            return client.lists.batch_segment_members(body, list_id, segment_id)

        for job, result in zip(jobs, self.api.map("tag members", send, jobs)):
            if isinstance(result, MailchimpError):
                self._fail_all(plan, job[1] + job[2], result)
                continue
            for err in (result or {}).get("errors") or ():
                for address in err.get("email_addresses") or ():
                    email = str(address).lower()
                    if email not in plan.outcomes:
                        plan.outcomes[email] = Outcome.rejected(
                            email, f"Mailchimp could not change the tag: {err.get('error')}")

    def _resolve_segments(self, needed: set[str], plan: _Plan, adds: dict[str, list[str]]) -> dict[str, int]:
        """Tag name -> segment id; lists the audience's tags once per connector, creates missing ones."""
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
                    self._fail_all(plan, adds[tag], exc)
        return self._segment_ids

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
        results = self.api.map(
            "delete permanently",
            lambda client, email: client.lists.delete_list_member_permanent(list_id, subscriber_hash(email)),
            plan.deletes,
        )
        for email, result in zip(plan.deletes, results):
            if isinstance(result, MailchimpError) and result.status != 404:  # 404: already gone
                self._fail_all(plan, [email], result)

    @staticmethod
    def _fail_all(plan: _Plan, emails: list[str], error: MailchimpError) -> None:
        for email in emails:
            if email in plan.outcomes:
                continue
            plan.outcomes[email] = (Outcome.retryable(email, str(error)) if error.retryable
                                    else Outcome.rejected(email, str(error)))


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

"""Push: one write is at most one CRM batch (100 contacts), written in this order:

1. attributes (and the segment property) by batch upsert keyed by email, which also gives each
   contact's record id;
2. opt-outs through the subscriptions API (unsubscribe from all email), subscriptions of
   consenting contacts to the configured subscription type;
3. static list memberships, one add-and-remove call per list;
4. deletions (GDPR delete, one call each: HubSpot has no batch for it).

A change is ``ok`` only when every call it is part of succeeded. HubSpot refuses a whole batch
upsert for one bad value, so values are checked against the account's properties first, and a
batch HubSpot still refuses is split in halves until the bad input is alone and can be named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from segsync import OPT_OUT_STATUSES, ContactChange, Outcome, WriteResult, mask_email
from segsync.http import HttpError

from segsync_hubspot.account import Account
from segsync_hubspot.api import AccessRefused, HubSpotApi, error_message
from segsync_hubspot.mapping import checkbox_value, hubspot_properties
from segsync_hubspot.settings import HubSpotSettings

NO_CONSENT = frozenset({"none", "pending"})


class Writer:
    def __init__(self, api: HubSpotApi, settings: HubSpotSettings, account: Account) -> None:
        self.api = api
        self.settings = settings
        self.account = account

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        if not changes:
            return WriteResult([], calls=0)
        before = self.api.calls
        failed: dict[str, Outcome] = {}
        ids = {c.contact_key: c.external_id for c in changes if c.external_id}
        upserts = [c for c in changes if c.op == "upsert"]
        self._upsert(upserts, ids, failed)
        self._opt_outs([c for c in upserts if c.contact_key not in failed], failed)
        self._subscribe([c for c in upserts if c.contact_key not in failed], failed)
        if self.account.uses_lists:
            self._lists([c for c in upserts if c.contact_key not in failed], ids, failed)
        for change in changes:
            if change.op == "delete":
                self._delete(change, failed)
        outcomes = [failed.get(c.contact_key) or Outcome.ok(c.contact_key, external_id=ids.get(c.contact_key))
                    for c in changes]
        return WriteResult(outcomes, calls=self.api.calls - before)

    # -- 1. attributes ---------------------------------------------------------------------

    def _upsert(self, changes: list[ContactChange], ids: dict[str, str], failed: dict[str, Outcome]) -> None:
        mapping = self.settings.hubspot_properties()
        reverse = {hubspot: canonical for canonical, hubspot in mapping.items()}
        if self.account.uses_property:
            self.account.ensure_options({t for c in changes for t in c.tags})
        inputs: list[tuple[ContactChange, dict[str, Any]]] = []
        for change in changes:
            values = hubspot_properties(change.attributes, mapping)
            if self.account.uses_property:
                values[self.settings.segment_attribute] = checkbox_value(change.tags)
            problem = self.account.problem(values)
            if problem is not None:
                name, reason = problem
                failed[change.contact_key] = Outcome.rejected(change.contact_key, reason, field=reverse.get(name, name))
                continue
            inputs.append((change, {"id": change.contact_key, "idProperty": "email", "properties": values}))
        self._send_upserts(inputs, ids, failed, reverse)

    def _send_upserts(self, inputs: list[tuple[ContactChange, dict[str, Any]]], ids: dict[str, str],
                      failed: dict[str, Outcome], reverse: Mapping[str, str]) -> None:
        if not inputs:
            return
        try:
            response = self.api.upsert_contacts([body for _, body in inputs])
        except OSError as exc:  # a transport failure the kit's retries did not overcome
            for change, _ in inputs:
                failed[change.contact_key] = Outcome.retryable(change.contact_key, f"HubSpot batch upsert failed: {exc}")
            return
        status = response.status_code
        if status == 400 and len(inputs) > 1:
            middle = len(inputs) // 2
            self._send_upserts(inputs[:middle], ids, failed, reverse)
            self._send_upserts(inputs[middle:], ids, failed, reverse)
            return
        if status >= 400:
            reason = error_message(HttpError.from_response(response, "contacts.upsert"))
            for change, _ in inputs:
                if 400 <= status < 500 and status != 429:
                    failed[change.contact_key] = Outcome.rejected(change.contact_key, reason,
                                                                  field=_field(response, reverse))
                else:
                    failed[change.contact_key] = Outcome.retryable(change.contact_key, reason)
            return
        answer = response.json()
        for result in answer.get("results") or []:
            email = str((result.get("properties") or {}).get("email", "")).lower()
            if email and result.get("id") is not None:
                ids[email] = str(result["id"])
        for error in answer.get("errors") or []:  # 207: some inputs failed
            message = str(error.get("message") or "refused by HubSpot")
            named = {str(v).lower() for values in (error.get("context") or {}).values() for v in values}
            for change, _ in inputs:
                if change.contact_key in named:
                    failed[change.contact_key] = Outcome.rejected(change.contact_key, message)
        for change, _ in inputs:
            if change.contact_key not in ids and change.contact_key not in failed:
                failed[change.contact_key] = Outcome.retryable(
                    change.contact_key, "HubSpot's batch upsert answer did not include this contact")

    # -- 2. consent ------------------------------------------------------------------------

    def _opt_outs(self, changes: list[ContactChange], failed: dict[str, Outcome]) -> None:
        emails = [c.contact_key for c in changes if c.status in OPT_OUT_STATUSES and c.previous_status not in OPT_OUT_STATUSES]
        if emails:
            self._call(emails, failed, "unsubscribe from all email", self.api.unsubscribe_from_all, emails)

    def _subscribe(self, changes: list[ContactChange], failed: dict[str, Outcome]) -> None:
        """The configured subscription type: SUBSCRIBED for contacts given consent, and back to
        NOT_SPECIFIED (no consent on record) for subscribed ones whose consent is gone. Not
        UNSUBSCRIBED: that would be an opt-out the person did not make, read back as one."""
        subscription = self.settings.subscription_id
        if subscription is None:
            return
        wanted = {c.contact_key: "SUBSCRIBED" for c in changes
                  if c.status == "subscribed" and c.previous_status != "subscribed"}
        wanted |= {c.contact_key: "NOT_SPECIFIED" for c in changes
                   if c.status in NO_CONSENT and c.previous_status == "subscribed"}
        if not wanted:
            return
        inputs = []
        for email, state in wanted.items():
            item = {"subscriberIdString": email, "channel": "EMAIL", "statusState": state, "subscriptionId": subscription}
            if state == "SUBSCRIBED":
                item |= {"legalBasis": self.settings.legal_basis, "legalBasisExplanation": "Consent recorded by segsync"}
            inputs.append(item)
        self._call(list(wanted), failed, f"subscription {subscription}", self.api.write_statuses, inputs)

    # -- 3. lists --------------------------------------------------------------------------

    def _lists(self, changes: list[ContactChange], ids: dict[str, str], failed: dict[str, Outcome]) -> None:
        by_list: dict[str, tuple[list[str], list[str]]] = {}
        for change in changes:
            for name, adding in [(t, True) for t in change.tags_add] + [(t, False) for t in change.tags_remove]:
                try:
                    list_id = self.account.list_id(name)
                except ValueError as exc:
                    failed[change.contact_key] = Outcome.rejected(change.contact_key, str(exc), field="tags")
                    continue
                except (HttpError, OSError) as exc:
                    failed[change.contact_key] = _failure(change.contact_key, f"list {name!r}", exc)
                    continue
                if list_id is None:
                    failed[change.contact_key] = Outcome.rejected(
                        change.contact_key, f"HubSpot has no list named {name!r} (create_lists is off; map it in "
                        "list_mapping or create the list)", field="tags")
                    continue
                entry = by_list.setdefault(list_id, ([], []))
                entry[0 if adding else 1].append(change.contact_key)
        for list_id, (adds, removes) in by_list.items():
            adds = [e for e in adds if e not in failed]
            removes = [e for e in removes if e not in failed]
            if not adds and not removes:
                continue
            try:
                answer = self.api.change_members(list_id, [ids[e] for e in adds], [ids[e] for e in removes])
            except (HttpError, OSError) as exc:
                for email in adds + removes:
                    failed[email] = _failure(email, f"list {list_id}", exc)
                continue
            missing = set(answer.get("recordIdsMissing") or [])
            for email in adds:
                if ids[email] in missing:
                    failed[email] = Outcome.retryable(email, f"HubSpot did not find contact {ids[email]} to add to "
                                                             f"list {list_id}")

    # -- 4. deletions ----------------------------------------------------------------------

    def _delete(self, change: ContactChange, failed: dict[str, Outcome]) -> None:
        try:
            self.api.gdpr_delete(change.contact_key)
        except (HttpError, OSError) as exc:
            failed[change.contact_key] = _failure(change.contact_key, "GDPR delete", exc)

    # -- helpers ---------------------------------------------------------------------------

    def _call(self, emails: list[str], failed: dict[str, Outcome], what: str, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except (HttpError, OSError) as exc:
            for email in emails:
                failed[email] = _failure(email, what, exc)


def _failure(email: str, what: str, exc: HttpError | OSError) -> Outcome:
    """A failed call's outcome for one of its contacts: 429/5xx and transport failures are
    retried next run, other refusals are rejections naming HubSpot's message."""
    if not isinstance(exc, HttpError):
        return Outcome.retryable(email, f"HubSpot {what} failed for {mask_email(email)}: {exc}")
    if isinstance(exc, AccessRefused):
        raise exc
    reason = f"HubSpot {what} failed for {mask_email(email)}: {error_message(exc)}"
    if exc.retryable:
        return Outcome.retryable(email, reason)
    return Outcome.rejected(email, reason)


def _field(response: Any, reverse: Mapping[str, str]) -> str | None:
    """The canonical field a 400 names (HubSpot puts the property in ``context.propertyName``)."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return None
    context = body.get("context") if isinstance(body, dict) else None
    if isinstance(context, dict):
        if context.get("INVALID_EMAIL"):
            return "email"
        names = context.get("propertyName")
        if isinstance(names, list) and names:
            return reverse.get(str(names[0]), str(names[0]))
    return None

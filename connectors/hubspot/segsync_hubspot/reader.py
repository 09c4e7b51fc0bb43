"""Incremental pull: contacts and their email consent, by last modification.

HubSpot's CRM search is the only way to ask for "contacts modified since": sorted by
``lastmodifieddate`` ascending and filtered ``GTE`` the last time read, paged with ``after``.
A search serves at most 10,000 results however it is paged, so before the next page would
pass that cap the reader starts a new search anchored on the newest time it has read.
Contacts modified at exactly that time and already read are skipped by id: the cursor holds
the time and the ids read at it, so a resumed pull neither misses nor repeats anyone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from segsync import Batch, Stream, payload

from segsync_hubspot.api import HubSpotApi
from segsync_hubspot.limits import SEARCH_RESULTS_MAX, SUBSCRIPTION_BATCH_MAX
from segsync_hubspot.mapping import (
    LAST_MODIFIED,
    OPTED_OUT,
    contact_name,
    contact_row,
    modified_ms,
    optout_row,
    subscription_row,
)
from segsync_hubspot.settings import HubSpotSettings


class SearchCapExceeded(RuntimeError):
    """More contacts share one modification time than one search can page through."""


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class Reader:
    def __init__(self, api: HubSpotApi, settings: HubSpotSettings) -> None:
        self.api = api
        self.settings = settings

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        if stream is Stream.CONTACTS:
            yield from self._contacts(cursor or {})
        elif stream is Stream.CONSENT:
            yield from self._consent(cursor or {})

    # -- paging ----------------------------------------------------------------------------

    def pages(self, cursor: Mapping[str, Any], properties: list[str]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        """Each page's contacts not read before, with the cursor that holds once they are."""
        since: int | None = cursor.get("since")
        seen: set[str] = set(cursor.get("seen") or ())
        anchor, after = since, 0
        limit = self.settings.page_size
        while True:
            page = self.api.search_contacts(since_ms=anchor, properties=properties, limit=limit, after=after)
            results = payload.items(payload.record(page, "search answer"), "results")
            fresh = []
            for contact in results:
                ms = modified_ms(contact)
                ident = str(contact.get("id")) if isinstance(contact, Mapping) else None
                if ms is not None and ms == since and ident in seen:
                    continue  # read at the anchor time by an earlier page or pull
                fresh.append(contact)
                if ms is None or ident is None:
                    continue  # its mapping reports it; it moves no cursor
                if since is None or ms > since:
                    since, seen = ms, {ident}
                elif ms == since:
                    seen.add(ident)
            if results:
                yield fresh, {"since": since, "seen": sorted(seen)}
            following = payload.obj(payload.obj(page, "paging"), "next").get("after")
            if following is None:
                return
            after = int(following)
            if after >= SEARCH_RESULTS_MAX:
                if since == anchor:
                    raise SearchCapExceeded(
                        f"more than {SEARCH_RESULTS_MAX} HubSpot contacts have lastmodifieddate {since} ms; "
                        "a search cannot page past them")
                anchor, after = since, 0

    # -- streams ---------------------------------------------------------------------------

    def _contacts(self, cursor: Mapping[str, Any]) -> Iterator[Batch]:
        reverse = {hubspot: canonical for canonical, hubspot in self.settings.hubspot_properties().items()}
        properties = sorted({"email", LAST_MODIFIED, *reverse})
        for contacts, next_cursor in self.pages(cursor, properties):
            rows, names, problems = payload.translate(contacts, lambda c: contact_row(c, reverse), contact_name)
            yield Batch(Stream.CONTACTS, cursor=next_cursor, rows=rows, record_ids=names, problems=problems)

    def _consent(self, cursor: Mapping[str, Any]) -> Iterator[Batch]:
        for contacts, next_cursor in self.pages(cursor, ["email", LAST_MODIFIED, OPTED_OUT]):
            wide = self._wide_statuses(contacts)
            subscriptions = self._subscription_statuses(contacts)

            def to_rows(contact: Any) -> list[dict[str, Any]]:
                email = _email(contact)
                rows = []
                opted_out = optout_row(contact, wide.get(email))
                if opted_out is not None:
                    rows.append(opted_out)
                held = subscriptions.get(email)
                row = subscription_row(held) if held is not None else None
                # Opted out of all, every subscription reads UNSUBSCRIBED too: one record says it.
                if row is not None and not (opted_out is not None and row["status"] == "opted_out"):
                    rows.append(row)
                return rows

            rows, names, problems = payload.translate(contacts, to_rows, contact_name)
            yield Batch(Stream.CONSENT, cursor=next_cursor, rows=rows, record_ids=names, problems=problems)

    def _wide_statuses(self, contacts: list[Any]) -> dict[str, Mapping[str, Any]]:
        """email -> the portal-wide UNSUBSCRIBED status of contacts whose opt-out flag is set."""
        emails = [e for c in contacts if (e := _email(c)) and _properties(c).get(OPTED_OUT) == "true"]
        found: dict[str, Mapping[str, Any]] = {}
        for chunk in _chunks(emails, SUBSCRIPTION_BATCH_MAX):
            for result in self.api.unsubscribed_from_all(chunk):
                if not isinstance(result, Mapping):
                    continue
                for wide in result.get("wideStatuses") or []:
                    if isinstance(wide, Mapping) and wide.get("status") == "UNSUBSCRIBED":
                        found[str(result.get("subscriberIdString", "")).lower()] = wide
        return found

    def _subscription_statuses(self, contacts: list[Any]) -> dict[str, Any]:
        """email -> the status of the configured subscription type (none configured: empty)."""
        wanted = self.settings.subscription_id
        if wanted is None:
            return {}
        emails = [e for c in contacts if (e := _email(c))]
        found: dict[str, Any] = {}
        for chunk in _chunks(emails, SUBSCRIPTION_BATCH_MAX):
            for result in self.api.subscription_statuses(chunk):
                if not isinstance(result, Mapping):
                    continue
                for status in result.get("statuses") or []:
                    if isinstance(status, Mapping) and str(status.get("subscriptionId")) == str(wanted):
                        found[str(result.get("subscriberIdString", "")).lower()] = status
        return found


def _properties(contact: Any) -> Mapping[str, Any]:
    if isinstance(contact, Mapping) and isinstance(contact.get("properties"), Mapping):
        return contact["properties"]
    return {}


def _email(contact: Any) -> str:
    value = _properties(contact).get("email")
    return value.strip().lower() if isinstance(value, str) else ""

"""Incremental pull: contacts, consent (blocklists) and transactional email events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

from segsync import Batch, Stream, payload

from segsync_brevo.account import AccountDirectory
from segsync_brevo.api import BrevoApi
from segsync_brevo.limits import BLOCKED_PAGE_MAX, CONTACTS_PAGE_MAX, EVENTS_MAX_DAYS, EVENTS_PAGE_MAX
from segsync_brevo.mapping import (
    blocked_consent_row,
    blocked_name,
    blocklist_consent_row,
    contact_name,
    contact_row,
    event_name,
    event_row,
)
from segsync_brevo.settings import BrevoSettings


def _ts(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _modified_at(item: Any, key: str) -> datetime | None:
    """An item's ``key`` time for cursors and windows; None when it has none that parses (the
    item's mapping then reports it, if it needs it)."""
    try:
        found = payload.timestamp(payload.record(item), key)
    except payload.PayloadError:
        return None
    return found[1] if found else None


def _after(item: Any, key: str, since: str | None, *, or_equal: bool = False) -> bool:
    """Whether ``item`` is newer than an earlier pull's mark; an item without a readable time
    is kept, so that its mapping reports it as a record error instead of dropping it."""
    when = _modified_at(item, key)
    if since is None or when is None:
        return True
    return when >= _ts(since) if or_equal else when > _ts(since)


def _today() -> date:
    return datetime.now(timezone.utc).date()


class Reader:
    def __init__(self, api: BrevoApi, settings: BrevoSettings, directory: AccountDirectory) -> None:
        self.api = api
        self.settings = settings
        self.directory = directory

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        if stream is Stream.CONTACTS:
            yield from self._contacts(cursor or {}, consent=False)
        elif stream is Stream.CONSENT:
            yield from self._contacts(cursor or {}, consent=True)
        elif stream is Stream.EVENTS:
            yield from self._events(cursor or {})

    # -- contacts and their blocklist flag ------------------------------------------------

    def _contact_pages(self, since: str | None, offset: int) -> Iterator[tuple[list[dict], int]]:
        while True:
            page = self.api.get_contacts(limit=CONTACTS_PAGE_MAX, offset=offset, modified_since=since)
            items = page.get("contacts") or []
            offset += len(items)
            yield items, offset
            if len(items) < CONTACTS_PAGE_MAX or offset >= int(page.get("count") or 0):
                return

    def _contacts(self, cursor: dict[str, Any], *, consent: bool) -> Iterator[Batch]:
        """Pages of GET /contacts?modifiedSince=... sorted by creation (ascending).

        Brevo sorts by creation, not modification, so the high-water mark is only safe to
        store after the last page; intermediate batches carry the page offset instead, and a
        run that stops half-way resumes from it with the same ``modifiedSince``.
        """
        since = cursor.get("modified_since")
        high = cursor.get("high_water", since)
        stream = Stream.CONSENT if consent else Stream.CONTACTS
        list_names = {} if consent else self.directory.lists()
        reverse = {v: k for k, v in self.settings.brevo_attributes().items()}
        pages = self._contact_pages(since, int(cursor.get("offset", 0)))
        for items, offset in pages:
            for item in items:
                modified = _modified_at(item, "modifiedAt")
                if modified is not None and (high is None or modified > _ts(high)):
                    high = item["modifiedAt"]
            if consent:
                rows, names, problems = payload.translate(items, blocklist_consent_row, contact_name)
            else:
                rows, names, problems = payload.translate(
                    items, lambda c: contact_row(c, reverse, list_names), contact_name)
            last = len(items) < CONTACTS_PAGE_MAX
            next_cursor = (
                {"modified_since": high}
                if last
                else {"modified_since": since, "offset": offset, "high_water": high}
            )
            if consent:
                # Consent also carries the transactional blocklist's own cursor.
                next_cursor["blocked_since"] = cursor.get("blocked_since")
            yield Batch(stream=stream, cursor=next_cursor, rows=rows, record_ids=names, problems=problems)
            if last:
                cursor = {**cursor, **next_cursor}
        if consent:
            yield from self._blocked(cursor)

    def _blocked(self, cursor: dict[str, Any]) -> Iterator[Batch]:
        """GET /smtp/blockedContacts: hard bounces, complaints, unsubscribes, admin blocks."""
        since = cursor.get("blocked_since")
        start = _ts(since).date() if since else date(2000, 1, 1)
        high = since
        offset = 0
        base = {k: v for k, v in cursor.items() if k != "offset"}
        while True:
            page = self.api.get_blocked_contacts(
                start_date=start.isoformat(), end_date=_today().isoformat(),
                limit=BLOCKED_PAGE_MAX, offset=offset,
            )
            items = page.get("contacts") or []
            offset += len(items)
            # Days are the API's granularity; drop what an earlier pull already covered.
            fresh = [item for item in items if _after(item, "blockedAt", since)]
            rows, names, problems = payload.translate(fresh, blocked_consent_row, blocked_name)
            for row in rows:
                if high is None or _ts(row["timestamp"]) > _ts(high):
                    high = row["timestamp"]
            done = len(items) < BLOCKED_PAGE_MAX or offset >= int(page.get("count") or 0)
            if rows or problems or done:
                # Like contacts, the mark is only safe once every page of the window is in.
                yield Batch(
                    stream=Stream.CONSENT,
                    cursor={**base, "blocked_since": high if done else since},
                    rows=rows,
                    record_ids=names,
                    problems=problems,
                )
            if done:
                return

    # -- events --------------------------------------------------------------------------

    def _events(self, cursor: dict[str, Any]) -> Iterator[Batch]:
        """GET /smtp/statistics/events in ascending date order, at most 90 days a window."""
        since = cursor.get("since")
        today = _today()
        start = _ts(since).date() if since else today - timedelta(days=self.settings.events_initial_days - 1)
        start = max(start, today - timedelta(days=EVENTS_MAX_DAYS - 1))
        high = since
        offset = 0
        while True:
            page = self.api.get_email_events(
                start_date=start.isoformat(), end_date=today.isoformat(),
                limit=EVENTS_PAGE_MAX, offset=offset,
            )
            items = page.get("events") or []
            offset += len(items)
            # Equal timestamps are pulled again: the store deduplicates on the stable id.
            fresh = [item for item in items if _after(item, "date", since, or_equal=True)]
            rows, names, problems = payload.translate(fresh, event_row, event_name)
            for item in items:
                when = _modified_at(item, "date")
                if when is not None and (high is None or when > _ts(high)):
                    high = item["date"]
            done = len(items) < EVENTS_PAGE_MAX
            yield Batch(stream=Stream.EVENTS, cursor={"since": high if done else since}, rows=rows,
                        record_ids=names, problems=problems)
            if done:
                return

"""Incremental pulls: members (contacts and consent) and campaign activity (events).

Members are paged at the API's maximum (``count`` 1000) inside a fixed window
``since_last_changed < last_changed < before_last_changed`` sorted by ``last_changed``; the
window's upper bound is the pull's start, so members that change during the pull leave the
window instead of shifting pages (and are read by the next pull). A member leaving the window
still moves later rows one place up, so a drop in ``total_items`` between pages moves the offset
back by as much (re-reading a row is harmless, skipping one is not). Each batch carries a cursor
that resumes exactly there; the last one starts the next window at this pull's start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from segsync import Batch, Stream, payload

from segsync_mailchimp import mapping
from segsync_mailchimp.api import MailchimpApi, now_utc
from segsync_mailchimp.settings import MailchimpSettings

PAGE = 1000  # the API's maximum page size


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _last_then_final(batches: Iterator[Batch], final_cursor: Any, stream: Stream) -> Iterator[Batch]:
    """Hold one batch back so the last one carries the final cursor (an empty batch if none)."""
    held: Batch | None = None
    for batch in batches:
        if held is not None:
            yield held
        held = batch
    if held is None:
        yield Batch(stream=stream, cursor=final_cursor, rows=[])
    else:
        held.cursor = final_cursor
        yield held


class MemberReader:
    def __init__(self, api: MailchimpApi, settings: MailchimpSettings) -> None:
        self.api, self.settings = api, settings

    def read(self, stream: Stream, cursor: dict[str, Any] | None,
             to_row: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[Batch]:
        cursor = dict(cursor or {})
        before = cursor.get("before") or _iso(now_utc())
        overlap = timedelta(seconds=self.settings.cursor_overlap_seconds)
        final = {"since": _iso(datetime.fromisoformat(before) - overlap)}
        # Archived contacts are not listed unless asked for; they are read as a second window.
        statuses = cursor.get("statuses") or [None, "archived"]
        pages = self._pages(stream, cursor, before, statuses, to_row)
        return _last_then_final(pages, final, stream)

    def _pages(self, stream: Stream, cursor: dict[str, Any], before: str, statuses: list[str | None],
               to_row: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Iterator[Batch]:
        since = cursor.get("since")
        offset = int(cursor.get("offset") or 0)
        for i, status in enumerate(statuses):
            total: int | None = cursor.get("total") if i == 0 else None
            while True:
                query: dict[str, Any] = {"count": PAGE, "offset": offset, "before_last_changed": before,
                                         "sort_field": "last_changed", "sort_dir": "ASC"}
                if since:
                    query["since_last_changed"] = since
                if status:
                    query["status"] = status
                page = self.api.call("list members", lambda c: c.lists.get_list_members_info(
                    self.settings.list_id, **query)) or {}
                members = page.get("members") or []
                new_total = int(page.get("total_items") or 0)
                shrunk = max(0, (total or new_total) - new_total)
                offset = max(0, offset + len(members) - shrunk)
                total = new_total
                rows, names, problems = payload.translate(members, to_row, mapping.member_name)
                resume = {"since": since, "before": before, "offset": offset, "total": total,
                          "statuses": statuses[i:]}
                if members:
                    yield Batch(stream=stream, cursor=resume, rows=rows, record_ids=names, problems=problems)
                if len(members) < PAGE or offset >= total:
                    break
            offset = 0


class ActivityReader:
    """Opens, clicks and bounces (email-activity) and unsubscribes of the audience's campaigns.

    Campaigns are found by send time: those sent since ``activity_window_days`` before the
    cursor (activity keeps arriving after a send). Activity is asked for ``since`` the cursor;
    event ids are stable, so the overlap re-reads nothing twice into the store.
    """

    def __init__(self, api: MailchimpApi, settings: MailchimpSettings) -> None:
        self.api, self.settings = api, settings

    def read(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        since = (cursor or {}).get("since")
        started = now_utc()
        final = {"since": _iso(started - timedelta(seconds=self.settings.cursor_overlap_seconds))}
        return _last_then_final(self._batches(since, cursor), final, Stream.EVENTS)

    def _batches(self, since: str | None, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        for campaign in self._campaigns(since):
            offset = 0
            while True:
                query: dict[str, Any] = {"count": PAGE, "offset": offset}
                if since:
                    query["since"] = since
                page = self.api.call("email activity", lambda c: c.reports.get_email_activity_for_campaign(
                    campaign["id"], **query)) or {}
                emails = page.get("emails") or []
                rows, names, problems = payload.translate(
                    emails, lambda row: mapping.activity_events(row, campaign), mapping.activity_name)
                if rows or problems:
                    yield Batch(stream=Stream.EVENTS, cursor=cursor, rows=rows, record_ids=names, problems=problems)
                offset += len(emails)
                if len(emails) < PAGE or offset >= int(page.get("total_items") or 0):
                    break
            yield from self._unsubscribes(campaign, since, cursor)

    def _unsubscribes(self, campaign: dict[str, Any], since: str | None, cursor: Any) -> Iterator[Batch]:
        bound = datetime.fromisoformat(since) if since else None
        offset = 0
        while True:
            page = self.api.call("unsubscribes", lambda c: c.reports.get_unsubscribed_list_for_campaign(
                campaign["id"], count=PAGE, offset=offset)) or {}
            items = page.get("unsubscribes") or []
            rows, names, problems = payload.translate(
                items, lambda u: mapping.unsubscribe_event(u, campaign, bound), mapping.activity_name)
            if rows or problems:
                yield Batch(stream=Stream.EVENTS, cursor=cursor, rows=rows, record_ids=names, problems=problems)
            offset += len(items)
            if len(items) < PAGE or offset >= int(page.get("total_items") or 0):
                break

    def _campaigns(self, since: str | None) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {"count": PAGE}
        if since:
            window = timedelta(days=self.settings.activity_window_days)
            query["since_send_time"] = _iso(datetime.fromisoformat(since) - window)
        offset = 0
        while True:
            page = self.api.call("campaign reports", lambda c: c.reports.get_all_campaign_reports(
                offset=offset, **query)) or {}
            reports = page.get("reports") or []
            for report in sorted(reports, key=lambda r: r.get("send_time") or ""):
                if report.get("list_id") == self.settings.list_id:
                    yield report
            offset += len(reports)
            if len(reports) < PAGE or offset >= int(page.get("total_items") or 0):
                break

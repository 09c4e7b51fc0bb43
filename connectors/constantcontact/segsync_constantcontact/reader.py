"""Incremental pull of contacts and their permission to send, by ``updated_after``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from segsync import Batch, Stream, payload

from segsync_constantcontact.api import ConstantContactApi, ConstantContactError
from segsync_constantcontact.directory import Directory
from segsync_constantcontact.limits import CONTACTS_PAGE_MAX
from segsync_constantcontact.mapping import contact_name, contact_row, consent_row
from segsync_constantcontact.settings import ConstantContactSettings

INCLUDE = "custom_fields,list_memberships,taggings"


def updated_at(item: Any) -> tuple[str, datetime] | None:
    """An item's ``updated_at`` (text and value); None when it has none that parses (its
    mapping then reports it, if it needs it)."""
    try:
        return payload.timestamp(payload.record(item), "updated_at")
    except payload.PayloadError:
        return None


class Reader:
    def __init__(self, api: ConstantContactApi, settings: ConstantContactSettings, directory: Directory) -> None:
        self.api = api
        self.settings = settings
        self.directory = directory

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        if stream in (Stream.CONTACTS, Stream.CONSENT):
            yield from self._contacts(stream, cursor or {})

    def _contacts(self, stream: Stream, cursor: dict[str, Any]) -> Iterator[Batch]:
        """Pages of ``GET /contacts?updated_after=…``, following ``_links.next``.

        Constant Contact documents no order for the collection, so the high-water mark (the
        newest ``updated_at`` seen) is stored only with the last page; earlier batches carry the
        ``next`` link to resume from, with the mark so far. A resumed walk whose link the API no
        longer accepts starts the same window again (the store drops what it already holds).
        """
        since = cursor.get("updated_after")
        high = cursor.get("high_water", since)
        params: dict[str, Any] = {"limit": CONTACTS_PAGE_MAX, "include": INCLUDE}
        if since:
            params["updated_after"] = since
        mark = datetime.fromisoformat(since) if since else None
        to_row = self._to_row(stream)
        start = cursor.get("next")
        try:
            yield from self._walk(stream, params, start, since, high, mark, to_row)
        except ConstantContactError as exc:
            if start is None or exc.status not in (400, 404):
                raise
            # The saved cursor expired: walk the whole window again.
            yield from self._walk(stream, params, None, since, high, mark, to_row)

    def _walk(self, stream: Stream, params: dict[str, Any], start: str | None, since: str | None,
              high: str | None, mark: datetime | None, to_row: Callable[[Any], Any]) -> Iterator[Batch]:
        for items, nxt in self.api.pages("/contacts", "contacts", params, endpoint="contacts.list", start=start):
            # updated_after is "after": an item at the mark itself was read before.
            fresh = [item for item in items if (found := updated_at(item)) is None or mark is None or found[1] > mark]
            for item in fresh:
                found = updated_at(item)
                if found and (high is None or found[1] > datetime.fromisoformat(high)):
                    high = found[1].isoformat()
            rows, names, problems = payload.translate(fresh, to_row, contact_name)
            cursor = ({"updated_after": high} if nxt is None
                      else {"updated_after": since, "next": nxt, "high_water": high})
            yield Batch(stream=stream, cursor=cursor, rows=rows, record_ids=names, problems=problems)

    def _to_row(self, stream: Stream) -> Callable[[Any], Any]:
        if stream is Stream.CONSENT:
            return consent_row
        reverse = {column: attribute for attribute, column in self.settings.import_columns().items()}
        fields = {field_id: name for name, field_id in self.directory.custom_fields().items()}
        lists = {list_id: name for name, list_id in self.directory.lists().items()}
        tags = {tag_id: name for name, tag_id in self.directory.tags().items()}
        return lambda item: contact_row(item, reverse, fields, lists, tags)

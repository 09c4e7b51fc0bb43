"""Paging through a collection: by offset/limit, by cursor (``after``), or by RFC 8288 (ex-5988)
``Link: <…>; rel="next"`` headers.

The first two take a ``fetch`` function, so they serve a ``requests`` session and an SDK call
alike; they yield one page's items at a time (commit a cursor per page if you like). ``items``,
``total`` and ``next_cursor`` are a key of the page, a dotted path (``"paging.next.after"``) or
a function of the page. Each stops at an empty page; the offset walk also at a short page or
the reported total; the cursor walk at a missing cursor, and refuses to loop on a cursor it
has already followed (:class:`PaginationError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from segsync.http.safelog import safe_url
from segsync.http.session import raise_for_status

Page = Mapping[str, Any]
Field = str | Callable[[Any], Any]


class PaginationError(Exception):
    """The service's paging went wrong (a cursor repeated: following it would never end)."""


def pick(page: Any, field: Field) -> Any:
    """``field`` of ``page``: a callable's result, or the value at a dotted path (None if absent)."""
    if callable(field):
        return field(page)
    value = page
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def offset_pages(
    fetch: Callable[[int, int], Any],
    *,
    limit: int,
    items: Field,
    total: Field | None = None,
    start: int = 0,
) -> Iterator[list[Any]]:
    """Pages of ``fetch(offset, limit)``, offset advancing by the items each page held."""
    if limit < 1:
        raise ValueError("page limit must be at least 1")
    offset = start
    while True:
        page = fetch(offset, limit)
        found = list(pick(page, items) or [])
        if not found:
            return
        yield found
        offset += len(found)
        reported = pick(page, total) if total is not None else None
        if len(found) < limit or (reported is not None and offset >= int(reported)):
            return


def cursor_pages(
    fetch: Callable[[str | None], Any],
    *,
    items: Field,
    next_cursor: Field,
    start: str | None = None,
) -> Iterator[list[Any]]:
    """Pages of ``fetch(cursor)`` (``start`` first, None: the first page) until no cursor comes."""
    cursor = start
    followed: set[str] = set()
    while True:
        page = fetch(cursor)
        found = list(pick(page, items) or [])
        if found:
            yield found
        cursor = pick(page, next_cursor)
        if cursor in (None, "") or not found:
            return
        cursor = str(cursor)
        if cursor in followed:
            raise PaginationError(f"the service returned the cursor {cursor!r} twice; stopped paging")
        followed.add(cursor)


def link_pages(
    session: requests.Session,
    url: str,
    *,
    items: Field,
    params: Mapping[str, Any] | None = None,
    endpoint: str | None = None,
) -> Iterator[list[Any]]:
    """Pages of JSON from ``url``, then from each ``Link: rel="next"`` URL (which carries its own
    query, so ``params`` go with the first request only). An error answer raises
    :class:`~segsync.http.HttpError`."""
    followed: set[str] = set()
    next_url: str | None = url
    kwargs: dict[str, Any] = {"params": dict(params or {})}
    if endpoint is not None:
        kwargs["endpoint"] = endpoint
    while next_url:
        response = raise_for_status(session.get(next_url, **kwargs), endpoint)
        kwargs.pop("params", None)
        found = list(pick(response.json(), items) or [])
        if found:
            yield found
        next_url = response.links.get("next", {}).get("url")
        if not found or not next_url:
            return
        if next_url in followed:
            raise PaginationError(f"the service linked {safe_url(next_url)} as the next page twice; stopped paging")
        followed.add(next_url)

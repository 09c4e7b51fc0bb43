"""Builders of the records tests need: what a source yields, and what a destination is given.

Rows use the canonical columns of docs/records.md, ready for ``Batch(rows=[...])``; every
argument has a plausible default, so a test names only what it is about::

    Batch(Stream.EVENTS, cursor={"page": 1}, rows=[event("ann@example.com", "email.clicked")])
    connector.write([change("bo@example.com", status="unsubscribed", previous_status="subscribed")])

Times may be given as aware ``datetime`` objects or ISO 8601 text; rows hold the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from segsync import Batch, ContactChange, Stream

DEFAULT_TIME = "2024-01-01T00:00:00Z"


def _iso(when: datetime | str) -> str:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError(f"{when!r} has no time zone; segsync rejects such timestamps")
        return when.isoformat()
    return when


def contact(email: str = "ann@example.com", **attributes: Any) -> dict[str, Any]:
    """A contact row: ``email`` and attribute columns (``first_name="Ann"``, ``country="DE"``,
    or any custom attribute); ``None`` values are left out."""
    return {"email": email, **{k: v for k, v in attributes.items() if v is not None}}


def event(
    email: str = "ann@example.com",
    type: str = "email.opened",
    timestamp: datetime | str = DEFAULT_TIME,
    id: str | None = None,
    *,
    properties: Mapping[str, Any] | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """An event row. ``id`` (the source's event id, the deduplication key) defaults to one made
    of the address, type and time, so the same event built twice is one event; ``columns`` are
    ``value``, ``currency``, ``url``, ``category``."""
    when = _iso(timestamp)
    row = {"email": email, "type": type, "timestamp": when, "id": id or f"{type}:{email}:{when}", **columns}
    if properties is not None:
        row["properties"] = dict(properties)
    return row


def consent(
    email: str = "ann@example.com",
    status: Literal["opted_in", "opted_out", "pending", "bounced", "complained"] = "opted_in",
    timestamp: datetime | str = DEFAULT_TIME,
    method: str = "form",
    *,
    channel: str = "email",
    purpose: str = "marketing",
    evidence: str | None = None,
) -> dict[str, Any]:
    """A consent row: a ledger status with its time and method (``form``, ``double_opt_in``,
    ``import``, …: ``segsync.CONSENT_METHODS``)."""
    row = {"email": email, "channel": channel, "purpose": purpose, "status": status,
           "timestamp": _iso(timestamp), "method": method}
    if evidence is not None:
        row["evidence"] = evidence
    return row


def batch(stream: Stream, *rows: Mapping[str, Any], cursor: Any = None) -> Batch:
    """A ``Batch`` of ``rows`` of ``stream`` with ``cursor`` (JSON-serialisable)."""
    return Batch(stream, cursor=cursor, rows=[dict(r) for r in rows])


def change(
    email: str = "ann@example.com",
    *,
    op: Literal["upsert", "delete"] = "upsert",
    status: str = "subscribed",
    attributes: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    tags_add: Iterable[str] | None = None,
    tags_remove: Iterable[str] = (),
    previous_status: str | None = None,
    external_id: str | None = None,
    consent_method: str | None = "form",
) -> ContactChange:
    """A ``ContactChange`` as the push stage hands it to a destination.

    ``tags`` are the segments the person is in after the change; ``tags_add`` defaults to all
    of them (a first push), ``tags_remove`` to none. ``previous_status`` None means the
    destination has never acknowledged the person. ``consent_method`` is the method of the
    ledger record that decided ``status``.
    """
    held = tuple(tags)
    return ContactChange(
        contact_key=email, op=op, status=status, attributes=dict(attributes or {}), tags=held,
        tags_add=held if tags_add is None else tuple(tags_add), tags_remove=tuple(tags_remove),
        previous_status=previous_status, external_id=external_id, consent_method=consent_method,
    )

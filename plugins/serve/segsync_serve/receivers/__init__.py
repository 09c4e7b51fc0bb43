"""Webhook receivers: what one service's webhook request means, as canonical records.

A receiver is chosen by the connection's connector type (``mailchimp``, ``brevo``). It checks
the request's credentials (:class:`Unauthorized` → 401), reads its payload into batches of
canonical rows, the same rows the connector's pull makes of the same facts (:class:`Malformed`
→ 400 with the reason, nothing queued), and registers the webhook with the service through the
service's own webhook API. Nothing here touches the store: the inbox keeps the rows and the
worker applies them (``segsync.live``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from segsync import Batch, Connector


class Unauthorized(Exception):
    """The request does not carry the webhook secret."""


class Malformed(Exception):
    """The payload is not what the service sends; the message says what and where."""


@dataclass(frozen=True)
class Delivery:
    """One webhook request as the app received it (header names in lower case)."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


@dataclass
class Received:
    """What a delivery brings: batches to apply, and the events it holds that segsync does not
    use (their types, e.g. ``opened``), which are acknowledged and not queued."""

    batches: list[Batch] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(b.rows or ()) for b in self.batches)


class Receiver(Protocol):
    """How one service sends webhooks (see :mod:`.mailchimp`, :mod:`.brevo`)."""

    def authenticate(self, delivery: Delivery, secret: str) -> None: ...

    def parse(self, delivery: Delivery, connector: Connector) -> Received: ...

    def register(self, connector: Connector, url: str, secret: str) -> str: ...

    def url(self, public_url: str, connection: str, secret: str) -> str: ...


def receiver_for(connector_type: str) -> Receiver | None:
    """The receiver of a connector type; None when segsync serve takes no webhooks from it."""
    if connector_type == "mailchimp":
        from segsync_serve.receivers.mailchimp import MailchimpReceiver

        return MailchimpReceiver()
    if connector_type == "brevo":
        from segsync_serve.receivers.brevo import BrevoReceiver

        return BrevoReceiver()
    return None


def same_secret(given: str | None, secret: str) -> bool:
    """Constant-time comparison (a timing difference must not reveal the secret)."""
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


def consent_row(email: str, status: str, timestamp: str, method: str, evidence: str) -> dict[str, Any]:
    """A consent row as the connectors' pulls make them (``segsync.testing.records.consent``)."""
    return {"email": email, "channel": "email", "purpose": "marketing", "status": status,
            "timestamp": timestamp, "method": method, "evidence": evidence}


def text_field(record: Mapping[str, Any], name: str, *, where: str = "") -> str:
    """A required, non-empty text field, or :class:`Malformed` naming it."""
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        shown = "missing" if value is None else f"not a non-empty text: {str(value)[:40]!r}"
        raise Malformed(f"{where}{name}: {shown}")
    return value.strip()


def one_batch(stream_rows: Sequence[tuple[Any, dict[str, Any], str]]) -> list[Batch]:
    """Rows grouped into one batch per stream, each row named (``record_ids``) for record errors."""
    by_stream: dict[Any, tuple[list[dict[str, Any]], list[str]]] = {}
    for stream, row, name in stream_rows:
        rows, names = by_stream.setdefault(stream, ([], []))
        rows.append(row)
        names.append(name)
    return [Batch(stream, None, rows, record_ids=names) for stream, (rows, names) in by_stream.items()]

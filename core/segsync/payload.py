"""Reading API payloads field by field, for connectors' mappings.

A service's JSON may hold anything: a missing field, a number where text belongs, an object
where a list belongs, a date that is not one. A mapping reads each field it needs through these
helpers; a field of the wrong shape raises :class:`PayloadError` naming the field, and
:func:`translate` turns that into a :class:`~segsync.connector.RecordProblem` naming the record,
so one odd record is one record error and the rest of the page loads. Values are checked only
for the shape the mapping needs; the store validates canonical values (addresses, statuses,
timestamps) itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from segsync.connector import RecordProblem

SHOWN_CHARS = 60  # how much of an odd value an error message quotes


class PayloadError(ValueError):
    """A record a mapping cannot translate: ``field`` is the payload's field, ``reason`` why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def show(value: Any) -> str:
    """A value for an error message: its JSON-ish repr, cut to :data:`SHOWN_CHARS`."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def record(payload: Any, what: str = "record") -> Mapping[str, Any]:
    """The payload itself, which must be an object."""
    if not isinstance(payload, Mapping):
        raise PayloadError(what, f"not an object but {_kind(payload)}")
    return payload


def text(payload: Mapping[str, Any], key: str, *, required: bool = False, prefix: str = "") -> str | None:
    """``payload[key]`` as text; None when absent, null or empty (unless ``required``)."""
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(prefix + key, "missing")
        return None
    if not isinstance(value, str):
        raise PayloadError(prefix + key, f"not text but {_kind(value)}: {show(value)}")
    return value


def identifier(payload: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    """An id the service sends as text or as a whole number, as text."""
    value = payload.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(payload, key, required=required)


def obj(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``payload[key]`` as an object; empty when absent or null."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(key, f"not an object but {_kind(value)}: {show(value)}")
    return value


def items(payload: Mapping[str, Any], key: str) -> list[Any]:
    """``payload[key]`` as a list; empty when absent or null."""
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(key, f"not a list but {_kind(value)}: {show(value)}")
    return value


def flag(payload: Mapping[str, Any], key: str) -> bool:
    """``payload[key]`` as true/false; false when absent or null."""
    value = payload.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise PayloadError(key, f"not true/false but {_kind(value)}: {show(value)}")
    return value


def timestamp(payload: Mapping[str, Any], key: str, *, required: bool = False) -> tuple[str, datetime] | None:
    """``payload[key]`` as an ISO 8601 date-time: the text as sent and its value (UTC when the
    text has no offset); None when absent, null or empty (unless ``required``)."""
    raw = text(payload, key, required=required)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise PayloadError(key, f"not an ISO 8601 date-time: {show(raw)}") from None
    return raw, value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def translate(
    payloads: Iterable[Any],
    to_row: Callable[[Any], Mapping[str, Any] | list[Mapping[str, Any]] | None],
    name: Callable[[Any, int], str],
) -> tuple[list[Mapping[str, Any]], list[str], list[RecordProblem]]:
    """Rows, their record names and the problems of ``payloads``, in order.

    ``to_row`` maps one payload to a row, a list of rows (e.g. one recipient's opens and
    clicks) or None (nothing to load, e.g. a status that carries no consent), and raises
    :class:`PayloadError` for one it cannot map; ``name(payload, position)`` names a record for
    error messages (an id, a masked address; never a raw address or secret).
    """
    rows: list[Mapping[str, Any]] = []
    names: list[str] = []
    problems: list[RecordProblem] = []
    for position, payload in enumerate(payloads):
        try:
            row = to_row(payload)
        except PayloadError as exc:
            problems.append(RecordProblem(name(payload, position), exc.field, exc.reason))
            continue
        produced = row if isinstance(row, list) else [] if row is None else [row]
        rows.extend(produced)
        names.extend([name(payload, position)] * len(produced))
    return rows, names, problems

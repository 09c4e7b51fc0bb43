"""The connector contract, checked where the run takes a connector's answers.

What a connector hands back is checked before anything of it is stored: each batch ``read``
yields (a :class:`~segsync.connector.Batch` of the stream asked for, with a cursor that JSON can
store as it is) and each ``write`` answer (a :class:`~segsync.connector.WriteResult` whose
outcomes are :class:`~segsync.connector.Outcome` objects with a known
:class:`~segsync.statuses.OutcomeStatus`, exactly one per change it was given). A breach is a
:class:`ContractError` naming the plugin and the connection: the pull stage fails that source's
stream (nothing of the batch is committed); the gate (:mod:`segsync.sync.gate`) acknowledges
nothing the breach touches, records it for each change, and the destination's part of the run is
not ``ok``. Other connections go on.
"""

from __future__ import annotations

import json
from typing import Any

from segsync.connector import Batch, Outcome, Stream
from segsync.statuses import OutcomeStatus
from segsync.sync.frozen import constructor

_STATUSES = {s.value: s for s in OutcomeStatus}
_outcome = constructor(Outcome)  # every field read and typed here first
_STATUS_WORDS = ", ".join(_STATUSES)


class ContractError(Exception):
    """A connector broke the contract; the message names its plugin and connection."""

    def __init__(self, plugin: str | None, connection: str, what: str) -> None:
        who = f"plugin {plugin!r}" if plugin else "the connector"
        super().__init__(f"contract error: {who} (connection {connection!r}) {what}")


def check_batch(value: object, stream: Stream) -> str | None:
    """What is wrong with ``value`` as a batch ``read(stream)`` yielded (None: nothing)."""
    if not isinstance(value, Batch):
        return f"yielded {type_name(value)} from read({stream.value}), not a Batch"
    if value.stream is not stream:
        got = value.stream.value if isinstance(value.stream, Stream) else repr(value.stream)
        return f"yielded a {got} batch from read({stream.value})"
    try:
        json.dumps(value.cursor, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return (f"yielded a {stream.value} batch whose cursor is not JSON-serialisable ({exc}); "
                "a cursor must be made of dicts, lists, text, numbers, booleans and None")
    return None


def read_outcome(value: object) -> Outcome | str:
    """A fresh, plain Outcome read once from ``value``, or what is wrong with it.

    Only a real :class:`Outcome` counts, its key text, its status one of the known words
    (looked up by its characters, so what is kept is always an :class:`OutcomeStatus` member);
    the other fields are kept when they are text.
    """
    if not isinstance(value, Outcome):
        return f"an outcome of type {type_name(value)}, not an Outcome"
    try:
        key, status, reason, field, external_id = (
            value.contact_key, value.status, value.reason, value.field, value.external_id)
    except Exception as exc:
        return f"an Outcome whose fields cannot be read ({type(exc).__name__})"
    if type(key) is not str:
        return f"an Outcome whose contact_key is {type_name(key)}, not str"
    if type(status) is OutcomeStatus:  # a member itself (an enum with members has no subclass)
        return _outcome(contact_key=key, status=status, reason=_text(reason), field=_text(field),
                        external_id=_text(external_id))
    # str.__str__ copies a subclass's characters without running its code.
    known = _STATUSES.get(str.__str__(status)) if isinstance(status, str) else None
    if known is None:
        shown = repr(str.__str__(status)) if isinstance(status, str) else f"of type {type_name(status)}"
        return f"an Outcome with status {shown}, not one of {_STATUS_WORDS}"
    return Outcome(key, known, _text(reason), _text(field), _text(external_id))


def type_name(value: Any) -> str:
    """The name of ``value``'s class, for messages (a local class without its ``<locals>`` path)."""
    return type(value).__qualname__.rpartition("<locals>.")[2]


def _text(value: object) -> str | None:
    return value if type(value) is str else None

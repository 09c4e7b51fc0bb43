"""Hypothesis strategies for property tests of a connector's payload mapping.

A mapping (see :mod:`segsync.payload`) must turn any payload into a row, nothing, or a
:class:`~segsync.payload.PayloadError` naming the field; these strategies make the odd payloads
a service may send: every JSON type in every place, unicode, huge strings, nesting.
Needs ``hypothesis`` (the ``test`` extra).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

huge_text = st.integers(min_value=10_000, max_value=200_000).map(lambda n: "é" * n)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | huge_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
"""Any JSON value (what ``json.loads`` can return)."""


def not_text() -> st.SearchStrategy[Any]:
    """A JSON value that is not text and not null (a field's wrong type)."""
    return json_values.filter(lambda v: v is not None and not isinstance(v, str))


def with_field(payload: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``payload`` with ``key`` set to ``value`` (``...``: without ``key``)."""
    changed = dict(payload)
    if value is ...:
        changed.pop(key, None)
    else:
        changed[key] = value
    return changed

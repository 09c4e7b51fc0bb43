"""Contact attributes rules can read as ``attr.NAME``.

Known names map to ``contacts`` columns with their types; any other plain identifier is read
from the ``custom`` JSON column as text (``attr.custom.NAME`` forces that reading, for custom
keys whose names are close to a known column and would otherwise be taken for a typo).
"""

from __future__ import annotations

import difflib
import re

from .functions import Attribute

KNOWN_ATTRIBUTES: dict[str, str] = {
    "first_name": "string",
    "last_name": "string",
    "company": "string",
    "job_title": "string",
    "department": "string",
    "industry": "string",
    "company_size": "number",
    "country": "string",
    "timezone": "string",
    "lifecycle_stage": "string",
    "created_at": "timestamp",
    # contact_key is the normalized email; readable so rules can match domains exactly.
    "contact_key": "string",
    "email": "string",
}
_COLUMN = {"email": "contact_key"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def resolve_attribute(parts: tuple[str, ...]) -> Attribute:
    """Resolve the dotted name after ``attr`` (``("country",)``, ``("custom", "tier")``).

    Raises ``ValueError`` with a suggestion for names that look like typos of known ones.
    """
    if not parts:
        raise ValueError("expected an attribute name after 'attr.', e.g. attr.country")
    if parts[0] == "custom" and len(parts) == 2:
        return _custom(parts[1])
    if len(parts) != 1:
        raise ValueError(
            f"attribute names have one part: 'attr.{'.'.join(parts)}' (custom attributes "
            "are written attr.NAME or attr.custom.NAME)"
        )
    name = parts[0]
    if name in KNOWN_ATTRIBUTES:
        return Attribute(name, _COLUMN.get(name, name), KNOWN_ATTRIBUTES[name])  # type: ignore[arg-type]
    close = difflib.get_close_matches(name, list(KNOWN_ATTRIBUTES), n=1, cutoff=0.8)
    if close:
        raise ValueError(
            f"unknown attribute {name!r}; did you mean {close[0]!r}? (if {name!r} really is a "
            f"custom attribute, write attr.custom.{name})"
        )
    return _custom(name)


def _custom(name: str) -> Attribute:
    if not _IDENT.match(name):
        raise ValueError(f"custom attribute names are identifiers, not {name!r}")
    return Attribute(name, None, "any")

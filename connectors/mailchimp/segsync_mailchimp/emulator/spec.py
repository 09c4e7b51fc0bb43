"""Request validation against Mailchimp's OpenAPI document (the kit's :class:`OpenApiValidator`).

Only requests are checked: the spec's request bodies and parameters are reliable, but several of
its response schemas are wrong (see ``../shared/specs/README.md``), so responses follow
Mailchimp's reference docs instead. The spec lives outside the package, at
``<repo>/../shared/specs/``; ``SEGSYNC_MAILCHIMP_SPEC`` points elsewhere. Without it the emulator
still runs, with a warning, and validation is skipped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from segsync.testing.emulator.openapi import OpenApiValidator, find_spec, load_spec, warn_missing

SPEC_ENV = "SEGSYNC_MAILCHIMP_SPEC"
SPEC_NAME = "mailchimp-marketing-v3.openapi.yaml"


def spec_validator() -> OpenApiValidator | None:
    path = find_spec(SPEC_NAME, SPEC_ENV, Path(__file__))
    if path is None:
        warn_missing("Mailchimp", SPEC_NAME, SPEC_ENV)
        return None
    return _validator(str(path))


@lru_cache(maxsize=4)
def _validator(path: str) -> OpenApiValidator:
    doc = load_spec(path)
    _apply_errata(doc)
    return OpenApiValidator(doc)


def _apply_errata(doc: dict[str, Any]) -> None:
    """Correct the generator's known mistakes in *request* schemas.

    ``merge_fields`` values are typed ``object`` in this re-serialised spec, while Mailchimp
    takes strings and numbers (and objects only for address fields); the constraint is dropped.
    """
    for schema in doc.get("components", {}).get("schemas", {}).values():
        merge_fields = (schema.get("properties") or {}).get("merge_fields")
        if isinstance(merge_fields, dict):
            extra = merge_fields.get("additionalProperties")
            if isinstance(extra, dict) and extra.get("type") == "object":
                extra.pop("type")

"""Request and answer validation against Brevo's own Swagger 2.0 spec (the kit's validator).

The spec is ``shared/specs/brevo-v3.swagger.yaml`` beside the repository (found by walking up
from this file) or wherever ``SEGSYNC_BREVO_SPEC`` points. Without it the emulator still runs
and warns once that nothing is checked against the spec.
"""

from __future__ import annotations

from pathlib import Path

from segsync.testing.emulator.openapi import OpenApiValidator, find_spec, warn_missing

SPEC_ENV = "SEGSYNC_BREVO_SPEC"
SPEC_NAME = "brevo-v3.swagger.yaml"


def spec_validator() -> OpenApiValidator | None:
    path = find_spec(SPEC_NAME, SPEC_ENV, Path(__file__))
    if path is None:
        warn_missing("Brevo", SPEC_NAME, SPEC_ENV)
        return None
    return OpenApiValidator.from_file(path)

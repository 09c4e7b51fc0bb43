"""Engines: where segment evaluation, effective consent and the snapshot run (docs/scale.md)."""

from segsync.engines.base import (
    DEFAULT_ENGINE,
    Engine,
    EngineError,
    EngineSettings,
    EngineUnavailable,
)
from segsync.engines.layout import CANONICAL_TABLES, RESULT_TABLES, USER_TABLES
from segsync.segments.dialects import POSTGRES_FUNCTIONS

__all__ = ["CANONICAL_TABLES", "DEFAULT_ENGINE", "Engine", "EngineError", "EngineSettings",
           "EngineUnavailable", "POSTGRES_FUNCTIONS", "RESULT_TABLES", "USER_TABLES"]

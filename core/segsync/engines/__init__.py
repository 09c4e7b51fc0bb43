"""Engines: where segment evaluation, effective consent and the snapshot run (docs/scale.md)."""

from segsync.engines.base import (
    DEFAULT_ENGINE,
    Engine,
    EngineError,
    EngineSettings,
    EngineUnavailable,
)
from segsync.engines.layout import CANONICAL_TABLES, RESULT_TABLES, USER_TABLES

__all__ = ["CANONICAL_TABLES", "DEFAULT_ENGINE", "Engine", "EngineError", "EngineSettings",
           "EngineUnavailable", "RESULT_TABLES", "USER_TABLES"]

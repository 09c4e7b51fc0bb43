"""Names a package re-exports, imported when first used (PEP 562).

``import segsync`` (which every ``import segsync.x`` runs first) must not import what the
re-exported names need (pydantic-settings for ``ConnectorSettings``, DuckDB for the consent
rules): ``segsync --help`` would pay for all of it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``: ``exports`` maps each name to the module
    that defines it; the module is imported on the first access to the name, which is then
    cached in the package."""

    # Where each name comes from, for readers of the package (the architecture test follows it).
    sys.modules[package].__lazy_exports__ = dict(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__

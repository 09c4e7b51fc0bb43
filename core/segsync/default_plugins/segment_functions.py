"""The standard segment functions (docs/rules.md), registered like a third party's.

Their implementation stays in :mod:`segsync.segments.builtins`, beside the compiler it is tuned
with; this module only hands them to the registry.
"""

from __future__ import annotations

from segsync.hookspecs import hookimpl
from segsync.segments.builtins import standard_functions


@hookimpl
def segsync_register_segment_functions(register) -> None:  # noqa: ANN001 - pluggy hook
    for fn in standard_functions():
        register(fn)

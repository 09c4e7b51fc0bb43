"""The standard segment functions (docs/rules.md), registered like a third party's.

Their implementation stays in :mod:`segsync.segments.builtins`, beside the compiler it is tuned
with; this module only hands them to the registry.
"""

from __future__ import annotations

from segsync.hookspecs import hookimpl


@hookimpl
def segsync_register_segment_functions(register) -> None:  # noqa: ANN001 - pluggy hook
    # Imported here, not when the plugin host loads this module: `segsync --help` never
    # compiles a rule (and so never imports sqlglot).
    from segsync.segments.builtins import standard_functions

    for fn in standard_functions():
        register(fn)

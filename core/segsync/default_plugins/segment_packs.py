"""The standard segment packs (:mod:`segsync.segments.packs.standard`), registered like a third
party's.

The packs (and the rule engine they import) load when the hook is called, not when the plugin
host loads this module: `segsync --help` never expands a pack.
"""

from __future__ import annotations

from segsync.hookspecs import hookimpl


@hookimpl
def segsync_register_segment_packs(register) -> None:  # noqa: ANN001 - pluggy hook
    from segsync.segments.packs.standard import PACKS

    for pack in PACKS:
        register(pack)

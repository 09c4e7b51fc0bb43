"""The ``segsync`` command line: one module per command group, each a built-in plugin that adds
its commands through ``segsync_register_commands`` (the hook third parties use).

Shared by the commands: :mod:`.context` (project, plugin host), :mod:`.options` (``--as-of``,
``--json``), :mod:`.output` (console, JSON) and :mod:`.store` (opening the store). Modules
import the store, the rule engine and rich inside the commands that use them, so that
``segsync --help`` starts fast. Nothing outside this package imports it (a test checks).
"""

from segsync.cli.main import cli, main

__all__ = ["cli", "main"]

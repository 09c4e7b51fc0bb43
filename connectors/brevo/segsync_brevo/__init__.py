"""segsync connector for Brevo (ex-Sendinblue), registered through the ``segsync`` entry point.

The plugin host imports this module at every start (``segsync --help`` included); the connector
and its SDK are imported when the connector is first asked for.
"""

from __future__ import annotations

from segsync import hookimpl, lazy_exports

__all__ = ["BrevoConnector", "BrevoSettings", "segsync_register_connectors"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "BrevoConnector": "segsync_brevo.connector",
    "BrevoSettings": "segsync_brevo.settings",
})


@hookimpl
def segsync_register_connectors(register):
    from segsync_brevo.connector import BrevoConnector

    register(BrevoConnector)

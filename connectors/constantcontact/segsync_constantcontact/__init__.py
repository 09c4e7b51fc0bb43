"""segsync connector for Constant Contact (API v3), registered through the ``segsync`` entry point.

The plugin host imports this module at every start (``segsync --help`` included); the connector
and its HTTP client are imported when the connector is first asked for.
"""

from __future__ import annotations

from segsync import hookimpl, lazy_exports

__all__ = ["ConstantContactConnector", "ConstantContactSettings", "segsync_register_connectors"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "ConstantContactConnector": "segsync_constantcontact.connector",
    "ConstantContactSettings": "segsync_constantcontact.settings",
})


@hookimpl
def segsync_register_connectors(register):
    from segsync_constantcontact.connector import ConstantContactConnector

    register(ConstantContactConnector)

"""segsync connector for HubSpot's CRM, registered through the ``segsync`` entry point.

The plugin host imports this module at every start (``segsync --help`` included); the connector
and its HTTP client are imported when the connector is first asked for.
"""

from __future__ import annotations

from segsync import hookimpl, lazy_exports

__all__ = ["HubSpotConnector", "HubSpotSettings", "segsync_register_connectors"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "HubSpotConnector": "segsync_hubspot.connector",
    "HubSpotSettings": "segsync_hubspot.settings",
})


@hookimpl
def segsync_register_connectors(register):
    from segsync_hubspot.connector import HubSpotConnector

    register(HubSpotConnector)

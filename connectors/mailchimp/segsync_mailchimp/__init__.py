"""segsync connector for Mailchimp (Marketing API v3), registered through the ``segsync``
entry-point group like any third-party connector.

The plugin host imports this module at every start (``segsync --help`` included); the connector
and its SDK are imported when the connector is first asked for.
"""

from __future__ import annotations

from collections.abc import Callable

from segsync import hookimpl, lazy_exports

__all__ = ["MailchimpConnector", "MailchimpSettings", "segsync_register_connectors"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "MailchimpConnector": "segsync_mailchimp.connector",
    "MailchimpSettings": "segsync_mailchimp.settings",
})


@hookimpl
def segsync_register_connectors(register: Callable[[type], None]) -> None:
    from segsync_mailchimp.connector import MailchimpConnector

    register(MailchimpConnector)

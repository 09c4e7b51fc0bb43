"""segsync connector for Mailchimp (Marketing API v3), registered through the ``segsync``
entry-point group like any third-party connector."""

from __future__ import annotations

from collections.abc import Callable

from segsync.plugins import hookimpl

from segsync_mailchimp.connector import MailchimpConnector
from segsync_mailchimp.settings import MailchimpSettings

__all__ = ["MailchimpConnector", "MailchimpSettings", "segsync_register_connectors"]


@hookimpl
def segsync_register_connectors(register: Callable[[type], None]) -> None:
    register(MailchimpConnector)

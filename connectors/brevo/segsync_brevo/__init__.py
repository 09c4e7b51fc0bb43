"""segsync connector for Brevo (ex-Sendinblue), registered through the ``segsync`` entry point."""

from __future__ import annotations

from segsync import hookimpl

from segsync_brevo.connector import BrevoConnector
from segsync_brevo.settings import BrevoSettings


@hookimpl
def segsync_register_connectors(register):
    register(BrevoConnector)


__all__ = ["BrevoConnector", "BrevoSettings", "segsync_register_connectors"]

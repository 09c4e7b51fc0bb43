"""segsync: contacts, behaviour and consent in one place, every connected system in step.

The public API for plugin authors is re-exported here (imported on first use, so that importing
any part of segsync stays cheap); everything else is internal.
"""

from segsync.hookspecs import hookimpl
from segsync.lazy import lazy_exports

_CONNECTOR = ("Batch", "Capability", "ConnectorSettings", "Connector", "ContactChange", "FileSlice",
              "Outcome", "OutcomeReport", "Stream", "WriteResult")
_MODEL = ("Attributes", "ConsentRecord", "ConsentStatus", "Contact", "Event", "InvalidEmail",
          "mask_email", "normalize_email")
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(_CONNECTOR, "segsync.connector"),
    **dict.fromkeys(_MODEL, "segsync.model"),
})

__all__ = [
    "Attributes",
    "Batch",
    "Capability",
    "ConnectorSettings",
    "Connector",
    "ConsentRecord",
    "ConsentStatus",
    "Contact",
    "ContactChange",
    "Event",
    "FileSlice",
    "InvalidEmail",
    "Outcome",
    "OutcomeReport",
    "Stream",
    "WriteResult",
    "hookimpl",
    "mask_email",
    "normalize_email",
]

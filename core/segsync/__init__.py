"""segsync: contacts, behaviour and consent in one place, every connected system in step.

The public API for plugin authors is re-exported here; everything else is internal.
"""

from segsync.connector import (
    Batch,
    Capability,
    ConnectorSettings,
    Connector,
    ContactChange,
    FileSlice,
    Outcome,
    OutcomeReport,
    Stream,
    WriteResult,
)
from segsync.model import (
    Attributes,
    ConsentRecord,
    ConsentStatus,
    Contact,
    Event,
    InvalidEmail,
    mask_email,
    normalize_email,
)
from segsync.hookspecs import hookimpl

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

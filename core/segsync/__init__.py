"""segsync: contacts, behaviour and consent in one place, every connected system in step.

The public API for plugin and connector authors is what this package exports (``__all__``),
plus the modules :mod:`segsync.payload` (reading API payloads field by field),
:mod:`segsync.filesource` (source files as the store reads them), :mod:`segsync.http` (the HTTP
kit), :mod:`segsync.segments.functions` (writing segment functions), :mod:`segsync.scores`
(per-contact scores), :mod:`segsync.project` (a plugin command's store), :mod:`segsync.insights`
(a project's figures, read-only), :mod:`segsync.live` (runs started by a schedule or a webhook)
and :mod:`segsync.testing` (the conformance kit and test
helpers). Every other module is internal
and may change without notice; ``core/tests/test_author_api.py`` fails when a distribution under
``connectors/`` or ``plugins/`` imports one. docs/architecture.md ("The public API") lists the
names.

The names are imported on first use, so that importing any part of segsync stays cheap
(``segsync plugins`` imports every installed plugin).
"""

from segsync.hookspecs import hookimpl
from segsync.lazy import lazy_exports

_CONNECTOR = ("Batch", "Capability", "Connector", "ContactChange", "FileSlice",
              "Outcome", "OutcomeReport", "READ_CAPABILITIES", "RecordProblem", "Stream",
              "TriggerMessage", "WRITE_CAPABILITIES", "WriteResult", "WriteSession", "lazy_settings")
_STATUSES = ("MAILABLE_STATUSES", "OPT_OUT_STATUSES", "OutcomeStatus", "PartStatus", "RunStatus",
             "SubscriptionStatus")
_MODEL = ("Attributes", "ConsentRecord", "ConsentStatus", "Contact", "Event", "InvalidEmail", "normalize_email")
_VOCABULARY = ("CONSENT_METHODS", "KNOWN_ATTRIBUTES")  # no pydantic: a connector module may use them at import
_CONSENT_METHODS = ("CONFIRMED_METHODS", "EXPLICIT_METHODS")
_HOOK_TYPES = ("RegisterConnector", "RegisterEventType")
_TRIGGERS = ("SegmentChange", "SegmentChanges")
__getattr__, __dir__ = lazy_exports(__name__, {
    **dict.fromkeys(_CONNECTOR, "segsync.connector"),
    "ConnectorSettings": "segsync.connector_settings",  # pydantic-settings: loaded on first use
    "mask_email": "segsync.redaction",
    **dict.fromkeys(_STATUSES, "segsync.statuses"),
    **dict.fromkeys(_MODEL, "segsync.model"),
    **dict.fromkeys(_VOCABULARY, "segsync.vocabulary"),
    **dict.fromkeys(_CONSENT_METHODS, "segsync.consent.policies"),
    **dict.fromkeys(_HOOK_TYPES, "segsync.hookspecs"),
    **dict.fromkeys(_TRIGGERS, "segsync.triggers.changes"),
})

__all__ = [
    "Attributes",
    "Batch",
    "CONFIRMED_METHODS",
    "CONSENT_METHODS",
    "Capability",
    "ConnectorSettings",
    "Connector",
    "ConsentRecord",
    "ConsentStatus",
    "Contact",
    "ContactChange",
    "EXPLICIT_METHODS",
    "Event",
    "FileSlice",
    "InvalidEmail",
    "KNOWN_ATTRIBUTES",
    "MAILABLE_STATUSES",
    "OPT_OUT_STATUSES",
    "Outcome",
    "OutcomeReport",
    "OutcomeStatus",
    "PartStatus",
    "READ_CAPABILITIES",
    "RecordProblem",
    "RegisterConnector",
    "RegisterEventType",
    "RunStatus",
    "SegmentChange",
    "SegmentChanges",
    "Stream",
    "SubscriptionStatus",
    "TriggerMessage",
    "WRITE_CAPABILITIES",
    "WriteResult",
    "WriteSession",
    "hookimpl",
    "lazy_exports",
    "lazy_settings",
    "mask_email",
    "normalize_email",
]

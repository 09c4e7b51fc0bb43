"""The base of the connectors' service emulators (see :mod:`segsync.testing.emulator.server`).

Loaded on first use, like the rest of the public API.
"""

from segsync.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "Fault": "segsync.testing.emulator.faults",
    "FaultPlan": "segsync.testing.emulator.faults",
    "ConnectionLimit": "segsync.testing.emulator.limits",
    "RateLimiter": "segsync.testing.emulator.limits",
    "OpenApiValidator": "segsync.testing.emulator.openapi",
    "Violation": "segsync.testing.emulator.openapi",
    "find_spec": "segsync.testing.emulator.openapi",
    "EmulatorProcess": "segsync.testing.emulator.process",
    "Answer": "segsync.testing.emulator.server",
    "AnswerError": "segsync.testing.emulator.server",
    "Emulator": "segsync.testing.emulator.server",
    "Request": "segsync.testing.emulator.server",
    "RequestRecord": "segsync.testing.emulator.server",
    "encode_json": "segsync.testing.emulator.server",
    "route": "segsync.testing.emulator.server",
    "RandomFaults": "segsync.testing.faults",
    "WebhookSender": "segsync.testing.emulator.webhooks",
})

__all__ = ["Answer", "AnswerError", "ConnectionLimit", "Emulator", "EmulatorProcess", "Fault", "FaultPlan",
           "OpenApiValidator", "RandomFaults", "RateLimiter", "Request", "RequestRecord", "Violation",
           "WebhookSender", "encode_json", "find_spec", "route"]

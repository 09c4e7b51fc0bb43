"""A local, stateful emulator of Brevo's API v3 (the endpoints the connector uses).

Start one in-process with ``BrevoEmulator().start()`` (tests, benchmarks) or standalone with
``python -m segsync_brevo.emulator``; point the SDK (or the connector's ``host`` setting) at
its ``url``.
"""

from segsync.testing.emulator import Fault
from segsync_brevo.emulator.server import BrevoEmulator, LogEntry
from segsync_brevo.emulator.state import BrevoState

__all__ = ["BrevoEmulator", "BrevoState", "Fault", "LogEntry"]

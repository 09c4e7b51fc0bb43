"""A local, stateful emulator of Constant Contact's API v3 (the endpoints the connector uses)
and of its OAuth2 token endpoint.

Start one in-process with ``ConstantContactEmulator().start()`` (tests, the demo); point the
connector's ``host`` (and ``token_url``) at its ``url`` (and ``token_url``).
"""

from segsync_constantcontact.emulator.server import ConstantContactEmulator, Fault, LogEntry, RateLimit
from segsync_constantcontact.emulator.state import ConstantContactState

__all__ = ["ConstantContactEmulator", "ConstantContactState", "Fault", "LogEntry", "RateLimit"]

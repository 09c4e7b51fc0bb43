"""A local, stateful emulator of Constant Contact's API v3 (the endpoints the connector uses)
and of its OAuth2 token endpoint, on the emulator kit (``segsync.testing.emulator``).

Start one in-process with ``ConstantContactEmulator().start()`` (tests, the demo); point the
connector's ``host`` and ``token_url`` at its ``url`` and ``token_url``.
"""

from segsync_constantcontact.emulator.server import DOCUMENTED_LIMITS, ConstantContactEmulator
from segsync_constantcontact.emulator.state import ConstantContactState

__all__ = ["DOCUMENTED_LIMITS", "ConstantContactEmulator", "ConstantContactState"]

"""A local stand-in for HubSpot's API: ``HubSpotEmulator().start()``, or
``python -m segsync_hubspot.emulator`` to run one in the foreground."""

from segsync_hubspot.emulator.server import HubSpotEmulator
from segsync_hubspot.emulator.state import AccountState

__all__ = ["AccountState", "HubSpotEmulator"]

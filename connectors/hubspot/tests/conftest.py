from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from segsync_hubspot import HubSpotConnector, HubSpotSettings
from segsync_hubspot.emulator import HubSpotEmulator

# The emulator's and the client's search rate, above HubSpot's 5/s so paging tests stay short.
SEARCHES_PER_SECOND = 50
# Shaped like a real private-app token, so a leak would be recognisable in any output.
TOKEN = "pat-na1-3f2c9a7e-41b5-4d0e-9c1a-5b8e2d7f6a90"


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def emulator() -> Iterator[HubSpotEmulator]:
    # A 1-second window instead of HubSpot's 10 s keeps rate-limit tests short; the limits'
    # shapes (rolling window, headers, the search's own per-second limit) are HubSpot's.
    emu = HubSpotEmulator(access_token=TOKEN, window_ms=1000, search_per_second=SEARCHES_PER_SECOND)
    emu.state.add_segment_property("segsync_segments")
    emu.start()
    yield emu
    emu.stop()
    # Every answer the emulator gave must match HubSpot's own specs.
    assert emu.violations == []


@pytest.fixture
def make_connector(emulator, tmp_path: Path):
    made: list[HubSpotConnector] = []

    def make(**overrides) -> HubSpotConnector:
        fields = {"access_token": SecretStr(TOKEN), "host": emulator.url, "timeout": 1.0,
                  "retry_wait_initial": 0.01, "retry_wait_max": 1.0,
                  "search_requests_per_second": SEARCHES_PER_SECOND, **overrides}
        connector = HubSpotConnector("hubspot", HubSpotSettings(**fields), tmp_path)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector) -> HubSpotConnector:
    return make_connector()

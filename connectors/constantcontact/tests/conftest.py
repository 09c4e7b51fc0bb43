from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from segsync_constantcontact import ConstantContactConnector, ConstantContactSettings
from segsync_constantcontact.emulator import ConstantContactEmulator


@pytest.fixture
def emulator() -> Iterator[ConstantContactEmulator]:
    # The documented 4 requests a second would make every test wait; test_limits.py checks them.
    emu = ConstantContactEmulator(activity_delay=0.02, rate_limits=None)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def make_connector(emulator, tmp_path: Path):
    made: list[ConstantContactConnector] = []

    def make(**overrides) -> ConstantContactConnector:
        fields = {"access_token": SecretStr(emulator.access_token), "host": emulator.url,
                  "token_url": emulator.token_url, "timeout": 5.0, "requests_per_second": 1000.0,
                  "activity_poll_seconds": 0.02, **overrides}
        connector = ConstantContactConnector("constantcontact", ConstantContactSettings(**fields), tmp_path)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector) -> ConstantContactConnector:
    return make_connector()

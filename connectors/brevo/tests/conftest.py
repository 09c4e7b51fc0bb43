from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from segsync_brevo import BrevoConnector, BrevoSettings
from segsync_brevo.emulator import BrevoEmulator

KEY = "test-key"


@pytest.fixture
def emulator() -> Iterator[BrevoEmulator]:
    emu = BrevoEmulator(api_key=KEY, import_delay=0.02)
    emu.start()
    yield emu
    emu.stop()
    # Every answer the emulator gave must match Brevo's own spec.
    assert emu.violations == []


@pytest.fixture
def make_connector(emulator, tmp_path: Path):
    made: list[BrevoConnector] = []

    def make(**overrides) -> BrevoConnector:
        fields = {"api_key": SecretStr(KEY), "host": emulator.url, "timeout_seconds": 5.0,
                  "import_poll_seconds": 0.05, **overrides}
        connector = BrevoConnector("brevo", BrevoSettings(**fields), tmp_path)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector) -> BrevoConnector:
    return make_connector()

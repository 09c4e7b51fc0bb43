"""The connector's declarations outside reading and writing: the token as a secret, `check`
against an address nobody answers, the emulator `segsync demo --with hubspot` starts."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path

from pydantic import SecretStr

from segsync_hubspot import HubSpotConnector, HubSpotSettings


def test_the_access_token_is_a_secret(token: str) -> None:
    assert HubSpotSettings.model_fields["access_token"].annotation is SecretStr
    settings = HubSpotSettings(access_token=SecretStr(token))
    assert token not in repr(settings) and token not in settings.model_dump_json()


def test_check_names_a_host_it_cannot_reach(token: str, tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{unused.getsockname()[1]}"
    settings = HubSpotSettings(access_token=SecretStr(token), host=host, max_attempts=1)
    [problem] = HubSpotConnector("hubspot", settings, tmp_path).check()
    assert problem.startswith(f"HubSpot at {host} is not usable: ") and token not in problem


def test_start_emulator_gives_settings_that_reach_a_ready_account(tmp_path: Path) -> None:
    with ExitStack() as stack:
        values = HubSpotConnector.start_emulator(stack)
        assert values["host"].startswith("http://127.0.0.1:")
        connector = HubSpotConnector("hubspot", HubSpotSettings(**values), tmp_path)
        # Prepared as `segsync check --fix` leaves an account: nothing to report.
        assert connector.check() == []
        connector.close()

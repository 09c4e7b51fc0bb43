"""OAuth2: the access token as a Bearer token, refreshed on a 401 when a refresh token is set;
tokens never logged, never in an error."""

from __future__ import annotations

import logging
import threading

import pytest
from pydantic import SecretStr, ValidationError

from segsync import Stream
from segsync_constantcontact import ConstantContactSettings
from segsync_constantcontact.api import ConstantContactError


def _refreshing(emulator, make_connector, **kw):
    return make_connector(refresh_token=SecretStr(emulator.refresh_token), client_id=emulator.client_id,
                          client_secret=SecretStr(emulator.client_secret), **kw)


def test_an_expired_token_is_refreshed_once_and_the_request_sent_again(emulator, make_connector, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.state.seed_contact("ann@example.com")
    connector = _refreshing(emulator, make_connector)
    old = emulator.access_token
    emulator.state.expire_access_token()
    [batch] = list(connector.read(Stream.CONTACTS, None))
    assert [r["email"] for r in batch.rows] == ["ann@example.com"]
    assert emulator.state.tokens_issued == 1 and connector.api.refreshes == 1
    [token] = [r for r in emulator.log if r.path == "/oauth2/default/v1/token"]
    assert (token.method, token.status) == ("POST", 200)
    assert [e.status for e in emulator.calls("GET", "/v3/contact_custom_fields")] == [401, 200]
    for secret in (old, emulator.access_token, emulator.refresh_token, emulator.client_secret):
        assert secret not in caplog.text
        assert secret not in repr(connector) and secret not in repr(connector.settings)


def test_a_rotated_refresh_token_is_used_for_the_next_refresh(emulator, make_connector) -> None:
    emulator.state.rotate_refresh_tokens = True
    connector = _refreshing(emulator, make_connector)
    for _ in range(2):
        emulator.state.expire_access_token()
        assert connector.api.call("GET", "/contact_tags", endpoint="contact_tags.list") == {"tags": []}
    assert emulator.state.tokens_issued == 2


def test_threads_that_see_the_same_expired_token_refresh_it_once(emulator, make_connector) -> None:
    connector = _refreshing(emulator, make_connector)
    emulator.state.expire_access_token()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            connector.api.call("GET", "/contact_tags", endpoint="contact_tags.list")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and emulator.state.tokens_issued == 1


def test_without_a_refresh_token_a_401_says_what_to_set_and_shows_no_token(emulator, connector) -> None:
    token = emulator.access_token
    emulator.state.expire_access_token()
    with pytest.raises(ConstantContactError) as raised:
        list(connector.read(Stream.CONSENT, None))
    message = str(raised.value)
    assert message == ("Constant Contact API GET /contacts: HTTP 401 unauthorized: Unauthorized (the access "
                       "token is invalid or expired; set a new one, or a refresh token with client_id and "
                       "client_secret to refresh it)")
    assert token not in message
    assert connector.check()[0].startswith(f"Constant Contact at {emulator.url} is not usable: ")


def test_a_refused_refresh_is_a_clear_error_without_secrets(emulator, make_connector) -> None:
    connector = make_connector(refresh_token=SecretStr("revoked-refresh"), client_id=emulator.client_id,
                               client_secret=SecretStr(emulator.client_secret))
    emulator.state.expire_access_token()
    [problem] = connector.check()
    assert problem == (f"Constant Contact at {emulator.url} is not usable: Constant Contact refused to refresh "
                       "the access token (HTTP 400: invalid_grant); authorize the application again and set "
                       "a new refresh token")
    assert "revoked-refresh" not in problem


def test_a_refresh_token_needs_the_client_id() -> None:
    with pytest.raises(ValidationError, match="refresh_token needs client_id"):
        ConstantContactSettings(access_token=SecretStr("a"), refresh_token=SecretStr("r"))

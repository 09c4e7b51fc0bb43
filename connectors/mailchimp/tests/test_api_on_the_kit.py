"""The Mailchimp client sends through segsync.http: calls counted per operation, the key kept
out of the logs, the account budget and the connection cap taken from the settings."""

from __future__ import annotations

import logging

import pytest
import responses

from segsync_mailchimp import MailchimpSettings
from segsync_mailchimp.api import MailchimpApi

KEY = "0123456789abcdef0123456789abcdef-us7"
BASE = "https://us7.api.mailchimp.com/3.0"


def api(**kw) -> MailchimpApi:
    return MailchimpApi(MailchimpSettings(api_key=KEY, list_id="l1", retry_wait_initial=0.001, retry_wait_max=0.01, **kw))


@responses.activate
def test_calls_are_counted_per_operation_retries_included() -> None:
    responses.get(f"{BASE}/ping", status=503)
    responses.get(f"{BASE}/ping", json={"health_status": "ok"})
    responses.get(f"{BASE}/lists/l1", json={"id": "l1"})
    client = api()
    client.call("ping", lambda c: c.ping.get())
    client.call("get audience", lambda c: c.lists.get_list("l1"))
    assert client.session.calls.by_endpoint() == {"ping": 2, "get audience": 1}
    assert (client.calls, client.session.calls.retries) == (3, 1)


@responses.activate
def test_the_key_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    responses.get(f"{BASE}/lists/l1/members", status=500)
    responses.get(f"{BASE}/lists/l1/members", json={"members": [], "total_items": 0})
    with caplog.at_level(logging.DEBUG, logger="segsync.http"):
        api().call("list members", lambda c: c.lists.get_list_members_info("l1", count=10))
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")  # sent
    assert KEY not in caplog.text
    assert "mailchimp list members failed on attempt 1 of 6: HTTP 500; retrying" in caplog.text


def test_the_session_takes_its_limits_from_the_settings() -> None:
    client = api(max_connections=3, timeout=7.0, max_attempts=2, abandoned_hold=1.5)
    assert (client.session.max_connections, client.session.timeout) == (3, 7.0)
    assert client.session.retry_policy.attempts == 2
    assert (client.budget.slots, client.session.abandoned_hold) == (10, 1.5)
    client.close()

"""Narrow unit tests of the SDK quirks the wrapper handles (``responses`` intercepts the SDK's
module-level ``requests`` calls; nothing leaves the process)."""

from __future__ import annotations

import json

import pytest
import responses
from pydantic import ValidationError

from segsync_mailchimp import MailchimpSettings
from segsync_mailchimp.api import MailchimpApi, MailchimpError, parse_retry_after

KEY = "0123456789abcdef0123456789abcdef-us7"
BASE = "https://us7.api.mailchimp.com/3.0"


def api(**kw):
    return MailchimpApi(MailchimpSettings(api_key=KEY, list_id="l1", retry_wait_initial=0.001,
                                          retry_wait_max=0.01, **kw))


@responses.activate
def test_problem_json_errors_arrive_as_a_string_and_are_parsed():
    problem = {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Resource Not Found",
               "status": 404, "detail": "The requested resource could not be found.", "instance": "abc-123"}
    responses.get(f"{BASE}/lists/l1", body=json.dumps(problem), status=404,
                  content_type="application/problem+json; charset=utf-8")
    with pytest.raises(MailchimpError) as caught:
        api().call("get list", lambda c: c.lists.get_list("l1"))
    err = caught.value
    assert (err.status, err.title, err.detail, err.instance) == (404, "Resource Not Found",
                                                                 problem["detail"], "abc-123")
    assert not err.retryable
    assert len(responses.calls) == 1


@responses.activate
def test_json_errors_arrive_as_a_dict():
    responses.get(f"{BASE}/lists/l1", json={"title": "Forbidden", "status": 403, "detail": "no"}, status=403)
    with pytest.raises(MailchimpError) as caught:
        api().call("get list", lambda c: c.lists.get_list("l1"))
    assert (caught.value.status, caught.value.title, caught.value.detail) == (403, "Forbidden", "no")


@responses.activate
def test_a_bare_429_comes_back_as_a_response_and_is_retried_honouring_retry_after():
    responses.get(f"{BASE}/ping", body=b"", status=429, headers={"Retry-After": "0"})
    responses.get(f"{BASE}/ping", json={"health_status": "Everything's Chimpy!"})
    client = api()
    assert client.call("ping", lambda c: c.ping.get()) == {"health_status": "Everything's Chimpy!"}
    assert client.calls == 2


@responses.activate
def test_retry_after_survives_the_sdk_dropping_headers():
    problem = json.dumps({"title": "Too Many Requests", "status": 429, "detail": "slow down"})
    responses.get(f"{BASE}/ping", body=problem, status=429, content_type="application/problem+json",
                  headers={"Retry-After": "7"})
    with pytest.raises(MailchimpError) as caught:
        api(max_attempts=1).call("ping", lambda c: c.ping.get())
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


@responses.activate
def test_204_returns_none():
    responses.post(f"{BASE}/lists/l1/members/abc/actions/delete-permanent", status=204)
    assert api().call("delete", lambda c: c.lists.delete_list_member_permanent("l1", "abc")) is None


@responses.activate
def test_transport_errors_are_retryable_network_errors():
    responses.get(f"{BASE}/ping", body=ConnectionError("refused"))
    with pytest.raises(MailchimpError) as caught:
        api(max_attempts=2).call("ping", lambda c: c.ping.get())
    assert caught.value.status is None and caught.value.retryable
    assert len(responses.calls) == 2


@responses.activate
def test_the_server_prefix_comes_from_the_key_and_the_host_override_is_used_verbatim():
    responses.get("http://127.0.0.1:9/3.0/ping", json={"health_status": "ok"})
    assert api(host="http://127.0.0.1:9/3.0/").call("ping", lambda c: c.ping.get()) == {"health_status": "ok"}
    assert MailchimpSettings(api_key=KEY, list_id="l").resolved_server == "us7"
    assert MailchimpSettings(api_key="abc", server="us3", list_id="l").resolved_server == "us3"


def test_settings_refuse_hosts_the_sdk_would_rewrite_and_keys_without_a_prefix():
    with pytest.raises(ValidationError, match="server"):
        MailchimpSettings(api_key=KEY, list_id="l", host="http://myserver.local/3.0")
    with pytest.raises(ValidationError, match="suffix"):
        MailchimpSettings(api_key="nodash", list_id="l")
    assert "0123456789abcdef" not in repr(MailchimpSettings(api_key=KEY, list_id="l"))


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None

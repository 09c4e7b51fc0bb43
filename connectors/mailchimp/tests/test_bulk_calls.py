"""The bulk write calls (batch-subscribe, bulk tag changes) go through the kit session without
the SDK (``MailchimpApi.post``): the same request as the SDK's method sends, the same answers
and errors (``responses`` intercepts both; nothing leaves the process)."""

from __future__ import annotations

import base64
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from segsync_mailchimp import MailchimpSettings
from segsync_mailchimp.api import MailchimpApi, MailchimpError
from segsync_mailchimp.writer import UNUSED_BATCH_FIELDS, UNUSED_TAG_FIELDS

KEY = "0123456789abcdef0123456789abcdef-us7"
BASE = "https://us7.api.mailchimp.com/3.0"
BODY = {"members": [{"email_address": "ann@example.com", "status": "subscribed", "merge_fields": {"FNAME": "Ann"},
                     "tags": ["vip", "ünïcode"]},
                    {"email_address": "bob@example.com", "status": "pending", "merge_fields": {}}],
        "update_existing": True, "sync_tags": False}


def api(**kw: Any) -> MailchimpApi:
    return MailchimpApi(MailchimpSettings(api_key=KEY, list_id="l1", retry_wait_initial=0.001,
                                          retry_wait_max=0.01, **kw))


def by_sdk(client: MailchimpApi) -> Any:
    return client.call("batch subscribe", lambda c: c.lists.batch_list_members("l1", BODY),
                       exclude_fields=UNUSED_BATCH_FIELDS)


def by_post(client: MailchimpApi) -> Any:
    return client.post("batch subscribe", "/lists/l1", BODY, exclude_fields=UNUSED_BATCH_FIELDS)


@responses.activate
def test_a_bulk_call_sends_what_the_sdk_sends_as_compact_json() -> None:
    responses.post(f"{BASE}/lists/l1", json={"errors": [], "total_created": 2})
    client = api()
    assert by_sdk(client) == by_post(client) == {"errors": [], "total_created": 2}

    sdk, direct = (call.request for call in responses.calls)
    assert direct.url == sdk.url == f"{BASE}/lists/l1?exclude_fields=new_members%2Cupdated_members%2C_links"
    # encoded once: compact UTF-8 (the SDK's json.dumps escapes non-ASCII; both are JSON)
    assert direct.body == json.dumps(BODY, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(direct.body) == json.loads(sdk.body) == BODY
    basic = "Basic " + base64.b64encode(f"user:{KEY}".encode()).decode()
    assert direct.headers["Authorization"] == sdk.headers["Authorization"] == basic
    assert direct.headers["Content-Type"] == sdk.headers["Content-Type"] == "application/json"
    assert client.session.calls.by_endpoint() == {"batch subscribe": 2}


@responses.activate
def test_a_tag_call_goes_to_the_segment_with_its_own_partial_answer() -> None:
    responses.post(f"{BASE}/lists/l1/segments/42", json={"total_added": 1, "total_removed": 0, "errors": []})
    result = api().post("tag members", "/lists/l1/segments/42", {"members_to_add": ["ann@example.com"]},
                        exclude_fields=UNUSED_TAG_FIELDS)
    assert result == {"total_added": 1, "total_removed": 0, "errors": []}
    request = responses.calls[0].request
    assert request.url == f"{BASE}/lists/l1/segments/42?exclude_fields=members_added%2Cmembers_removed%2C_links"
    assert request.body == b'{"members_to_add":["ann@example.com"]}'


PROBLEM = {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Invalid Resource",
           "status": 400, "detail": "The resource submitted could not be validated.", "instance": "i-1",
           "errors": [{"field": "members", "message": "too many"}]}
ANSWERS = {
    "problem+json": dict(body=json.dumps(PROBLEM), status=400, content_type="application/problem+json; charset=utf-8"),
    "json error": dict(json={"title": "Forbidden", "status": 403, "detail": "no"}, status=403),
    "429 with Retry-After": dict(body=json.dumps({"title": "Too Many Requests", "status": 429}), status=429,
                                 content_type="application/problem+json", headers={"Retry-After": "7"}),
    "bare 500": dict(body=b"", status=500),
    "not JSON": dict(body="<html>gateway</html>", status=502, content_type="text/html"),
    "transport": dict(body=requests.ConnectionError("connection refused")),
}


@pytest.mark.parametrize("answer", ANSWERS, ids=list(ANSWERS))
@responses.activate
def test_errors_are_the_sdk_paths_errors(answer: str) -> None:
    responses.post(f"{BASE}/lists/l1", **ANSWERS[answer])
    client = api(max_attempts=1)
    caught = []
    for send in (by_sdk, by_post):
        with pytest.raises(MailchimpError) as error:
            send(client)
        caught.append(error.value)
    sdk, direct = caught
    fields = ("status", "title", "detail", "type", "instance", "errors", "retry_after", "retryable")
    assert {f: getattr(direct, f) for f in fields} == {f: getattr(sdk, f) for f in fields}
    assert str(direct) == str(sdk)
    expected = {
        "problem+json": "Mailchimp HTTP 400 Invalid Resource: The resource submitted could not be validated. "
                        "[members: too many]",
        "json error": "Mailchimp HTTP 403 Forbidden: no",
        "429 with Retry-After": "Mailchimp HTTP 429 Too Many Requests",
        "bare 500": "Mailchimp HTTP 500 Internal Server Error",
        "not JSON": "Mailchimp HTTP 502 Bad Gateway: <html>gateway</html>",
        "transport": "Mailchimp network error ConnectionError: connection refused",
    }[answer]
    assert str(direct) == expected
    assert direct.retryable is (answer not in ("problem+json", "json error"))
    assert direct.retry_after == (7.0 if answer == "429 with Retry-After" else None)


OK_ANSWERS = {
    "json": (dict(json={"errors": [], "total_created": 1}), {"errors": [], "total_created": 1}),
    "empty json object": (dict(json={}), None),
    "no content": (dict(status=204), None),
    "unreadable json": (dict(body="{not json", content_type="application/json"), None),
    "text": (dict(body="queued", content_type="text/plain"), "queued"),
}


@pytest.mark.parametrize("answer", OK_ANSWERS, ids=list(OK_ANSWERS))
@responses.activate
def test_answers_are_read_as_the_sdk_reads_them(answer: str) -> None:
    options, expected = OK_ANSWERS[answer]
    responses.post(f"{BASE}/lists/l1", **options)
    client = api()
    assert by_post(client) == by_sdk(client) == expected


@responses.activate
def test_a_bare_429_is_waited_out_and_retried() -> None:
    responses.post(f"{BASE}/lists/l1", body=b"", status=429, headers={"Retry-After": "0"})
    responses.post(f"{BASE}/lists/l1", json={"errors": []})
    client = api()
    assert by_post(client) == {"errors": []}
    assert (client.calls, client.session.calls.retries) == (2, 1)
    assert [c.request.body for c in responses.calls][0] == [c.request.body for c in responses.calls][1]


@responses.activate
def test_the_key_and_the_addresses_stay_out_of_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(f"{BASE}/lists/l1", status=503)
    responses.post(f"{BASE}/lists/l1", json={"errors": []})
    with caplog.at_level(logging.DEBUG, logger="segsync.http"):
        by_post(api())
    assert "mailchimp batch subscribe failed on attempt 1 of 6: HTTP 503; retrying" in caplog.text
    assert KEY not in caplog.text and "ann@example.com" not in caplog.text


@responses.activate
def test_a_value_json_cannot_hold_fails_the_call_as_in_the_sdk() -> None:
    responses.post(f"{BASE}/lists/l1", json={"errors": []})
    body = {"members": [{"email_address": "ann@example.com", "merge_fields": {"SIZE": Decimal("3")}}]}
    client = api()
    caught = []
    for send in (lambda: client.call("batch subscribe", lambda c: c.lists.batch_list_members("l1", body)),
                 lambda: client.post("batch subscribe", "/lists/l1", body)):
        with pytest.raises(MailchimpError) as error:
            send()
        caught.append(error.value)
    sdk, direct = caught
    assert (sdk.status, sdk.title, sdk.detail) == (None, "TypeError", "Object of type Decimal is not JSON serializable")
    assert (direct.status, direct.title) == (None, "TypeError")
    assert direct.detail == "Type is not JSON serializable: decimal.Decimal"
    assert len(responses.calls) == 0  # nothing was sent

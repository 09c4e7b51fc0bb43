"""Rate limits, server errors, timeouts and dropped connections, seen through the real SDK."""

from __future__ import annotations

import time

import pytest
from segsync import ContactChange, Stream

from segsync_mailchimp.api import MailchimpError

from .conftest import LIST_ID, ts


def changes(n, tags=()):
    return [ContactChange(f"c{i:05d}@example.com", "upsert", "subscribed", tags_add=tags) for i in range(n)]


def tag_only_changes(emulator, n, tags):
    """Members already in the audience that only enter ``tags``: no batch-subscribe entry to
    carry them, so the tags go through the segment endpoint (listed, created when missing)."""
    for change in changes(n):
        emulator.state.seed_member(LIST_ID, change.contact_key)
    return [ContactChange(f"c{i:05d}@example.com", "upsert", "subscribed", previous_status="subscribed",
                          tags_add=tags) for i in range(n)]


def test_problem_json_429_is_retried_after_retry_after(emulator, connector):
    emulator.inject("error", error="TooManyRequests", method="POST", path=r"^/lists/aud0001$", retry_after=0.3)
    started = time.monotonic()
    result = connector.write(changes(10))
    assert time.monotonic() - started >= 0.3
    assert [o.status for o in result.outcomes] == ["ok"] * 10
    assert [c.status for c in emulator.calls("POST")] == [429, 200]
    assert result.calls == 2


def test_a_bare_429_without_a_body_is_retried(emulator, connector):
    # the SDK returns such answers as a requests.Response instead of raising
    emulator.inject("status", status=429, method="POST", retry_after=0)
    result = connector.write(changes(3))
    assert [o.status for o in result.outcomes] == ["ok"] * 3
    assert [c.status for c in emulator.calls("POST")] == [429, 200]


def test_5xx_is_retried_and_recovers(emulator, connector):
    emulator.inject("error", error="InternalServerError", count=2, method="POST")
    emulator.inject("status", status=503, method="GET")
    result = connector.write(tag_only_changes(emulator, 3, tags=("vip",)))
    assert [o.status for o in result.outcomes] == ["ok"] * 3
    # Tags are resolved before any write batch starts: list tags (503, 200), create the tag
    # (500, 500, 200), then the write batch: its tag call.
    assert [(c.method, c.status) for c in emulator.calls()] == [
        ("GET", 503), ("GET", 200), ("POST", 500), ("POST", 500), ("POST", 200), ("POST", 200)]
    (vip,) = emulator.state.audiences[LIST_ID].segments.values()
    assert [c.path for c in emulator.calls()][-2:] == [f"/lists/{LIST_ID}/segments", f"/lists/{LIST_ID}/segments/{vip.id}"]
    assert len(vip.members) == 3
    assert result.calls == 6


def test_5xx_on_a_batch_carrying_tags_is_retried_and_the_tags_land(emulator, connector):
    emulator.inject("error", error="InternalServerError", count=2, method="POST")
    result = connector.write(changes(3, tags=("vip",)))
    assert [o.status for o in result.outcomes] == ["ok"] * 3
    assert [(c.method, c.path, c.status) for c in emulator.calls()] == [("POST", f"/lists/{LIST_ID}", 500)] * 2 + [
        ("POST", f"/lists/{LIST_ID}", 200)]
    with emulator.state.lock:
        segments = list(emulator.state.audiences[LIST_ID].segments.values())
    assert [(s.name, len(s.members)) for s in segments] == [("vip", 3)]
    assert result.calls == 3


def test_retries_exhausted_leave_records_retryable(emulator, make_connector):
    connector = make_connector(max_attempts=3)
    emulator.inject("error", error="InternalServerError", count=3, method="POST")
    result = connector.write(changes(2))
    assert [o.status for o in result.outcomes] == ["retryable"] * 2
    assert "HTTP 500 Internal Server Error" in result.outcomes[0].reason
    assert result.calls == 3


def test_a_client_error_is_not_retried_and_names_the_detail(emulator, connector):
    emulator.inject("error", error="BadRequest", method="POST")
    result = connector.write(changes(2))
    assert [o.status for o in result.outcomes] == ["rejected"] * 2
    assert result.outcomes[0].reason == "Mailchimp HTTP 400 Bad Request: Your request could not be processed."
    assert result.calls == 1


def test_timeouts_and_dropped_connections_are_retried(emulator, make_connector):
    connector = make_connector(timeout=0.3)
    emulator.inject("timeout", delay=0.8, method="GET", path="/members")
    emulator.inject("drop", method="GET", path="/members")
    emulator.state.seed_member(LIST_ID, "a@example.com", last_changed=ts("2024-01-01T00:00:00"))
    rows = [r for b in connector.read(Stream.CONTACTS, None) for r in b.rows]
    assert [r["email"] for r in rows] == ["a@example.com"]
    time.sleep(0.6)  # the stalled request is logged once its handler gives up stalling
    faults = [c.fault for c in emulator.calls("GET", "/members")]
    assert faults[:2] == ["timeout", "drop"]


def test_read_errors_surface_the_problem_detail(emulator, make_connector):
    connector = make_connector(list_id="nope")
    with pytest.raises(MailchimpError) as caught:
        list(connector.read(Stream.CONTACTS, None))
    assert caught.value.status == 404
    assert caught.value.title == "Resource Not Found"
    assert caught.value.detail == "The requested resource could not be found."
    assert caught.value.instance


def test_concurrency_never_exceeds_ten_connections(emulator, connector):
    emulator.latency = 0.05
    result = connector.write(changes(10_000, tags=("a", "b")))
    assert {o.status for o in result.outcomes} == {"ok"}
    # 20 upserts, the tags riding in their entries
    assert result.calls == 20
    with emulator.state.lock:
        segments = list(emulator.state.audiences[LIST_ID].segments.values())
    assert sorted((s.name, len(s.members)) for s in segments) == [("a", 10_000), ("b", 10_000)]
    assert [c for c in emulator.calls(admitted_only=False) if c.status == 429] == []
    # Never above Mailchimp's 10; how close to 10 it gets depends on the machine's load, so
    # only "clearly parallel" is asserted on that side.
    assert 5 <= emulator.max_concurrency() <= 10
    assert 5 <= emulator.peak_in_flight <= 10


def test_the_emulator_refuses_an_eleventh_connection(emulator):
    import threading

    import requests

    emulator.latency = 0.3
    statuses: list[int] = []

    def ping():
        statuses.append(requests.get(f"{emulator.url}/ping", auth=("u", emulator.api_key), timeout=5).status_code)

    threads = [threading.Thread(target=ping) for _ in range(14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 10 + [429] * 4
    assert emulator.max_concurrency() == 10


def test_a_tag_created_but_whose_answer_was_lost_is_found_and_used(emulator, connector):
    # The create goes through, its answer is lost, the retried create is refused as Mailchimp
    # refuses a duplicate: the tag is looked up and the members are tagged all the same.
    emulator.inject("lost", method="POST", path=r"^/lists/aud0001/segments$")
    result = connector.write(tag_only_changes(emulator, 3, tags=("vip",)))
    assert [o.status for o in result.outcomes] == ["ok"] * 3
    with emulator.state.lock:
        segments = list(emulator.state.audiences["aud0001"].segments.values())
    assert [(s.name, len(s.members)) for s in segments] == [("vip", 3)]
    creates = emulator.calls("POST", r"^/lists/aud0001/segments$")
    assert [(c.status, c.fault) for c in creates] == [(200, "lost"), (400, None)]


def test_a_tag_create_that_lands_after_the_client_gave_up_makes_one_tag(emulator, make_connector):
    # Slow, not lost: the create is held past the client's timeout and applied only then. The
    # retried create and the late one race; Mailchimp refuses a second tag of the same name,
    # so whichever lands second is refused and exactly one tag holds the members.
    connector = make_connector(timeout=0.5)
    emulator.inject("timeout", delay=0.9, method="POST", path=r"^/lists/aud0001/segments$")
    result = connector.write(tag_only_changes(emulator, 3, tags=("vip",)))
    assert [o.status for o in result.outcomes] == ["ok"] * 3
    deadline = time.monotonic() + 5
    while not any(c.fault == "timeout" for c in emulator.calls("POST", r"^/lists/aud0001/segments$")):
        assert time.monotonic() < deadline, "the held create never finished"
        time.sleep(0.05)
    with emulator.state.lock:
        segments = list(emulator.state.audiences["aud0001"].segments.values())
    assert [(s.name, len(s.members)) for s in segments] == [("vip", 3)]
    creates = emulator.calls("POST", r"^/lists/aud0001/segments$")
    assert sorted((c.status, c.fault) for c in creates) == [(200, None), (400, "timeout")]


def test_the_emulator_refuses_a_duplicate_tag_as_mailchimp_does(emulator, connector):
    connector.api.call("create", lambda c: c.lists.create_segment(LIST_ID, {"name": "vip", "static_segment": []}))
    with pytest.raises(MailchimpError) as caught:
        connector.api.call("create", lambda c: c.lists.create_segment(LIST_ID, {"name": "vip", "static_segment": []}))
    assert (caught.value.status, caught.value.title, caught.value.detail) == (
        400, "Bad Request", "Sorry, that tag already exists.")

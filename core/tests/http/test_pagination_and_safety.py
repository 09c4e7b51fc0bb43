"""segsync.http pagination helpers, the retry policy's arithmetic and the log-safety functions."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import responses
from hypothesis import given, strategies as st

from segsync.http import (
    HttpError, PaginationError, RetryPolicy, cursor_pages, link_pages, new_session, offset_pages,
    parse_retry_after, safe_error, safe_headers, safe_url,
)

BASE = "https://api.example.test"


@given(total=st.integers(0, 230), limit=st.integers(1, 60), report_total=st.booleans())
def test_offset_pages_yield_every_item_once_with_the_fewest_calls(total: int, limit: int, report_total: bool) -> None:
    items = list(range(total))
    fetched: list[tuple[int, int]] = []

    def fetch(offset: int, page_limit: int) -> dict:
        fetched.append((offset, page_limit))
        page = {"contacts": items[offset:offset + page_limit]}
        if report_total:
            page["count"] = total
        return page

    pages = list(offset_pages(fetch, limit=limit, items="contacts", total="count" if report_total else None))
    assert [i for page in pages for i in page] == items
    assert all(len(page) == limit for page in pages[:-1])
    full_pages = total // limit
    # With a total, the walk stops at it; without, one more call finds the short or empty page.
    expected_calls = -(-total // limit) if report_total else full_pages + 1
    assert len(fetched) == max(expected_calls, 1)
    assert [offset for offset, _ in fetched] == [limit * n for n in range(len(fetched))]


@given(total=st.integers(0, 120), size=st.integers(1, 25))
def test_cursor_pages_follow_after_until_it_is_gone(total: int, size: int) -> None:
    items = [f"c{i}" for i in range(total)]

    def fetch(after: str | None) -> dict:
        start = int(after) if after else 0
        page: dict = {"results": items[start:start + size]}
        if start + size < total:
            page["paging"] = {"next": {"after": str(start + size)}}
        return page

    pages = list(cursor_pages(fetch, items="results", next_cursor="paging.next.after"))
    assert [i for page in pages for i in page] == items
    assert len(pages) == -(-total // size)


def test_a_repeated_cursor_stops_with_an_error_instead_of_looping() -> None:
    def fetch(after: str | None) -> dict:
        return {"results": [1], "next": "same"}

    with pytest.raises(PaginationError, match="returned the cursor 'same' twice"):
        list(cursor_pages(fetch, items="results", next_cursor="next"))


def test_cursor_pages_accept_functions_for_fields() -> None:
    pages = {None: ([1, 2], "b"), "b": ([3], None)}
    got = list(cursor_pages(lambda c: pages[c], items=lambda p: p[0], next_cursor=lambda p: p[1]))
    assert got == [[1, 2], [3]]


@responses.activate
def test_link_pages_follow_the_next_link_header() -> None:
    responses.get(f"{BASE}/v3/contacts?limit=2", json={"contacts": [1, 2]},
                  headers={"Link": f'<{BASE}/v3/contacts?cursor=p2&limit=2>; rel="next"'})
    responses.get(f"{BASE}/v3/contacts?cursor=p2&limit=2", json={"contacts": [3, 4]},
                  headers={"Link": f'<{BASE}/v3/contacts?cursor=p3&limit=2>; rel="next", <{BASE}/v3/x>; rel="last"'})
    responses.get(f"{BASE}/v3/contacts?cursor=p3&limit=2", json={"contacts": [5]})
    http = new_session(BASE)
    pages = list(link_pages(http, "/v3/contacts", params={"limit": 2}, items="contacts", endpoint="contacts"))
    assert pages == [[1, 2], [3, 4], [5]]
    assert http.calls.by_endpoint() == {"contacts": 3}
    assert [c.request.url for c in responses.calls] == [
        f"{BASE}/v3/contacts?limit=2", f"{BASE}/v3/contacts?cursor=p2&limit=2", f"{BASE}/v3/contacts?cursor=p3&limit=2"]


@responses.activate
def test_link_pages_raise_on_an_error_answer() -> None:
    responses.get(f"{BASE}/v3/contacts", status=401, json={"message": "bad token"})
    with pytest.raises(HttpError, match="HTTP 401 Unauthorized") as caught:
        list(link_pages(new_session(BASE), "/v3/contacts", items="contacts"))
    assert caught.value.status == 401


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Mon, 05 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 05 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


@given(attempt=st.integers(1, 12), initial=st.floats(0, 5), cap=st.floats(0, 100))
def test_backoff_stays_within_its_bounds(attempt: int, initial: float, cap: float) -> None:
    policy = RetryPolicy(attempts=3, wait_initial=initial, wait_max=cap)
    wait = policy.wait_seconds(attempt)
    assert 0 <= wait <= cap
    assert wait >= min(initial * 2 ** (attempt - 1), cap)
    assert policy.wait_seconds(attempt, retry_after=cap + 1) == cap


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0)


_secret = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=8, max_size=30)


@given(secret=_secret, name=st.sampled_from(["api_key", "apikey", "token", "access_token", "hapikey", "Key"]))
def test_safe_url_never_shows_a_secret_query_value(secret: str, name: str) -> None:
    url = f"https://user:{secret}@api.example.test/v3/x?limit=10&{name}={secret}&q=a"
    shown = safe_url(url)
    assert secret not in shown
    assert shown == f"https://***@api.example.test/v3/x?limit=10&{name}=***&q=a"


def test_safe_headers_and_errors() -> None:
    assert safe_headers({"Authorization": "Bearer abc", "api-key": "k", "Accept": "application/json"}) == {
        "Authorization": "***", "api-key": "***", "Accept": "application/json"}
    assert safe_error(ConnectionError("Max retries exceeded with url: /v3/x?email=ann@example.com (Caused by X)")) == (
        "Max retries exceeded with url: /v3/x?*** (Caused by X)")
    assert safe_url("https://h.test/members/ann@example.com") == "https://h.test/members/a***@e***.com"

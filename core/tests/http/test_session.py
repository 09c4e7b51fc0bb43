"""segsync.http sessions: retries, pacing, the concurrency cap, call counting, safe logging."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import responses

from segsync.http import (
    HttpBudget, HttpError, RateLimitHeaders, RatePacer, RetryPolicy, new_session, raise_for_status,
)

BASE = "https://api.example.test/v3"


class Sleeps(list):
    """A fake sleep recording each wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def session(sleeps: Sleeps, **kwargs):
    kwargs.setdefault("retry", RetryPolicy(attempts=4, wait_initial=0.5, wait_max=10))
    return new_session(BASE, sleep=sleeps, **kwargs)


@responses.activate
def test_429_waits_what_retry_after_says_then_succeeds(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/contacts", status=429, headers={"Retry-After": "2"}, json={"title": "slow down"})
    responses.get(f"{BASE}/contacts", status=200, json={"contacts": []})
    http = session(sleeps)
    response = http.get("/contacts", endpoint="contacts.list")
    assert response.status_code == 200
    assert response.json() == {"contacts": []}
    assert sleeps == [2.0]
    assert http.calls.by_endpoint() == {"contacts.list": 2}
    assert http.calls.retries == 1


@responses.activate
def test_retry_after_is_capped_at_the_longest_wait(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/x", status=503, headers={"Retry-After": "3600"})
    responses.get(f"{BASE}/x", status=204)
    assert session(sleeps).get("/x").status_code == 204
    assert sleeps == [10.0]


@responses.activate
def test_5xx_backs_off_exponentially_with_jitter_and_gives_up_after_the_attempts(sleeps: Sleeps) -> None:
    responses.post(f"{BASE}/import", status=502, body="bad gateway")
    http = session(sleeps)
    response = http.post("/import", json={"rows": []})
    assert response.status_code == 502  # the last answer, for the caller to judge
    assert len(responses.calls) == 4
    assert http.calls.by_endpoint() == {"POST /v3/import": 4}
    assert len(sleeps) == 3
    for n, wait in enumerate(sleeps):
        assert 0.5 * 2**n <= wait <= 0.5 * 2**n + 0.5
    with pytest.raises(HttpError) as caught:
        raise_for_status(response, "contacts.import")
    assert caught.value.status == 502
    assert caught.value.retryable is True
    assert str(caught.value) == "contacts.import: HTTP 502 Bad Gateway"
    assert caught.value.body == "bad gateway"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
@responses.activate
def test_other_4xx_are_not_retried(sleeps: Sleeps, status: int) -> None:
    responses.put(f"{BASE}/contacts/1", status=status, json={"code": "invalid_parameter"})
    http = session(sleeps)
    response = http.put("/contacts/1", json={})
    assert response.status_code == status
    assert len(responses.calls) == 1
    assert sleeps == []
    with pytest.raises(HttpError) as caught:
        raise_for_status(response)
    assert caught.value.retryable is False
    assert str(caught.value).startswith(f"PUT {BASE}/contacts/1: HTTP {status}")


@pytest.mark.parametrize("failure", [requests.ConnectionError("Connection reset by peer"),
                                     requests.ReadTimeout("read timed out"),
                                     requests.ConnectTimeout("connect timed out")])
@responses.activate
def test_resets_and_timeouts_are_retried_then_raised(sleeps: Sleeps, failure: Exception) -> None:
    responses.get(f"{BASE}/lists", body=failure)
    http = session(sleeps)
    with pytest.raises(type(failure)):
        http.get("/lists")
    assert len(responses.calls) == 4
    assert len(sleeps) == 3


@responses.activate
def test_a_reset_then_an_answer_succeeds(sleeps: Sleeps) -> None:
    responses.get(f"{BASE}/lists", body=requests.ConnectionError("Connection reset by peer"))
    responses.get(f"{BASE}/lists", json={"lists": [1]})
    assert session(sleeps).get("/lists").json() == {"lists": [1]}
    assert len(sleeps) == 1


@responses.activate
def test_retry_false_sends_once(sleeps: Sleeps) -> None:
    responses.post(f"{BASE}/lists", status=500)
    http = session(sleeps)
    assert http.post("/lists", retry=False).status_code == 500
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_absolute_urls_are_not_joined_and_the_timeout_is_applied(sleeps: Sleeps) -> None:
    responses.get("https://other.example.test/report.csv", body="a,b")
    http = session(sleeps, timeout=7.5)
    seen = {}
    original = requests.adapters.HTTPAdapter.send

    def spy(self, request, **kwargs):
        seen.update(kwargs)
        return original(self, request, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests.adapters.HTTPAdapter, "send", spy)
        assert http.get("https://other.example.test/report.csv").text == "a,b"
    assert responses.calls[0].request.url == "https://other.example.test/report.csv"
    assert seen["timeout"] == 7.5


@responses.activate
def test_pacing_waits_for_the_reported_window_to_reset(sleeps: Sleeps) -> None:
    now = [100.0]
    pacer = RatePacer(RateLimitHeaders("x-sib-ratelimit-remaining", "x-sib-ratelimit-reset", "seconds"),
                      clock=lambda: now[0], sleep=sleeps)
    responses.get(f"{BASE}/contacts", headers={"x-sib-ratelimit-remaining": "1", "x-sib-ratelimit-reset": "3"})
    responses.get(f"{BASE}/contacts", headers={"x-sib-ratelimit-remaining": "0", "x-sib-ratelimit-reset": "2"})
    responses.get(f"{BASE}/contacts", headers={"x-sib-ratelimit-remaining": "9", "x-sib-ratelimit-reset": "1"})
    http = session(sleeps, pacer=pacer)
    http.get("/contacts")
    http.get("/contacts")  # one left in the window: no wait
    assert sleeps == []
    now[0] += 0.5
    http.get("/contacts")  # none left: waits the 2 s the last answer announced, less the 0.5 gone
    assert sleeps == [1.5]
    assert pacer.waits == 1 and pacer.slept == 1.5


@pytest.mark.parametrize(("kind", "raw", "seconds"), [("seconds", "4", 4.0), ("milliseconds", "2500", 2.5),
                                                       ("epoch", "1010", 10.0)])
def test_reset_headers_of_each_kind(kind: str, raw: str, seconds: float) -> None:
    headers = RateLimitHeaders("X-Left", "X-Reset", kind)  # type: ignore[arg-type]
    assert headers.reset_seconds({"x-reset": raw}, now=1000.0) == seconds
    assert headers.reset_seconds({}) is None
    assert headers.reset_seconds({"X-Reset": "soon"}) is None
    assert headers.remaining_in({"x-left": "7"}) == 7


@responses.activate
def test_a_429_without_retry_after_waits_for_the_rate_limit_reset(sleeps: Sleeps) -> None:
    pacer = RatePacer(RateLimitHeaders("X-RateLimit-Remaining", "X-RateLimit-Reset", "milliseconds"), sleep=sleeps)
    responses.get(f"{BASE}/a", status=429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1500"})
    responses.get(f"{BASE}/a", status=200)
    http = session(sleeps, pacer=pacer)
    assert http.get("/a").status_code == 200
    # The retry's wait is the reset; the pacer then finds the window already over or waits it.
    assert sleeps[0] == 1.5


def test_the_concurrency_cap_holds_across_threads(sleeps: Sleeps) -> None:
    lock = threading.Lock()
    inside = peak = 0
    meet = threading.Barrier(3)

    def answer(request):
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)
        try:
            meet.wait(timeout=0.2)
        except threading.BrokenBarrierError:
            pass
        with lock:
            inside -= 1
        return 200, {}, "{}"

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, f"{BASE}/m", callback=answer)
        http = session(sleeps, max_connections=3)
        threads = [threading.Thread(target=http.get, args=("/m",)) for _ in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert peak == 3
    assert http.calls.total == 9


@responses.activate
def test_a_read_timeout_keeps_the_account_slot_taken(tmp_path: Path, sleeps: Sleeps) -> None:
    responses.post(f"{BASE}/batch", body=requests.ReadTimeout("read timed out"))
    http = new_session(BASE, sleep=sleeps, retry=RetryPolicy(attempts=1), abandoned_hold=30.0)
    http.budget = HttpBudget(BASE, "key-1", 2, root=tmp_path)
    with pytest.raises(requests.ReadTimeout):
        http.post("/batch")
    assert http.budget.in_use() == 1  # the server may still be running it


@responses.activate
def test_logs_name_the_request_but_never_its_credentials(sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-0123456789abcdef"
    responses.get(f"{BASE}/contacts", status=500)
    responses.get(f"{BASE}/contacts", status=200)
    http = session(sleeps, headers={"Authorization": f"Bearer {secret}", "api-key": secret})
    with caplog.at_level(logging.DEBUG, logger="segsync.http"):
        http.get("/contacts", params={"api_key": secret, "email": "ann@example.com", "limit": 5})
    assert responses.calls[0].request.headers["api-key"] == secret  # sent, of course
    text = caplog.text
    assert secret not in text
    assert "ann@example.com" not in text and "ann%40example.com" not in text
    assert "api_key=***" in text and "limit=5" in text
    assert "failed on attempt 1 of 4: HTTP 500; retrying" in text
    assert "-> 200" in text


@responses.activate
def test_a_transport_error_is_logged_without_its_query(sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    secret = "tok-abcdefghijklmnop"
    responses.get(f"{BASE}/r", body=requests.ConnectionError(
        f"HTTPSConnectionPool: Max retries exceeded with url: /v3/r?token={secret} (Caused by reset)"))
    http = session(sleeps, retry=RetryPolicy(attempts=2, wait_initial=0))
    with caplog.at_level(logging.DEBUG, logger="segsync.http"), pytest.raises(requests.ConnectionError):
        http.get("/r", params={"token": secret})
    assert secret not in caplog.text
    assert "/v3/r?***" in caplog.text


def test_importing_the_kit_or_its_settings_imports_neither_requests_nor_tenacity() -> None:
    code = "import sys, segsync.http, segsync.http.settings; print('requests' in sys.modules, 'tenacity' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


PROXY_ENVIRONMENT = {"HTTP_PROXY": "http://proxy.test:3128", "HTTPS_PROXY": "http://secure-proxy.test:3128",
                     "NO_PROXY": "direct.test", "REQUESTS_CA_BUNDLE": "/etc/ssl/bundle.pem"}


def test_the_environment_is_read_once_per_host_and_merged_as_requests_merges_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # requests reads the proxy variables (walking the whole environment) and the CA bundle on
    # every request; a session reads them once per scheme and host, and merges them the same way.
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ALL_PROXY", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PROXY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    import segsync.http.session as module

    reads: list[str] = []
    read = module.get_environ_proxies
    monkeypatch.setattr(module, "get_environ_proxies",
                        lambda url, no_proxy=None: reads.append(url) or read(url, no_proxy=no_proxy))
    kit, plain = new_session(), requests.Session()
    cases = [
        ("https://api.example.test/v3/a?page=1", {}, None, None, None),
        ("https://api.example.test/v3/b", {}, None, None, None),
        ("http://api.example.test/v3/b", {}, None, None, None),
        ("https://direct.test/x", {}, None, None, None),
        ("https://api.example.test/v3/c", {"https": "http://mine.test:1"}, True, False, None),
        ("https://api.example.test/v3/d", {"no_proxy": "example.test"}, None, True, ("c.pem", "k.pem")),
        ("https://api.example.test/v3/e", None, None, "/my/bundle.pem", None),
    ]
    merged = [kit.merge_environment_settings(url, None if p is None else dict(p), s, v, c) for url, p, s, v, c in cases]
    assert merged == [plain.merge_environment_settings(url, None if p is None else dict(p), s, v, c)
                      for url, p, s, v, c in cases]
    assert merged[0] == {"proxies": {"http": "http://proxy.test:3128", "https": "http://secure-proxy.test:3128",
                                     "no": "direct.test"},
                         "stream": False, "verify": "/etc/ssl/bundle.pem", "cert": None}
    assert merged[3]["proxies"] == {}  # NO_PROXY
    assert reads == ["https://api.example.test/v3/a?page=1", "http://api.example.test/v3/b",
                     "https://direct.test/x", "https://api.example.test/v3/d"]

    kit.trust_env = plain.trust_env = False
    kit.verify = plain.verify = False
    assert kit.merge_environment_settings(cases[0][0], {}, None, None, None) == \
        plain.merge_environment_settings(cases[0][0], {}, None, None, None) == \
        {"proxies": {}, "stream": False, "verify": False, "cert": None}


@responses.activate
def test_requests_go_through_the_proxy_the_environment_names(monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ALL_PROXY", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PROXY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    responses.get(f"{BASE}/r", json={})
    http = session(sleeps)
    http.get("/r")
    http.get("/r")
    sent = [call.request.req_kwargs for call in responses.calls]
    assert [(kw["proxies"].get("https"), kw["verify"]) for kw in sent] == [
        ("http://secure-proxy.test:3128", "/etc/ssl/bundle.pem")] * 2

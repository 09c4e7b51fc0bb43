"""A ``requests`` session with the framework's retry policy, pacing, concurrency cap, call
counting and secret-safe logging: what every API connector needs around each request.

>>> session = new_session("https://api.example.com/v3", headers={"api-key": key},
...                       retry=RetryPolicy(attempts=6), timeout=30, max_connections=10)
>>> response = session.get("/contacts", params={"limit": 50}, endpoint="contacts.list")
>>> session.calls.by_endpoint()
{'contacts.list': 1}

Each request, attempt by attempt: wait for the rate-limit window (:class:`RatePacer`), take a
slot of the session's concurrency cap and, when given, of the account's cross-process
:class:`HttpBudget`, send, count, remember the window the answer reports, log a line without
secrets. 429, 5xx, timeouts and connection resets are retried by the :class:`RetryPolicy`
(``Retry-After`` honoured, else the pacer's reset header on a 429, else back-off with jitter);
a read timeout keeps the account slot taken for ``abandoned_hold`` seconds more, since the
server may still be working on the request. When the attempts run out, the last answer is
returned (check it with :func:`raise_for_status`) or the last transport error raised.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies

from segsync.http.budget import HttpBudget
from segsync.http.counting import CallCounter
from segsync.http.pacing import RatePacer
from segsync.http.retry import RetryPolicy, is_retryable_status, parse_retry_after
from segsync.http.safelog import safe_error, safe_url

log = logging.getLogger("segsync.http")


class HttpError(Exception):
    """A final error answer: status, the service's body (truncated) and its retry hint."""

    def __init__(self, status: int, message: str, *, body: str = "", retry_after: float | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    @property
    def retryable(self) -> bool:
        return is_retryable_status(self.status)

    @classmethod
    def from_response(cls, response: requests.Response, endpoint: str | None = None) -> HttpError:
        request = response.request
        what = endpoint or f"{request.method} {safe_url(request.url or '')}"
        body = response.text[:1000] if response.content else ""
        return cls(response.status_code, f"{what}: HTTP {response.status_code} {response.reason or ''}".rstrip(),
                   body=body, retry_after=parse_retry_after(response.headers.get("Retry-After")),
                   headers=response.headers)


def raise_for_status(response: requests.Response, endpoint: str | None = None) -> requests.Response:
    """``response`` when it is 2xx/3xx, else :class:`HttpError` (its text names no secret)."""
    if response.status_code >= 400:
        raise HttpError.from_response(response, endpoint)
    return response


class _RetryableAnswer(Exception):
    """An answer worth another try (429/5xx); carries it for the wait and the last return."""

    retryable = True

    def __init__(self, response: requests.Response, retry_after: float | None) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after


class HttpSession(requests.Session):
    """See the module's docstring; build one with :func:`new_session`."""

    def __init__(
        self,
        base_url: str = "",
        *,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = 30.0,
        max_connections: int = 10,
        budget: HttpBudget | None = None,
        abandoned_hold: float | None = None,
        pacer: RatePacer | None = None,
        calls: CallCounter | None = None,
        name: str = "http",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.retry_policy = retry or RetryPolicy()
        self.timeout = timeout
        self.max_connections = max_connections
        self.budget = budget
        self.abandoned_hold = abandoned_hold
        self.pacer = pacer
        self.calls = calls or CallCounter()
        self.name = name
        self._sleep = sleep
        self._cap = threading.BoundedSemaphore(max_connections)
        # A pool as large as the cap (requests' default of 10 would open and drop connections
        # beyond it); urllib3's own retries off: the policy here is the one that counts.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max_connections, max_retries=0)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self._environment: dict[tuple[str, str, str | None], tuple[dict[str, str], str | None]] = {}

    # requests.Session.get/post/... all end here.
    def request(self, method: str, url: str | bytes, *args: Any, endpoint: str | None = None,
                retry: bool = True, **kwargs: Any) -> requests.Response:
        """As ``requests.Session.request``, plus ``endpoint`` (the label calls are counted and
        logged under; default ``METHOD /path``) and ``retry=False`` for a single attempt."""
        url = self.url_for(url if isinstance(url, str) else url.decode())
        label = endpoint or f"{method.upper()} {urlsplit(url).path}"
        kwargs.setdefault("timeout", self.timeout)
        policy = self.retry_policy if retry else RetryPolicy(attempts=1)
        attempt_number = 0

        def attempt() -> requests.Response:
            nonlocal attempt_number
            attempt_number += 1
            response = self._send_once(method, url, label, attempt_number, *args, **kwargs)
            if is_retryable_status(response.status_code):
                raise _RetryableAnswer(response, self._retry_hint(response))
            return response

        try:
            return policy.retrying(before_sleep=self._log_retry(method, label), sleep=self._sleep)(attempt)
        except _RetryableAnswer as last:
            return last.response

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        """As ``requests.Session.merge_environment_settings``, with the environment read once per
        scheme and host (and ``no_proxy``) for the session's life: ``requests`` reads the proxy
        variables (walking the whole environment) and the CA bundle variables on every request,
        a third of its own CPU per call. The merge with the call's and the session's settings
        is the one ``requests`` 2.x does."""
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        environment = self._environment.get(key)
        if environment is None:
            environment = self._environment[key] = (
                get_environ_proxies(url, no_proxy=no_proxy),
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
        env_proxies, env_verify = environment
        if proxies is not None:
            for scheme, proxy in env_proxies.items():
                proxies.setdefault(scheme, proxy)
        if verify is True or verify is None:
            verify = env_verify or verify
        return {"proxies": merge_setting(proxies, self.proxies), "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify), "cert": merge_setting(cert, self.cert)}

    def url_for(self, url: str) -> str:
        """``url`` itself when absolute, else joined to the base URL."""
        if "://" in url or not self.base_url:
            return url
        return f"{self.base_url}/{url.lstrip('/')}"

    def _send_once(self, method: str, url: str, label: str, attempt_number: int, *args: Any,
                   **kwargs: Any) -> requests.Response:
        path = urlsplit(url).path
        if self.pacer is not None:
            self.pacer.before(path)
        started = time.monotonic()
        with ExitStack() as stack:
            stack.enter_context(self._cap)
            slot = stack.enter_context(self.budget.slot()) if self.budget is not None else None
            self.calls.record(label, retry=attempt_number > 1)
            try:
                response = super().request(method, url, *args, **kwargs)
            except (requests.RequestException, ConnectionError, TimeoutError) as exc:
                if slot is not None and isinstance(exc, requests.ReadTimeout):
                    slot.abandon(self.abandoned_hold if self.abandoned_hold is not None else _read_timeout(kwargs))
                log.debug("%s %s %s failed after %.0f ms: %s", self.name, method,
                          safe_url(_with_params(url, kwargs.get("params"))),
                          (time.monotonic() - started) * 1000, safe_error(exc))
                raise
        if self.pacer is not None:
            self.pacer.after(path, response.headers)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s -> %d in %.0f ms (attempt %d)", self.name, method,
                      safe_url(response.request.url or url),
                      response.status_code, (time.monotonic() - started) * 1000, attempt_number)
        return response

    def _retry_hint(self, response: requests.Response) -> float | None:
        hint = parse_retry_after(response.headers.get("Retry-After"))
        if hint is None and response.status_code == 429 and self.pacer is not None:
            hint = self.pacer.headers.reset_seconds(response.headers)
        return hint

    def _log_retry(self, method: str, label: str) -> Callable[[Any], None]:
        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            what = str(exc) if isinstance(exc, _RetryableAnswer) else safe_error(exc) if exc else "?"
            log.warning("%s %s failed on attempt %d of %d: %s; retrying in %.2f s", self.name, label,
                        state.attempt_number, self.retry_policy.attempts, what,
                        state.next_action.sleep if state.next_action else 0.0)

        return before_sleep


def _with_params(url: str, params: Any) -> str:
    """The URL a request with ``params`` went to (for the log line of a failed one)."""
    if not params:
        return url
    prepared = requests.models.PreparedRequest()
    prepared.prepare_url(url, params)
    return prepared.url or url


def _read_timeout(kwargs: Mapping[str, Any]) -> float:
    timeout = kwargs.get("timeout")
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    return float(timeout or 0.0)


def new_session(
    base_url: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | tuple[float, float] = 30.0,
    max_connections: int = 10,
    account: tuple[str, str] | None = None,
    account_slots: int | None = None,
    abandoned_hold: float | None = None,
    pacer: RatePacer | None = None,
    name: str = "http",
    sleep: Callable[[float], None] = time.sleep,
) -> HttpSession:
    """A session for one connection.

    ``account=(host, key)`` shares ``account_slots`` (default: ``max_connections``) simultaneous
    requests with every session and process using the same account (:class:`HttpBudget`);
    ``headers`` are sent with every request (credentials included: they are never logged).
    """
    budget = None
    if account is not None:
        budget = HttpBudget(account[0], account[1], account_slots or max_connections)
    session = HttpSession(base_url, retry=retry, timeout=timeout, max_connections=max_connections,
                          budget=budget, abandoned_hold=abandoned_hold, pacer=pacer, name=name, sleep=sleep)
    if headers:
        session.headers.update(headers)
    return session

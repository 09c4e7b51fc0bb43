"""A thin wrapper around the official SDK (mailchimp-marketing 3.0.80).

It makes the SDK's behaviour explicit and uniform:

* The SDK raises ``ApiClientError`` whose ``.text`` is a dict only for ``application/json``;
  Mailchimp's errors are ``application/problem+json`` and arrive as a raw string, which is
  parsed here. Transport failures arrive as ``ApiClientError(exception)`` with no status.
* A 4xx/5xx with an empty body (a bare 429 from an edge) and every 204 come back as a
  ``requests.Response`` instead of raising; both are turned into results or errors here.
* ``ApiClientError`` drops the response headers, so ``Retry-After`` is captured from the
  response object through the client's ``request`` method.
* The SDK builds URLs as host + path with the word ``server`` replaced by the data-centre
  prefix, so a ``host`` override never contains that word (checked by the settings).
* Requests go through ``requests``' module-level functions (one connection per call); a
  semaphore keeps at most ``max_connections`` of this connection in flight, and every request
  takes one of the account's 10 slots (:mod:`segsync.http.budget`, shared with every other
  connection and process using the same key), held on after a read timeout until the server
  has plausibly finished the abandoned request (``abandoned_hold``)
  and a thread pool of the same size runs write batches in parallel (:meth:`MailchimpApi.window`).
* 429, 5xx and network errors are retried with tenacity, honouring ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from segsync.http import HttpBudget

from segsync_mailchimp.settings import MailchimpSettings

if TYPE_CHECKING:
    from mailchimp_marketing.api_client import ApiClientError

log = logging.getLogger(__name__)
ACCOUNT_CONNECTIONS = 10  # Mailchimp: "10 simultaneous connections" per user, else 429
T = TypeVar("T")
R = TypeVar("R")


class MailchimpError(Exception):
    """A failed call, with the fields of Mailchimp's problem document."""

    def __init__(
        self,
        status: int | None,
        title: str,
        detail: str = "",
        *,
        type: str = "",  # noqa: A002 - the problem document's field name
        instance: str = "",
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.instance = instance
        self.errors = errors or []
        self.retry_after = retry_after
        super().__init__(str(self))

    @property
    def retryable(self) -> bool:
        """Network errors, 429 and 5xx are worth another try; other 4xx are not."""
        return self.status is None or self.status == 429 or self.status >= 500

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "network error"
        text = f"Mailchimp {where} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        for err in self.errors[:5]:
            text += f" [{err.get('field', '')}: {err.get('message', '')}]"
        return text

    @classmethod
    def from_problem(cls, status: int | None, body: Any, retry_after: float | None) -> MailchimpError:
        if isinstance(body, (bytes, str)):
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            try:
                body = json.loads(text) if text.strip() else {}
            except ValueError:
                body = {"detail": text.strip()[:500]}
        if not isinstance(body, dict):
            body = {}
        return cls(
            status if status is not None else body.get("status"),
            str(body.get("title") or _reason(status)),
            str(body.get("detail") or ""),
            type=str(body.get("type") or ""),
            instance=str(body.get("instance") or ""),
            errors=body.get("errors") if isinstance(body.get("errors"), list) else None,
            retry_after=retry_after,
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class MailchimpApi:
    """The SDK client plus retries, the connection cap and a call counter."""

    def __init__(self, settings: MailchimpSettings) -> None:
        # The SDK (and requests) load with the first client, not with the connector class.
        import mailchimp_marketing

        self.settings = settings
        self.client = mailchimp_marketing.Client(
            {
                "api_key": settings.api_key.get_secret_value(),
                "server": settings.resolved_server,
                "timeout": settings.timeout,
            }
        )
        if settings.host:
            self.client.api_client.host = settings.host
        self._local = threading.local()
        self._install_response_capture()
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        self.budget = HttpBudget(self.client.api_client.host, settings.api_key.get_secret_value(),
                                 ACCOUNT_CONNECTIONS)
        self._pool = ThreadPoolExecutor(settings.max_connections, thread_name_prefix="mailchimp")
        self._count_lock = threading.Lock()
        self.calls = 0  # HTTP requests sent, retries included

    def _install_response_capture(self) -> None:
        # ApiClientError keeps only the body; keep the Response (for Retry-After) per thread.
        api_client = self.client.api_client
        original = api_client.request

        def request(method: str, url: str, query_params: Any = None, headers: Any = None, body: Any = None) -> Any:
            self._local.response = None
            response = original(method, url, query_params, headers=headers, body=body)
            self._local.response = response
            return response

        api_client.request = request

    # ------------------------------------------------------------------ calls
    def call(self, label: str, fn: Callable[[Any], T]) -> T | None:
        """Run ``fn(client)`` with retries; returns its data (None for 204/empty answers)."""
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, MailchimpError) and e.retryable),
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            before_sleep=lambda state: log.warning(
                "Mailchimp %s failed (attempt %d): %s; retrying", label,
                state.attempt_number, state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        return retrying(self._attempt, fn)

    def window(self, work: Callable[[R], T], items: Iterable[R], done: Callable[[R, T], None]) -> None:
        """Run ``work(item)`` for every item on at most ``max_connections`` threads.

        ``done(item, result)`` runs in the calling thread as each item finishes (in completion
        order). A new item starts only when a finished one has been handed to ``done``, so at
        most ``max_connections`` items are ever started and not yet done: what a crash can
        leave sent but unacknowledged. An exception from ``work`` is raised here once the items
        already running have finished.
        """
        queue = iter(items)
        running: dict[Future[T], R] = {}

        def start_next() -> None:
            for item in queue:
                running[self._pool.submit(work, item)] = item
                return

        for _ in range(self.settings.max_connections):
            start_next()
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = running.pop(future)
                    done(item, future.result())
                    start_next()
        finally:
            wait(running)  # never leave requests running behind an error

    def _attempt(self, fn: Callable[[Any], T]) -> T | None:
        import requests
        from mailchimp_marketing.api_client import ApiClientError

        with self._slots, self.budget.slot() as slot:
            with self._count_lock:
                self.calls += 1
            try:
                result = fn(self.client)
            except ApiClientError as err:
                if err.status_code is None and isinstance(err.text, requests.exceptions.ReadTimeout):
                    # Given up, but the server may still be working on it on one of our connections.
                    hold = self.settings.abandoned_hold
                    slot.abandon(self.settings.timeout if hold is None else hold)
                raise self._error(err) from None
        if isinstance(result, requests.Response):
            # The SDK hands back the Response for 204s and for error answers without a body.
            if result.ok:
                return None
            raise MailchimpError.from_problem(
                result.status_code, result.content, parse_retry_after(result.headers.get("Retry-After"))
            )
        return result

    def _error(self, err: ApiClientError) -> MailchimpError:
        if err.status_code is None:  # the SDK wraps transport exceptions the same way
            cause = err.text
            return MailchimpError(None, type(cause).__name__, _safe_reason(cause))
        response = getattr(self._local, "response", None)
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        return MailchimpError.from_problem(err.status_code, err.text, retry_after)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, MailchimpError) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.retry_wait_max)
        # Exponential back-off with jitter (spreads the retries of parallel workers apart).
        initial = self.settings.retry_wait_initial
        backoff = initial * 2 ** (state.attempt_number - 1) + random.uniform(0, initial)
        return min(backoff, self.settings.retry_wait_max)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _safe_reason(cause: Any) -> str:
    """A transport error's message without the URL's query string (it may carry addresses)."""
    text = str(cause)
    return text.split("?", 1)[0][:300] if text else type(cause).__name__


def _reason(status: int | None) -> str:
    try:
        return HTTPStatus(status or 0).phrase
    except ValueError:
        return "Error"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)

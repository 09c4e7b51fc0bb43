"""A thin wrapper around the official SDK (mailchimp-marketing 3.0.80), sending through the
framework's HTTP kit (:mod:`segsync.http`).

It makes the SDK's behaviour explicit and uniform:

* The SDK's requests go through a :class:`segsync.http.HttpSession` (its ``request`` method is
  replaced): the kit's retry policy (429, 5xx, timeouts and resets retried, ``Retry-After``
  honoured, back-off with jitter, ``max_attempts`` in all), a cap of ``max_connections``
  requests of this connection in flight, one of the account's 10 slots per request
  (:class:`segsync.http.HttpBudget`, shared with every other connection and process using the
  same key; held on after a read timeout for ``abandoned_hold``), calls counted per operation
  and logged without the key. Kept-alive connections replace the SDK's one connection per call.
* The SDK raises ``ApiClientError`` whose ``.text`` is a dict only for ``application/json``;
  Mailchimp's errors are ``application/problem+json`` and arrive as a raw string, which is
  parsed here. Transport failures arrive as ``ApiClientError(exception)`` with no status.
* A 4xx/5xx with an empty body (a bare 429 from an edge) and every 204 come back as a
  ``requests.Response`` instead of raising; both are turned into results or errors here.
* ``ApiClientError`` drops the response headers, so ``Retry-After`` is read from the last
  response of the calling thread.
* The SDK builds URLs as host + path with the word ``server`` replaced by the data-centre
  prefix, so a ``host`` override never contains that word (checked by the settings).
* A thread pool of ``max_connections`` runs write batches in parallel (:meth:`MailchimpApi.window`).

The write path's bulk calls (batch-subscribe and bulk tag changes, a million contacts in a first
sync) skip the SDK: :meth:`MailchimpApi.post` sends their JSON, encoded once by ``orjson``
(compact UTF-8, ~10x faster than ``json.dumps``), through the same session. For them the SDK
only builds a URL and parses the answer, and its per-call work (sanitising the header, path and
query parameters, ``json.dumps`` of the body) was CPU spent 2,000 times a million contacts for
nothing it checks.
Every other call (reads, tag listing and creation, erasure, triggers) keeps going through the
SDK. Both paths share the session (retries, budget, counting, logging; its basic auth, set
once) and the error mapping (:class:`MailchimpError`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from segsync.http import is_retryable_status, new_session, parse_retry_after, safe_error

from segsync_mailchimp.settings import MailchimpSettings

if TYPE_CHECKING:
    from mailchimp_marketing.api_client import ApiClientError

ACCOUNT_CONNECTIONS = 10  # Mailchimp: "10 simultaneous connections" per user, else 429
JSON_HEADERS = {"Content-Type": "application/json"}
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
        return self.status is None or is_retryable_status(self.status)

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


class MailchimpApi:
    """The SDK client sending through a kit session, plus the write-batch thread pool."""

    def __init__(self, settings: MailchimpSettings) -> None:
        # The SDK (and requests) load with the first client, not with the connector class.
        import mailchimp_marketing

        self.settings = settings
        key = settings.api_key.get_secret_value()
        self.client = mailchimp_marketing.Client({"api_key": key, "server": settings.resolved_server,
                                                  "timeout": settings.timeout})
        if settings.host:
            self.client.api_client.host = settings.host
        # The SDK's URLs: host with the word "server" replaced by the data-centre prefix.
        self.base_url = self.client.api_client.host.replace("server", self.client.api_client.server)
        self.session = new_session(
            retry=settings.retry_policy(), timeout=settings.timeout, max_connections=settings.max_connections,
            account=(self.client.api_client.host, key), account_slots=ACCOUNT_CONNECTIONS,
            abandoned_hold=settings.abandoned_hold, name="mailchimp")
        # Basic auth as the SDK sends it, set once on the session for both paths (credentials
        # are never logged, see segsync.http).
        self.session.auth = ("user", key)
        self._local = threading.local()
        self.client.api_client.request = self._request
        self._pool = ThreadPoolExecutor(settings.max_connections, thread_name_prefix="mailchimp")

    @property
    def calls(self) -> int:
        """HTTP requests sent, retries included (``session.calls`` splits them by operation)."""
        return self.session.calls.total

    @property
    def budget(self):  # noqa: ANN201 - segsync.http.HttpBudget
        return self.session.budget

    def _request(self, method: str, url: str, query_params: Any = None, headers: Any = None,
                 body: Any = None) -> Any:
        """What the SDK's ``ApiClient.request`` does, through the session; keeps the response
        (for ``Retry-After``, which ``ApiClientError`` drops) per thread."""
        self._local.response = None
        data = json.dumps(body) if method in ("POST", "PUT", "PATCH") else None
        extra = getattr(self._local, "params", None)
        if extra:
            query_params = [*(query_params or ()), *extra]
        response = self.session.request(method, url, params=query_params, headers=headers, data=data,
                                        endpoint=getattr(self._local, "label", None))
        self._local.response = response
        return response

    # ------------------------------------------------------------------ calls
    def call(self, label: str, fn: Callable[[Any], T], *, exclude_fields: Iterable[str] = ()) -> T | None:
        """Run ``fn(client)`` (its requests retried by the session); returns its data (None for
        204/empty answers) or raises :class:`MailchimpError`.

        ``exclude_fields``: parts of the answer not to send (Mailchimp's partial responses),
        for calls whose SDK method has no such parameter: a batch call's member documents are
        most of its answer and of the time spent reading it."""
        import requests
        from mailchimp_marketing.api_client import ApiClientError

        self._local.label = label
        self._local.params = [("exclude_fields", ",".join(exclude_fields))] if exclude_fields else None
        try:
            result = fn(self.client)
        except ApiClientError as err:
            raise self._error(err) from None
        finally:
            self._local.label = None
            self._local.params = None
        if isinstance(result, requests.Response):
            # The SDK hands back the Response for 204s and for error answers without a body.
            if result.ok:
                return None
            raise MailchimpError.from_problem(
                result.status_code, result.content, parse_retry_after(result.headers.get("Retry-After"))
            )
        return result

    def post(self, label: str, path: str, body: Any, *, exclude_fields: Iterable[str] = ()) -> Any:
        """``POST`` the JSON ``body`` to ``path`` (under the API's base URL) through the session,
        without the SDK: for the bulk write calls (see the module's docstring). Returns and
        raises as :meth:`call` does for the SDK's methods: the answer's JSON (its text when
        not JSON; None when empty), :class:`MailchimpError` for an error answer or a transport
        failure that outlived the retries."""
        params = [("exclude_fields", ",".join(exclude_fields))] if exclude_fields else None
        try:
            # A value JSON cannot hold fails the call as it did in the SDK's json.dumps.
            data = orjson.dumps(body)
            response = self.session.request("POST", self.base_url + path, params=params, data=data,
                                            headers=JSON_HEADERS, endpoint=label)
        except Exception as exc:  # noqa: BLE001 - what the SDK turns into ApiClientError(exc)
            raise MailchimpError(None, type(exc).__name__, _safe_reason(exc)) from None
        if not response.ok:
            raise MailchimpError.from_problem(response.status_code, response.content,
                                              parse_retry_after(response.headers.get("Retry-After")))
        # As the SDK's call_api reads an answer: JSON by its content type, else the text; an
        # empty or unreadable one is None.
        content_type = response.headers.get("Content-Type")
        if not response.content or content_type is None:
            return None
        if "application/json" in content_type:
            try:
                return json.loads(response.content) or None
            except ValueError:
                return None
        return response.text or None

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

    def _error(self, err: ApiClientError) -> MailchimpError:
        if err.status_code is None:  # the SDK wraps transport exceptions the same way
            cause = err.text
            return MailchimpError(None, type(cause).__name__, _safe_reason(cause))
        response = getattr(self._local, "response", None)
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        return MailchimpError.from_problem(err.status_code, err.text, retry_after)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.session.close()


def _safe_reason(cause: Any) -> str:
    """A transport error's message without the URL's query string (it may carry addresses)."""
    return safe_error(cause) if isinstance(cause, BaseException) else str(cause)[:300]


def _reason(status: int | None) -> str:
    try:
        return HTTPStatus(status or 0).phrase
    except ValueError:
        return "Error"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)

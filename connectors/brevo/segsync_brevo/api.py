"""The only module that touches Brevo's Python SDK (``sib-api-v3-sdk`` 7.6.0).

Everything above this module speaks Brevo's JSON (camelCase dicts, as in the API reference), so
replacing the SDK with its successor ``brevo-python`` changes this file only. What the SDK gets
wrong, and how this module works around it, is listed in the README ("SDK caveats").

The SDK sends with urllib3, not ``requests``, so the HTTP kit (:mod:`segsync.http`) is used in
parts around it: its retry policy (:class:`~segsync.http.RetryPolicy`), pacing from Brevo's
``x-sib-ratelimit-*`` headers per bucket (:class:`~segsync.http.RatePacer`), the per-account
:class:`~segsync.http.HttpBudget`, call counting per operation (:class:`~segsync.http.CallCounter`)
and transport errors without their query strings (:func:`~segsync.http.safe_error`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import sib_api_v3_sdk
import urllib3
from pydantic import SecretStr
from segsync.http import (
    CallCounter, HttpBudget, RateLimitHeaders, RatePacer, RetryPolicy, is_retryable_status, parse_retry_after,
    safe_error,
)
from sib_api_v3_sdk.rest import ApiException, RESTClientObject, RESTResponse
from tenacity import RetryCallState

from segsync_brevo.limits import LISTS_PAGE_MAX, bucket_for
from segsync_brevo.settings import DEFAULT_HOST

log = logging.getLogger(__name__)

T = TypeVar("T")
# Most look-ups while a create whose answer was lost in transport may still land (see _settle).
SETTLE_LOOKUPS = 8
# Every answer says what is left of the current window of its bucket, and when it resets.
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
EVENTS_PAGE = 1000  # custom events per GET /v3/events page (Brevo allows up to 10,000)
RATE_LIMIT_HEADERS = RateLimitHeaders("x-sib-ratelimit-remaining", "x-sib-ratelimit-reset", "seconds")


class JsonBody(dict):
    """A request body already made of JSON types (dicts, lists, strings, numbers, booleans):
    sent as it is, without the SDK's walk over every value (an import's 8 MB of rows). A
    :class:`RawJson` value is JSON text already, written into the body as it is."""


class RawJson(str):
    """JSON text (an import's rows as the planner wrote them while measuring them)."""


# The import body as the planner measured it against Brevo's 10 MB: compact, UTF-8.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _encode_body(body: JsonBody) -> bytes:
    return ("{" + ",".join(f"{_COMPACT.encode(key)}:{value if isinstance(value, RawJson) else _COMPACT.encode(value)}"
                           for key, value in body.items()) + "}").encode()


class _RestClient(RESTClientObject):
    """The SDK's transport, except that a :class:`JsonBody` is sent as compact UTF-8 JSON: the
    SDK's ``json.dumps`` adds a space after every separator and writes each non-ASCII character
    as a 6-byte escape, 8 % (ASCII rows) to 40 % (accented names) more bytes than the planner
    measured, which took a body measured under Brevo's 10 MB over it."""

    def request(self, method, url, query_params=None, headers=None, body=None, post_params=None,  # noqa: ANN001, ANN201, PLR0913 - the SDK's signature
                _preload_content=True, _request_timeout=None):
        if not isinstance(body, JsonBody):
            return super().request(method, url, query_params=query_params, headers=headers, body=body,
                                   post_params=post_params, _preload_content=_preload_content,
                                   _request_timeout=_request_timeout)
        if query_params:
            url += "?" + urlencode(query_params)
        timeout = urllib3.Timeout(*_request_timeout) if isinstance(_request_timeout, tuple) else None
        try:
            response = self.pool_manager.request(
                method.upper(), url, body=_encode_body(body), preload_content=_preload_content,
                timeout=timeout, headers={**(headers or {}), "Content-Type": "application/json"})
        except urllib3.exceptions.SSLError as exc:
            raise ApiException(status=0, reason=f"{type(exc).__name__}\n{exc}") from None
        if _preload_content:
            response = RESTResponse(response)
            response.data = response.data.decode("utf8")
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return response


class _ApiClient(sib_api_v3_sdk.ApiClient):
    def __init__(self, configuration: sib_api_v3_sdk.Configuration) -> None:
        super().__init__(configuration)
        self.rest_client = _RestClient(configuration)

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, JsonBody):
            return obj
        return super().sanitize_for_serialization(obj)


class BrevoApiError(Exception):
    """A Brevo error answer (``{code, message}``) or a transport failure (status 0)."""

    retryable = False

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"Brevo API error {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class RetryableApiError(BrevoApiError):
    """429, 5xx, timeouts and dropped connections: worth trying again."""

    retryable = True

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait: ``Retry-After``, else for a 429 until the rate-limit window resets
        (a hair after: the window starts again at that instant)."""
        hint = parse_retry_after(self.headers.get("Retry-After") or self.headers.get("retry-after"))
        if hint is None and self.status == 429:
            reset = RATE_LIMIT_HEADERS.reset_seconds(self.headers)
            hint = None if reset is None else reset + 0.01
        return hint


def _error_from(exc: ApiException) -> BrevoApiError:
    code, message = "unknown", exc.reason or ""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            parsed = json.loads(body)
            code = str(parsed.get("code", code))
            message = str(parsed.get("message", message))
        except (ValueError, AttributeError):
            message = body[:200]
    status = int(exc.status or 0)
    cls = RetryableApiError if status == 0 or is_retryable_status(status) else BrevoApiError
    return cls(status, code, message, exc.headers)


class BrevoApi:
    """Brevo API v3 calls with pacing, retries and plain-dict results.

    ``calls`` counts HTTP requests actually sent (retries included); ``calls_by_op`` splits
    them by operation for benchmarks and tests; ``retries`` counts the tries after a first.
    """

    def __init__(
        self,
        api_key: SecretStr,
        host: str = DEFAULT_HOST,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        wait_initial: float = 0.25,
        max_backoff: float = 30.0,
        pacer: RatePacer | None = None,
        max_connections: int = 10,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        config = sib_api_v3_sdk.Configuration()
        # The SDK defaults to the legacy https://api.sendinblue.com/v3 host.
        config.host = host.rstrip("/")
        config.api_key["api-key"] = api_key.get_secret_value()
        self._client = _ApiClient(config)
        # urllib3's own silent retries would hide dropped connections from our counting and
        # double-send without pacing; the kit's policy below is the one retry policy.
        self._client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self._contacts = sib_api_v3_sdk.ContactsApi(self._client)
        self._process = sib_api_v3_sdk.ProcessApi(self._client)
        self._smtp = sib_api_v3_sdk.TransactionalEmailsApi(self._client)
        self._account = sib_api_v3_sdk.AccountApi(self._client)
        # A float timeout is silently ignored by the SDK (it checks isinstance(int)); the
        # (connect, read) tuple form is honoured.
        self._timeout = (timeout, timeout)
        self.policy = RetryPolicy(attempts=max_attempts, wait_initial=wait_initial, wait_max=max_backoff)
        self._sleep = sleep  # between retries (a test passes a recorder)
        self.pacer = pacer or RatePacer(RATE_LIMIT_HEADERS, bucket=bucket_for)
        # Simultaneous requests per account, shared with every connection and process using it.
        self.budget = HttpBudget(config.host, api_key.get_secret_value(), max_connections)
        self.counter = CallCounter()

    @property
    def calls(self) -> int:
        return self.counter.total

    @property
    def calls_by_op(self) -> dict[str, int]:
        return self.counter.by_endpoint()

    @property
    def retries(self) -> int:
        return self.counter.retries

    # -- plumbing ------------------------------------------------------------------------

    def _retrying(self):  # noqa: ANN202 - a tenacity Retrying
        return self.policy.retrying(before_sleep=self._before_sleep, sleep=self._sleep)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("Brevo call failed (%s); retrying (attempt %d)", exc, state.attempt_number + 1)

    def _send(self, op: str, path: str, fn, *args, raw: bool = False, retry: bool = False, **kwargs) -> Any:
        """One HTTP request through the SDK; returns the JSON-ready result."""
        self.pacer.before(path)
        self.counter.record(op, retry=retry)
        with self.budget.slot() as slot:
            try:
                result = fn(
                    *args, _request_timeout=self._timeout, _preload_content=not raw, **kwargs
                )
            except ApiException as exc:
                self.pacer.after(path, exc.headers)
                raise _error_from(exc) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                    # Given up, but Brevo may still be working on it: it still counts.
                    slot.abandon(self._timeout[1])
                raise RetryableApiError(0, "transport", f"{type(exc).__name__}: {safe_error(exc)}") from None
        data, _status, headers = result
        self.pacer.after(path, headers)
        if raw:
            body = data.data
            data.release_conn()
            return json.loads(body) if body else None
        return self._client.sanitize_for_serialization(data)

    def _call(self, op: str, path: str, fn, *args, **kwargs) -> Any:
        for attempt in self._retrying():
            with attempt:
                return self._send(op, path, fn, *args, retry=attempt.retry_state.attempt_number > 1, **kwargs)
        raise AssertionError("unreachable: the policy re-raises the last error")

    def _create(self, op: str, path: str, find: Callable[[], T | None], fn, *args) -> T | Any:
        """A create Brevo does not make idempotent (attribute, list, folder), done at most once.

        A lost answer (timeout, dropped connection, 5xx) may hide a create that succeeded, so
        before each retry ``find()`` looks the thing up and, when it exists, returns it
        instead of creating a second one. An answer lost in transport (status 0) may also hide
        a create still under way: Brevo can apply it after the client gave up, so the look-up
        is repeated until the request cannot still be in progress (:meth:`_settle`).
        ``duplicate_parameter`` (Brevo's answer when the name exists) is also answered by
        ``find()``. Returns the create's answer or the find.
        """
        in_flight_since: float | None = None  # when a create whose answer was lost in transport was sent
        for attempt in self._retrying():
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    found = self._settle(find, in_flight_since)
                    if found is not None:
                        log.info("Brevo %s: found after a lost answer; not created again", op)
                        return found
                sent = time.monotonic()
                try:
                    return self._send(op, path, fn, *args, retry=attempt.retry_state.attempt_number > 1)
                except RetryableApiError as exc:
                    in_flight_since = sent if exc.status == 0 else None
                    raise
                except BrevoApiError as exc:
                    if exc.code != "duplicate_parameter":
                        raise
                    found = find()
                    if found is None:
                        raise
                    return found
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _settle(self, find: Callable[[], T | None], sent: float | None) -> T | None:
        """``find()``, repeated while a create sent at ``sent`` may still land.

        A request the client gave up on holds its server connection until Brevo answers; like
        :class:`~segsync.http.budget.HttpBudget`, we allow it one more read timeout after ours,
        so it is assumed finished ``2 × timeout`` after it was sent. Until then the name is
        looked up at growing intervals (0.25 s, doubling), at most :data:`SETTLE_LOOKUPS` times.
        ``sent`` None (the server answered, e.g. a 5xx): one look-up.
        """
        deadline = (sent + 2 * self._timeout[1]) if sent is not None else None
        pause = 0.25
        for _ in range(SETTLE_LOOKUPS):
            found = find()
            left = deadline - time.monotonic() if deadline is not None else 0.0
            if found is not None or left <= 0:
                return found
            time.sleep(min(pause, left))
            pause *= 2
        return find()

    def close(self) -> None:
        self._client.rest_client.pool_manager.clear()

    # -- account and configuration -------------------------------------------------------

    def get_account(self) -> dict:
        return self._call("get_account", "/account", self._account.get_account_with_http_info)

    def get_attributes(self) -> list[dict]:
        body = self._call(
            "get_attributes", "/contacts/attributes", self._contacts.get_attributes_with_http_info
        )
        return body.get("attributes") or []

    def create_attribute(self, name: str, type_: str = "text") -> None:
        def find() -> bool | None:
            return True if any(a["name"].upper() == name.upper() for a in self.get_attributes()) else None

        self._create(
            "create_attribute",
            "/contacts/attributes",
            find,
            self._contacts.create_attribute_with_http_info,
            "normal",
            name,
            sib_api_v3_sdk.CreateAttribute(type=type_),
        )

    def get_lists(self, limit: int, offset: int) -> dict:
        return self._call(
            "get_lists",
            "/contacts/lists",
            self._contacts.get_lists_with_http_info,
            limit=limit,
            offset=offset,
            sort="asc",
        )

    def create_list(self, name: str, folder_id: int) -> int:
        def find() -> dict | None:
            found = self.find_by_name(self.get_lists, "lists", name)
            return {"id": found} if found is not None else None

        body = self._create(
            "create_list",
            "/contacts/lists",
            find,
            self._contacts.create_list_with_http_info,
            sib_api_v3_sdk.CreateList(name=name, folder_id=folder_id),
        )
        return int(body["id"])

    @staticmethod
    def find_by_name(get_page: Callable[[int, int], dict], key: str, name: str) -> int | None:
        """The id of the first list or folder named ``name`` (pages through them all)."""
        offset = 0
        while True:
            page = get_page(LISTS_PAGE_MAX, offset)
            items = page.get(key) or []
            for item in items:
                if item["name"] == name:
                    return int(item["id"])
            offset += len(items)
            if not items or offset >= int(page.get("count") or 0):
                return None

    def get_folders(self, limit: int, offset: int) -> dict:
        return self._call(
            "get_folders",
            "/contacts/folders",
            self._contacts.get_folders_with_http_info,
            limit,
            offset,
        )

    def create_folder(self, name: str) -> int:
        def find() -> dict | None:
            found = self.find_by_name(self.get_folders, "folders", name)
            return {"id": found} if found is not None else None

        body = self._create(
            "create_folder",
            "/contacts/folders",
            find,
            self._contacts.create_folder_with_http_info,
            sib_api_v3_sdk.CreateUpdateFolder(name=name),
        )
        return int(body["id"])

    # -- reading -------------------------------------------------------------------------

    def get_contacts(self, *, limit: int, offset: int, modified_since: str | None) -> dict:
        kwargs: dict[str, Any] = {"limit": limit, "offset": offset, "sort": "asc"}
        if modified_since:
            kwargs["modified_since"] = modified_since
        return self._call(
            "get_contacts", "/contacts", self._contacts.get_contacts_with_http_info, **kwargs
        )

    def get_blocked_contacts(
        self, *, start_date: str, end_date: str, limit: int, offset: int
    ) -> dict:
        return self._call(
            "get_blocked_contacts",
            "/smtp/blockedContacts",
            self._smtp.get_transac_blocked_contacts_with_http_info,
            start_date=start_date,
            end_date=end_date,
            limit=limit,
            offset=offset,
            sort="asc",
        )

    def get_email_events(
        self, *, start_date: str, end_date: str, limit: int, offset: int
    ) -> dict:
        return self._call(
            "get_email_events",
            "/smtp/statistics/events",
            self._smtp.get_email_event_report_with_http_info,
            start_date=start_date,
            end_date=end_date,
            limit=limit,
            offset=offset,
            sort="asc",
        )

    # -- writing -------------------------------------------------------------------------

    def import_contacts(
        self, rows: list[dict], *, list_ids: Iterable[int], email_blacklist: bool, rows_json: str | None = None
    ) -> int:
        """``rows_json``: ``rows`` as a JSON array already (sent as it is), else they are encoded."""
        body = self._call(
            "import_contacts",
            "/contacts/import",
            self._contacts.import_contacts_with_http_info,
            # RequestContactImport's fields, in Brevo's JSON (the rows are JSON already).
            JsonBody(jsonBody=rows if rows_json is None else RawJson(rows_json), listIds=sorted(list_ids),
                     emailBlacklist=email_blacklist, updateExistingContacts=True, emptyContactsAttributes=False),
        )
        return int(body["processId"])

    def get_process(self, process_id: int) -> dict:
        # Raw JSON on purpose: the SDK's GetProcess model has no ``info`` field, so the import
        # report URLs Brevo returns for completed imports would be dropped by deserialisation.
        return self._call(
            "get_process",
            "/processes",
            self._process.get_process_with_http_info,
            process_id,
            raw=True,
        )

    def fetch_report(self, url: str) -> str:
        """Download an import report (CSV) that a completed process points at."""
        self.counter.record("fetch_report")
        try:
            response = self._client.rest_client.pool_manager.request(
                "GET", url, timeout=urllib3.Timeout(*self._timeout), retries=False
            )
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableApiError(0, "transport", f"report download failed: {safe_error(exc)}") from None
        if response.status != 200:
            raise BrevoApiError(response.status, "report_unavailable", "import report download failed")
        return response.data.decode("utf-8", "replace")

    def update_batch(self, contacts: list[dict]) -> None:
        models = [
            sib_api_v3_sdk.UpdateBatchContactsContacts(
                email=c["email"],
                attributes=c.get("attributes"),
                email_blacklisted=c.get("emailBlacklisted"),
                list_ids=c.get("listIds"),
                unlink_list_ids=c.get("unlinkListIds"),
            )
            for c in contacts
        ]
        self._call(
            "update_batch",
            "/contacts/batch",
            self._contacts.update_batch_contacts_with_http_info,
            sib_api_v3_sdk.UpdateBatchContacts(contacts=models),
        )

    def add_to_list(self, list_id: int, emails: list[str]) -> dict:
        body = self._call(
            "add_to_list",
            "/contacts/lists/add",
            self._contacts.add_contact_to_list_with_http_info,
            list_id,
            sib_api_v3_sdk.AddContactToList(emails=emails),
        )
        return body.get("contacts") or {}

    def remove_from_list(self, list_id: int, emails: list[str]) -> dict:
        body = self._call(
            "remove_from_list",
            "/contacts/lists/remove",
            self._contacts.remove_contact_from_list_with_http_info,
            list_id,
            sib_api_v3_sdk.RemoveContactFromList(emails=emails),
        )
        return body.get("contacts") or {}

    def delete_contact(self, email: str) -> None:
        self._call(
            "delete_contact", "/contacts/delete", self._contacts.delete_contact_with_http_info, email
        )

    # -- custom events (segment-entry triggers; the SDK predates the events API) -------------

    def create_event(self, event: dict[str, Any]) -> None:
        """``POST /v3/events``: track a custom event (an automation may start on it)."""
        self._call("create_event", "/events", self._client.call_api, "/events", "POST",
                   header_params=_JSON_HEADERS, body=event, auth_settings=["api-key"])

    def event_sent(self, email: str, event_name: str, key: str, value: str) -> bool:
        """Whether the contact has a custom event ``event_name`` whose property ``key`` is
        ``value`` (``GET /v3/contacts/{email}`` for its id, then ``GET /v3/events``)."""
        try:
            contact = self._call("get_contact", "/contacts/{identifier}", self._contacts.get_contact_info_with_http_info,
                                 email)
        except BrevoApiError as exc:
            if exc.status == 404:
                return False
            raise
        offset = 0
        while True:
            page = self._call(
                "get_events", "/events", self._client.call_api, "/events", "GET",
                query_params=[("contact_id", contact["id"]), ("event_name", event_name), ("limit", EVENTS_PAGE),
                              ("offset", offset)],
                header_params={"Accept": "application/json"}, auth_settings=["api-key"], response_type="object",
            ) or {}
            events = page.get("events") or []
            if any((e.get("event_properties") or {}).get(key) == value for e in events):
                return True
            offset += len(events)
            if not events or offset >= int(page.get("count") or 0):
                return False

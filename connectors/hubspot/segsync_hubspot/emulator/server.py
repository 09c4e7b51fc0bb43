"""The HubSpot emulator on the framework's emulator kit: routes, auth, HubSpot's rate limits and
error formats. The account itself is :class:`AccountState`; request and answer shapes are in
routes.py."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segsync.testing.emulator import Answer, AnswerError, Emulator, Fault, OpenApiValidator, Request, Violation, route
from segsync.testing.emulator.openapi import find_spec, warn_missing
from segsync.testing.faults import RandomFaults

from segsync_hubspot.emulator import routes
from segsync_hubspot.emulator.state import AccountState, ApiError
from segsync_hubspot.limits import (
    DAILY_MAX,
    RATE_LIMIT_DAILY,
    RATE_LIMIT_DAILY_REMAINING,
    RATE_LIMIT_INTERVAL,
    RATE_LIMIT_MAX,
    RATE_LIMIT_REMAINING,
    SEARCH_REQUESTS_PER_SECOND,
    TEN_SECONDLY_MAX,
    TEN_SECONDLY_WINDOW_MS,
)

SPECS = ("hubspot-crm-contacts-v3.openapi.json", "hubspot-crm-lists-v3.openapi.json",
         "hubspot-crm-properties-v3.openapi.json", "hubspot-subscriptions-v4.openapi.json")
SPEC_ENV = "SEGSYNC_HUBSPOT_SPECS"  # a folder holding the files above
# Where the generated spec contradicts HubSpot's own guide (see ../shared/specs/README.md): the
# search request's body is not checked against it (its answer is).
UNCHECKED = {("POST", routes.SEARCH_PATH)}


class HubSpotSpecs:
    """HubSpot publishes one OpenAPI file per API; a request is checked against the one that
    has its operation."""

    def __init__(self, validators: list[OpenApiValidator]) -> None:
        self.validators = validators

    @classmethod
    def load(cls) -> HubSpotSpecs | None:
        import os
        from pathlib import Path

        folder = os.environ.get(SPEC_ENV)
        paths = [Path(folder) / name if folder else find_spec(name, SPEC_ENV, Path(__file__)) for name in SPECS]
        if not all(p is not None and p.is_file() for p in paths):
            warn_missing("HubSpot", ", ".join(SPECS), SPEC_ENV)
            return None
        return cls([OpenApiValidator.from_file(p) for p in paths])  # type: ignore[arg-type]

    def _for(self, method: str, path: str) -> OpenApiValidator | None:
        return next((v for v in self.validators if v.operation(method, path) is not None), None)

    def check_request(self, method: str, path: str, query: Any, body: Any) -> list[Violation]:
        found = None if (method, path) in UNCHECKED else self._for(method, path)
        return found.check_request(method, path, query, body) if found else []

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[Violation]:
        found = self._for(method, path)
        return found.check_response(method, path, status, body) if found else []


@dataclass(frozen=True)
class Logged:
    """One API request as tests read it: its JSON body parsed, the fault it met."""

    method: str
    path: str
    query: str
    status: int  # 0: no answer was sent
    body: Any
    fault: str | None
    at: float  # time.monotonic() when it arrived


def error_body(category: str, message: str, context: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """HubSpot's error format (the specs' ``Error`` schema)."""
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                            "category": category}
    if context:
        body["context"] = context
    return body


def rate_limited_body(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body: ``errorType: RATE_LIMIT`` and the policy that was hit."""
    what = "secondly" if policy == "SECONDLY" else "ten_secondly_rolling"
    return {"status": "error", "message": f"You have reached your {what} limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy}


class HubSpotEmulator(Emulator):
    """A stateful HubSpot API on 127.0.0.1 (``url``), reached with ``access_token``.

    ``ten_secondly`` requests per ``window_ms`` is the private app's window (HubSpot's
    Free/Starter: 100 per 10 s; tests shorten it); searches have their own per-second limit and
    answer without rate-limit headers, as HubSpot's do. ``batch_subscriptions=False`` is an
    account without Marketing Hub Enterprise: the batch subscription endpoints answer 403.
    """

    name = "hubspot"
    server_version = "HubSpotEmulator/1"
    content_type = "application/json;charset=utf-8"

    def __init__(
        self,
        *,
        access_token: str = "pat-na1-emulator-0000",
        port: int = 0,
        ten_secondly: int | None = TEN_SECONDLY_MAX,
        window_ms: int = TEN_SECONDLY_WINDOW_MS,
        search_per_second: int | None = SEARCH_REQUESTS_PER_SECOND,
        latency: float = 0.0,
        random_faults: RandomFaults | None = None,
        clock: Callable[[], int] | None = None,
        batch_subscriptions: bool = True,
        validate: bool = True,
        keep_bodies: bool = True,
    ) -> None:
        limits: dict[str, tuple[tuple[int, float], ...]] = {}
        if ten_secondly:
            limits["other"] = ((ten_secondly, window_ms / 1000),)
        if search_per_second:
            limits["search"] = ((search_per_second, 1.0),)
        super().__init__(port=port, latency=latency, rate_limits=limits or None,
                         validator=HubSpotSpecs.load() if validate else None,  # type: ignore[arg-type]
                         validate_responses=validate, random_faults=random_faults, keep_bodies=keep_bodies)
        self.access_token = access_token
        self.window_ms = window_ms
        self.batch_subscriptions = batch_subscriptions
        self.state = AccountState(clock)
        self.daily_used = 0
        self._bucket = threading.local()  # the request's rate-limit bucket, for its headers

    # -- for tests -------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        """The API requests received, in order of arrival, filtered by method and path (a regex)."""
        return [Logged(r.method, r.path, r.query_string, r.status, json.loads(r.body) if r.body else None,
                       r.fault if r.fault != "status" else f"{r.status}", r.started)
                for r in self.calls(method, path, admitted_only=False)]

    def add_fault(self, *, kind: str = "status", times: int = 1, **options: Any) -> Fault:
        """Fail the next ``times`` requests matching ``path``/``method`` (see ``inject``)."""
        return self.inject(kind, times, **options)

    # -- the service's ways ----------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            raise AnswerError(Answer(401, error_body(
                "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication.")))
        if not self.batch_subscriptions and request.path.startswith(routes.SUBSCRIPTION_BATCH_PATHS):
            raise AnswerError(Answer(403, error_body(
                "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.",
                {"requiredGranularScopes": ["communication_preferences.statuses.batch.read"]})))

    def rate_bucket(self, path: str) -> str:
        self._bucket.name = "search" if path == routes.SEARCH_PATH else "other"
        return self._bucket.name

    def rate_limit_headers(self, limit: int, remaining: int, reset: float, *,
                           window_ms: int | None = None) -> dict[str, str]:
        if getattr(self._bucket, "name", "other") == "search":
            return {}  # HubSpot's search answers carry no rate-limit headers
        self.daily_used += 1
        return {RATE_LIMIT_MAX: str(limit), RATE_LIMIT_REMAINING: str(remaining),
                RATE_LIMIT_INTERVAL: str(window_ms or self.window_ms), RATE_LIMIT_DAILY: str(DAILY_MAX),
                RATE_LIMIT_DAILY_REMAINING: str(max(0, DAILY_MAX - self.daily_used))}

    def rate_limited(self, request: Request) -> Answer:
        searching = request.path == routes.SEARCH_PATH
        return Answer(429, rate_limited_body("SECONDLY" if searching else "TEN_SECONDLY_ROLLING"))

    def fault_answer(self, fault: Fault, request: Request) -> Answer:
        if fault.status == 429:
            # HubSpot says when to come back by its window's length, not by Retry-After.
            self._bucket.name = "search" if request.path == routes.SEARCH_PATH else "other"
            headers = self.rate_limit_headers(TEN_SECONDLY_MAX, 0, 0, window_ms=(
                int(fault.retry_after * 1000) if fault.retry_after is not None else None))
            return Answer(429, rate_limited_body("TEN_SECONDLY_ROLLING"), headers)
        return Answer(fault.status, error_body("INTERNAL_ERROR", f"injected HTTP {fault.status}"))

    def error_answer(self, exc: Exception) -> Answer | None:
        if isinstance(exc, ApiError):
            return Answer(exc.status, error_body(exc.category, exc.message, exc.context))
        return None

    def not_found(self, request: Request) -> Answer:
        return Answer(404, error_body("OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}"))

    def invalid_json(self, request: Request) -> Answer:
        return Answer(400, error_body("VALIDATION_ERROR", "Invalid input JSON on line 1"))

    def invalid_request(self, request: Request, violations: list[Violation]) -> Answer:
        return Answer(400, error_body("VALIDATION_ERROR", f"Invalid input: {violations[0]}"))

    # -- routes ----------------------------------------------------------------------------

    @route("POST", routes.SEARCH_PATH)
    def _search(self, request: Request) -> Any:
        return routes.search(self.state, request.body)

    @route("POST", "/crm/v3/objects/contacts/batch/upsert")
    def _upsert(self, request: Request) -> Any:
        return routes.upsert(self.state, request.body)

    @route("POST", "/crm/v3/objects/contacts/gdpr-delete")
    def _gdpr_delete(self, request: Request) -> Any:
        return routes.gdpr_delete(self.state, request.body)

    @route("GET", "/crm/v3/properties/contacts")
    def _properties(self, request: Request) -> Any:
        return {"results": list(self.state.properties.values())}

    @route("GET", "/crm/v3/properties/contacts/{name}")
    def _property(self, request: Request, name: str) -> Any:
        return routes.get_property(self.state, name)

    @route("POST", "/crm/v3/properties/contacts")
    def _create_property(self, request: Request) -> Any:
        return routes.create_property(self.state, request.body)

    @route("PATCH", "/crm/v3/properties/contacts/{name}")
    def _update_property(self, request: Request, name: str) -> Any:
        return routes.update_property(self.state, name, request.body)

    @route("POST", "/crm/v3/lists")
    def _create_list(self, request: Request) -> Any:
        return routes.create_list(self.state, request.body)

    @route("GET", "/crm/v3/lists/object-type-id/{type_id}/name/{name}")
    def _list_by_name(self, request: Request, type_id: str, name: str) -> Any:
        return routes.list_by_name(self.state, type_id, name)

    @route("GET", "/crm/v3/lists/{list_id:int}")
    def _list(self, request: Request, list_id: str) -> Any:
        return routes.get_list(self.state, list_id)

    @route("PUT", "/crm/v3/lists/{list_id:int}/memberships/add-and-remove")
    def _members(self, request: Request, list_id: str) -> Any:
        return routes.change_members(self.state, list_id, request.body)

    @route("GET", "/communication-preferences/v4/definitions")
    def _definitions(self, request: Request) -> Any:
        return routes.definitions(self.state)

    @route("POST", "/communication-preferences/v4/statuses/batch/read")
    def _read_statuses(self, request: Request) -> Any:
        return routes.read_statuses(self.state, request.params, request.body)

    @route("POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all/read")
    def _read_wide(self, request: Request) -> Any:
        return routes.read_wide(self.state, request.params, request.body)

    @route("POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all")
    def _unsubscribe_all(self, request: Request) -> Any:
        return routes.unsubscribe_all(self.state, request.params, request.body)

    @route("POST", "/communication-preferences/v4/statuses/batch/write")
    def _write_statuses(self, request: Request) -> Any:
        return routes.write_statuses(self.state, request.body)

    @route("GET", "/communication-preferences/v4/statuses/{email}")
    def _read_status(self, request: Request, email: str) -> Any:
        return routes.read_status(self.state, request.params, email)

    @route("POST", "/communication-preferences/v4/statuses/{email}")
    def _write_status(self, request: Request, email: str) -> Any:
        return routes.write_status(self.state, email, request.body)

    @route("GET", "/communication-preferences/v4/statuses/{email}/unsubscribe-all")
    def _read_one_wide(self, request: Request, email: str) -> Any:
        return routes.read_one_wide(self.state, request.params, email)

    @route("POST", "/communication-preferences/v4/statuses/{email}/unsubscribe-all")
    def _unsubscribe_one(self, request: Request, email: str) -> Any:
        return routes.unsubscribe_one(self.state, request.params, email)

"""Brevo's API v3 on the emulator kit: routes, the ``api-key`` header, ``{code, message}`` errors
and the ``x-sib-ratelimit-*`` headers of its rate limits (:mod:`segsync_brevo.limits`).

The kit (:mod:`segsync.testing.emulator`) does the rest: latency, faults, rate limiting, request
and answer validation against Brevo's spec (answers the spec forbids land in ``violations``)
and the request log (paths keep their ``/v3`` prefix).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from segsync.testing.emulator import Answer, AnswerError, Emulator, Fault, RandomFaults, Request, RequestRecord, route
from segsync_brevo.emulator.errors import ApiError
from segsync_brevo.emulator.spec import spec_validator
from segsync_brevo.emulator.state import IMPORT_WORKERS, BrevoState
from segsync_brevo.emulator.webhooks import BrevoWebhooks
from segsync_brevo.limits import GENERAL_TIER, bucket_for

LogEntry = RequestRecord  # the name this emulator's log entries had


class BrevoEmulator(BrevoWebhooks, Emulator):
    """A stateful Brevo API v3 on 127.0.0.1; ``url`` is the host to give the SDK.

    ``random_faults`` fails a share of the requests no scripted fault claimed (429 with
    ``x-sib-ratelimit-reset``, 5xx, timeouts after which the request is applied, connection
    resets); ``keep_bodies`` keeps each request's body in the log. Marketing webhooks registered
    through ``/webhooks`` are sent when a person acts (``act``, ``/_emulator/act``; see
    :mod:`segsync_brevo.emulator.webhooks`).
    """

    name = "brevo"
    api_prefix = "/v3"
    keep_prefix_in_log = True
    server_version = "BrevoEmulator/1"

    def __init__(
        self,
        *,
        api_key: str = "emulator-key",
        port: int = 0,
        latency: float = 0.0,
        rate_limits: Mapping[str, tuple[tuple[int, float], ...]] | None = GENERAL_TIER,
        validate: bool = True,
        import_delay: float = 0.05,
        import_rows_per_second: float = 200_000.0,
        import_workers: int = IMPORT_WORKERS,
        account_email: str = "owner@example.com",
        random_faults: RandomFaults | None = None,
        keep_bodies: bool = False,
    ) -> None:
        super().__init__(port=port, latency=latency, rate_limits=rate_limits,
                         validator=spec_validator() if validate else None, validate_responses=True,
                         random_faults=random_faults, keep_bodies=keep_bodies)
        self.api_key = api_key
        self.state = BrevoState(account_email=account_email, import_delay=import_delay,
                                import_rows_per_second=import_rows_per_second, import_workers=import_workers,
                                report_base_url=f"http://127.0.0.1:{self.port}")
        self._init_webhooks()

    def stop(self) -> None:
        super().stop()
        self.state.close()
        self.webhook_sender.close()

    # -- observation and faults ----------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged API requests, optionally filtered by method and path prefix (``/v3/...``)."""
        return [e for e in self.calls(method, admitted_only=False) if path is None or e.path.startswith(path)]

    def clear_log(self) -> None:
        self.reset_log()

    def inject(self, kind: str = "status", count: int = 1, *, times: int | None = None,
               reset: float | None = None, **options: Any) -> Fault:
        """A scripted fault; ``times`` is ``count``, ``reset`` the ``x-sib-ratelimit-reset``
        seconds an injected 429 carries (default 1)."""
        options.setdefault("retry_after", 1.0 if reset is None else reset)
        return super().inject(kind, count if times is None else times, **options)

    def add_fault(self, **kwargs: Any) -> Fault:
        return self.inject(**kwargs)

    def seed(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """{"lists": [name], "attributes": [name], "contacts": [{email, attributes, lists
        (names), blacklisted}], "blocked": [{email, reason}], "events": [{email, event}]}."""
        state = self.state
        list_ids = {name: state.add_list(name) for name in body.get("lists", [])}
        for name in body.get("attributes", []):
            state.add_attribute(name)
        for contact in body.get("contacts", []):
            state.seed_contact(contact["email"], attributes=contact.get("attributes"),
                               list_ids=[list_ids[n] for n in contact.get("lists", [])],
                               blacklisted=contact.get("blacklisted", False))
        for blocked in body.get("blocked", []):
            state.add_blocked(blocked["email"], blocked["reason"])
        for event in body.get("events", []):
            state.add_event(event["email"], event["event"])
        return {"lists": list_ids}

    # -- how Brevo answers ---------------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        if request.headers.get("api-key") != self.api_key:
            raise AnswerError(Answer(401, {"code": "unauthorized", "message": "Key not found"}))

    def rate_bucket(self, path: str) -> str:
        return bucket_for(path)

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {
            "x-sib-ratelimit-limit": str(limit),
            "x-sib-ratelimit-remaining": str(remaining),
            # Seconds, with millisecond precision (emulator choice: Brevo documents the unit as
            # "typically seconds" without saying whether fractions are sent).
            "x-sib-ratelimit-reset": f"{math.ceil(reset * 1000) / 1000:.3f}",
        }

    def rate_limited(self, request: Request) -> Answer:
        return Answer(429, {"code": "too_many_requests", "message": "Too many requests"})

    def error_answer(self, exc: Exception) -> Answer | None:
        return Answer(exc.status, exc.body()) if isinstance(exc, ApiError) else None

    def internal_error(self, exc: Exception) -> Answer:
        return Answer(500, {"code": "internal_error", "message": f"emulator error: {type(exc).__name__}"})

    def invalid_json(self, request: Request) -> Answer:
        return Answer(400, {"code": "bad_request", "message": "Invalid JSON body"})

    def invalid_request(self, request: Request, violations: list) -> Answer:
        return Answer(400, {"code": "invalid_parameter", "message": str(violations[0])})

    def not_found(self, request: Request) -> Answer:
        return Answer(501, {"code": "not_acceptable",
                            "message": f"the emulator does not implement {request.method} {request.path}"})

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Answer:
        return self.not_found(request)

    def fault_answer(self, fault: Fault, request: Request) -> Answer:
        headers = {}
        if fault.status == 429:
            headers = {"x-sib-ratelimit-limit": "10", "x-sib-ratelimit-remaining": "0",
                       "x-sib-ratelimit-reset": f"{fault.retry_after or 0:.3f}"}
        return Answer(fault.status, {"code": "injected_fault", "message": f"injected HTTP {fault.status}"}, headers)

    def control(self, request: Request) -> Answer | None:
        """Import reports, which completed processes link to (``/_reports/<key>``)."""
        if not request.path.startswith("/_reports/"):
            return None
        report = self.state.reports.get(request.path[len("/_reports/"):])
        if report is None:
            return Answer(404, {"code": "document_not_found", "message": "no such report"})
        return Answer(200, raw=report.encode(), content_type="text/csv")

    # -- routes --------------------------------------------------------------------------

    @route("GET", "/contacts")
    def get_contacts(self, request: Request) -> Any:
        return self.state.get_contacts(request.params)

    @route("POST", "/contacts/batch")
    def update_batch(self, request: Request) -> Answer:
        self.state.update_batch(request.body)
        return Answer(204)

    @route("POST", "/contacts/import")
    def import_contacts(self, request: Request) -> Any:
        return 202, self.state.import_contacts(request.body, body_bytes=len(request.raw))

    @route("GET", "/contacts/attributes")
    def get_attributes(self, request: Request) -> Any:
        return self.state.get_attributes()

    @route("POST", "/contacts/attributes/{category}/{name}")
    def create_attribute(self, request: Request, category: str, name: str) -> Answer:
        self.state.create_attribute(category, name, request.body or {})
        return Answer(201)

    @route("GET", "/contacts/lists")
    def get_lists(self, request: Request) -> Any:
        return self.state.get_lists(request.params)

    @route("POST", "/contacts/lists")
    def create_list(self, request: Request) -> Any:
        return 201, self.state.create_list(request.body)

    @route("POST", "/contacts/lists/{list_id:int}/contacts/add")
    def add_to_list(self, request: Request, list_id: str) -> Any:
        return 201, self.state.add_to_list(int(list_id), request.body)

    @route("POST", "/contacts/lists/{list_id:int}/contacts/remove")
    def remove_from_list(self, request: Request, list_id: str) -> Any:
        return 201, self.state.remove_from_list(int(list_id), request.body)

    @route("GET", "/contacts/folders")
    def get_folders(self, request: Request) -> Any:
        return self.state.get_folders(request.params)

    @route("POST", "/contacts/folders")
    def create_folder(self, request: Request) -> Any:
        return 201, self.state.create_folder(request.body)

    @route("GET", "/contacts/{identifier}")
    def get_contact(self, request: Request, identifier: str) -> Any:
        return self.state.get_contact(identifier)

    @route("DELETE", "/contacts/{identifier}")
    def delete_contact(self, request: Request, identifier: str) -> Answer:
        self.state.delete_contact(identifier)
        return Answer(204)

    @route("GET", "/processes/{process_id:int}")
    def get_process(self, request: Request, process_id: str) -> Any:
        return self.state.get_process(int(process_id))

    @route("GET", "/smtp/blockedContacts")
    def get_blocked(self, request: Request) -> Any:
        return self.state.get_blocked(request.params)

    @route("POST", "/events")
    def create_custom_event(self, request: Request) -> Answer:
        self.state.create_custom_event(request.body or {})
        return Answer(204)

    @route("GET", "/events")
    def get_custom_events(self, request: Request) -> Any:
        return self.state.get_custom_events(request.params)

    @route("GET", "/smtp/statistics/events")
    def get_events(self, request: Request) -> Any:
        return self.state.get_events(request.params)


"""The Mailchimp Marketing API v3 on the emulator kit: routes, auth and problem+json errors.

The kit (:mod:`segsync.testing.emulator`) admits each request against the account's limit
(Mailchimp allows 10 simultaneous connections and answers 429 TooManyRequests beyond that),
adds the latency, acts out faults, validates against the OpenAPI spec and keeps the request log;
this module says how Mailchimp answers, and :class:`~segsync_mailchimp.emulator.state.EmulatorState`
holds the account.
"""

from __future__ import annotations

import base64
from typing import Any

from segsync.testing.emulator import Answer, Emulator, Fault, RandomFaults, Request, RequestRecord, route
from segsync_mailchimp.emulator.problems import GLOSSARY, ApiProblem
from segsync_mailchimp.emulator.spec import spec_validator
from segsync_mailchimp.emulator.state import EmulatorState
from segsync_mailchimp.emulator.webhooks import MailchimpWebhooks

DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef-us1"
PROBLEM_JSON = "application/problem+json; charset=utf-8"

__all__ = ["DEFAULT_API_KEY", "MailchimpEmulator", "RequestRecord"]


class MailchimpEmulator(MailchimpWebhooks, Emulator):
    """A stateful Mailchimp Marketing API v3 on 127.0.0.1.

    ``latency`` (seconds) is added to every admitted request; ``max_connections`` is the
    account's simultaneous-connection limit; ``retry_after`` (seconds) is sent on the 429s the
    limit produces (Mailchimp itself sends none; None leaves it out). ``random_faults`` fails a
    share of the requests no scripted fault claimed (429 with ``Retry-After``, bare 5xx, timeouts
    after which the request is applied, connection resets); ``keep_bodies`` keeps each request's
    body in the log, so tests can see exactly what was sent. Webhooks registered through
    ``/lists/{list_id}/webhooks`` are sent when a person acts (``act``, ``/_emulator/act``; see
    :mod:`segsync_mailchimp.emulator.webhooks`).
    """

    name = "mailchimp"
    api_prefix = "/3.0"
    content_type = "application/json; charset=utf-8"
    server_version = "nginx"  # what Mailchimp's edge calls itself

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        latency: float = 0.0,
        max_connections: int = 10,
        retry_after: float | None = None,
        validate: bool = True,
        state: EmulatorState | None = None,
        port: int = 0,
        random_faults: RandomFaults | None = None,
        keep_bodies: bool = False,
    ) -> None:
        super().__init__(port=port, latency=latency, max_connections=max_connections,
                         validator=spec_validator() if validate else None, random_faults=random_faults,
                         keep_bodies=keep_bodies)
        self.api_key = api_key
        self.retry_after = retry_after
        self.state = state or EmulatorState()
        self._init_webhooks()

    def stop(self) -> None:
        super().stop()
        self.webhook_sender.close()

    def inject(self, kind: str, count: int = 1, *, delay: float = 0.0, **options: Any) -> Fault:
        """Fail the next ``count`` requests matching ``method``/``path`` (a regex).

        ``kind``: ``error`` answers the glossary error ``error`` as problem+json; ``status``
        answers a bare ``status`` with an empty body (what a proxy or the limiter may send);
        ``timeout`` stalls ``delay`` seconds before answering; ``drop`` closes the connection
        without an answer; ``lost`` carries the request out, then drops the answer (a create
        that succeeded but whose answer never arrived). ``reset`` resets the connection (TCP RST)
        without an answer.
        """
        if kind == "error" and options.get("error") not in GLOSSARY:
            raise ValueError(f"unknown Mailchimp error {options.get('error')!r}")
        return super().inject(kind, count, delay=delay, **options)

    def seed(self, body: Any) -> Any:
        """``{"audiences": [id], "members": [{"list_id", "email", ...seed_member options}]}``."""
        for list_id in body.get("audiences", []):
            self.state.create_audience(list_id)
        for member in body.get("members", []):
            member = dict(member)
            self.state.seed_member(member.pop("list_id"), member.pop("email"), **member)
        return {"audiences": len(body.get("audiences", [])), "members": len(body.get("members", []))}

    # -- how Mailchimp answers -----------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise ApiProblem("APIKeyMissing")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif scheme.lower() in ("bearer", "apikey"):
            key = value
        if key != self.api_key:
            raise ApiProblem("APIKeyInvalid")
        trigger = request.headers.get("X-Trigger-Error")
        if trigger in GLOSSARY:
            raise ApiProblem(trigger)

    def error_answer(self, exc: Exception) -> Answer | None:
        if not isinstance(exc, ApiProblem):
            return None
        return Answer(exc.status, exc.document(), dict(exc.headers), PROBLEM_JSON)

    def internal_error(self, exc: Exception) -> Answer:
        return self.error_answer(ApiProblem("InternalServerError", f"emulator error: {type(exc).__name__}"))

    def not_found(self, request: Request) -> Answer:
        return self.error_answer(ApiProblem("ResourceNotFound"))

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Answer:
        return self.error_answer(ApiProblem("MethodNotAllowed", headers={"Allow": ", ".join(allowed)}))

    def invalid_json(self, request: Request) -> Answer:
        return self.error_answer(ApiProblem("JSONParseError"))

    def invalid_request(self, request: Request, violations: list) -> Answer:
        errors = [{"field": v.field, "message": v.message} for v in violations]
        return self.error_answer(ApiProblem("InvalidResource", errors=errors))

    def too_many_connections(self, request: Request) -> Answer:
        return self._too_many(self.retry_after)

    def _too_many(self, retry_after: float | None) -> Answer:
        problem = ApiProblem("TooManyRequests")
        if retry_after is not None:
            problem.headers["Retry-After"] = _seconds(retry_after)
        return self.error_answer(problem)

    def fault_answer(self, fault: Fault, request: Request) -> Answer:
        if fault.kind == "error" or (fault.drawn and fault.status == 429):
            if fault.error in (None, "TooManyRequests"):
                return self._too_many(fault.retry_after)
            problem = ApiProblem(fault.error)
            if fault.retry_after is not None:
                problem.headers["Retry-After"] = _seconds(fault.retry_after)
            return self.error_answer(problem)
        headers = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else {}
        return Answer(fault.status, None, headers)  # a bare status, as a proxy sends it

    def shape_answer(self, request: Request, answer: Answer) -> Answer:
        fields, exclude = _csv(request.query, "fields"), _csv(request.query, "exclude_fields")
        if answer.body is not None and (fields or exclude):
            answer.body = project(answer.body, fields, exclude)
        return answer

    # -- routes --------------------------------------------------------------------------

    @route("GET", "/ping")
    def ping(self, request: Request) -> Any:
        return {"health_status": "Everything's Chimpy!"}

    @route("GET", "/lists/{list_id}")
    def get_list(self, request: Request, list_id: str) -> Any:
        return self.state.list_doc(list_id)

    @route("POST", "/lists/{list_id}")
    def batch_subscribe(self, request: Request, list_id: str) -> Any:
        return self.state.batch_subscribe(list_id, request.body or {}, request.query,
                                          member_docs=_answers_any(request, "new_members", "updated_members"))

    @route("GET", "/lists/{list_id}/members")
    def list_members(self, request: Request, list_id: str) -> Any:
        return self.state.list_members(list_id, request.query)

    @route("GET", "/lists/{list_id}/members/{member}")
    def get_member(self, request: Request, list_id: str, member: str) -> Any:
        return self.state.get_member(list_id, member)

    @route("DELETE", "/lists/{list_id}/members/{member}")
    def archive_member(self, request: Request, list_id: str, member: str) -> Answer:
        self.state.archive_member(list_id, member)
        return Answer(204)

    @route("POST", "/lists/{list_id}/members/{member}/actions/delete-permanent")
    def delete_permanent(self, request: Request, list_id: str, member: str) -> Answer:
        self.state.delete_permanent(list_id, member)
        return Answer(204)

    @route("POST", "/lists/{list_id}/members/{member}/events")
    def add_member_event(self, request: Request, list_id: str, member: str) -> Answer:
        self.state.add_member_event(list_id, member, request.body or {})
        return Answer(204)

    @route("GET", "/lists/{list_id}/members/{member}/events")
    def member_events(self, request: Request, list_id: str, member: str) -> Any:
        return self.state.member_events(list_id, member, request.query)

    @route("POST", "/lists/{list_id}/members/{member}/tags")
    def update_member_tags(self, request: Request, list_id: str, member: str) -> Answer:
        self.state.update_member_tags(list_id, member, request.body or {})
        return Answer(204)

    @route("GET", "/lists/{list_id}/merge-fields")
    def merge_fields(self, request: Request, list_id: str) -> Any:
        return self.state.merge_fields_doc(list_id, request.query)

    @route("GET", "/lists/{list_id}/segments")
    def list_segments(self, request: Request, list_id: str) -> Any:
        return self.state.list_segments(list_id, request.query)

    @route("POST", "/lists/{list_id}/segments")
    def create_segment(self, request: Request, list_id: str) -> Any:
        return self.state.create_segment(list_id, request.body or {})

    @route("GET", "/lists/{list_id}/segments/{segment_id}")
    def get_segment(self, request: Request, list_id: str, segment_id: str) -> Any:
        return self.state.get_segment(list_id, segment_id)

    @route("POST", "/lists/{list_id}/segments/{segment_id}")
    def batch_segment(self, request: Request, list_id: str, segment_id: str) -> Any:
        return self.state.batch_segment(list_id, segment_id, request.body or {},
                                        member_docs=_answers_any(request, "members_added", "members_removed"))

    @route("GET", "/lists/{list_id}/segments/{segment_id}/members")
    def segment_members(self, request: Request, list_id: str, segment_id: str) -> Any:
        return self.state.segment_members(list_id, segment_id, request.query)

    @route("GET", "/reports")
    def reports(self, request: Request) -> Any:
        return self.state.reports(request.query)

    @route("GET", "/reports/{campaign_id}")
    def report(self, request: Request, campaign_id: str) -> Any:
        return self.state.report(campaign_id)

    @route("GET", "/reports/{campaign_id}/email-activity")
    def email_activity(self, request: Request, campaign_id: str) -> Any:
        return self.state.email_activity(campaign_id, request.query)

    @route("GET", "/reports/{campaign_id}/unsubscribed")
    def unsubscribed(self, request: Request, campaign_id: str) -> Any:
        return self.state.unsubscribed(campaign_id, request.query)


def project(doc: Any, fields: list[str] | None, exclude: list[str] | None) -> Any:
    """Apply Mailchimp's ``fields``/``exclude_fields`` (dot paths into the response)."""
    if fields:
        doc = _keep(doc, [f.split(".") for f in fields])
    for path in exclude or ():
        _drop(doc, path.split("."))
    return doc


def _keep(doc: Any, paths: list[list[str]]) -> Any:
    if isinstance(doc, list):
        return [_keep(item, paths) for item in doc]
    if not isinstance(doc, dict) or any(not p for p in paths):
        return doc
    out = {}
    for key in dict.fromkeys(p[0] for p in paths):
        if key in doc:
            out[key] = _keep(doc[key], [p[1:] for p in paths if p[0] == key])
    return out


def _drop(doc: Any, path: list[str]) -> None:
    if isinstance(doc, list):
        for item in doc:
            _drop(item, path)
    elif isinstance(doc, dict) and path and path[0] in doc:
        if len(path) == 1:
            del doc[path[0]]
        else:
            _drop(doc[path[0]], path[1:])


def _answers_any(request: Request, *keys: str) -> bool:
    """Whether the answer's ``fields``/``exclude_fields`` keep any of ``keys`` (member document
    lists that are costly to build, so they are built only when they will be sent)."""
    fields, exclude = _csv(request.query, "fields"), _csv(request.query, "exclude_fields") or []
    return any(key not in exclude and (fields is None or any(f.split(".")[0] == key for f in fields))
               for key in keys)


def _csv(query: dict[str, list[str]], name: str) -> list[str] | None:
    if name not in query:
        return None
    return [f for f in ",".join(query[name]).split(",") if f]


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"

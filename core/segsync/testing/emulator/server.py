"""The base of the connectors' service emulators: a threaded HTTP server on 127.0.0.1.

A subclass declares its routes and its service's ways of answering errors; the base does the
rest, for every request in this order:

1. read it and log it (:class:`RequestRecord`: method, path, query, sizes, status, monotonic
   start and end, whether it was admitted, the fault acted out, the body with ``keep_bodies``);
2. control paths (``/_emulator/...``: log, faults, config, seed) are answered at once;
3. admit it against the account's simultaneous connections (``max_connections``), else
   :meth:`Emulator.too_many_connections`;
4. wait ``latency`` seconds;
5. act out a fault (scripted by :meth:`Emulator.inject` for the next N requests of a route, or
   drawn from ``random_faults``; see :mod:`segsync.testing.emulator.faults`);
6. :meth:`Emulator.authenticate`, then the rate limit of the path's bucket
   (``rate_limits``; :meth:`Emulator.rate_limit_headers` go on every API answer);
7. parse the JSON body, find the route (:func:`route`), validate the request against the
   OpenAPI spec when one is given (:class:`OpenApiValidator`), call the route's handler;
8. encode the answer (compact JSON) and send it; answers the spec forbids are collected in
   ``violations`` when ``validate_responses``.

Routes are methods decorated with ``@route("GET", "/lists/{list_id}/members")`` (``{name:int}``
takes digits only); they get the :class:`Request` and the path's parameters and return an
:class:`Answer`, a ``(status, body)`` pair, or a body (200). An exception the subclass maps in
:meth:`Emulator.error_answer` becomes the service's error answer.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from segsync.testing.emulator.faults import Fault, FaultPlan
from segsync.testing.emulator.limits import ConnectionLimit, RateLimiter, RateLimits
from segsync.testing.emulator.openapi import OpenApiValidator, Violation
from segsync.testing.faults import RandomFaults, reset_connection

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"
# Compact and without the circular-reference walk: answers are trees the emulator built.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def encode_json(value: Any) -> bytes:
    return _ENCODER.encode(value).encode()


@dataclass
class RequestRecord:
    method: str
    path: str  # without the query string (and without the API prefix, unless the emulator keeps it)
    query: dict[str, list[str]]
    query_string: str
    request_bytes: int
    status: int = 0  # 0: no answer was sent (dropped, reset, lost)
    response_bytes: int = 0
    started: float = 0.0  # time.monotonic()
    ended: float = 0.0
    admitted: bool = True  # False when refused by the connection limit
    fault: str | None = None
    body: str | None = None  # the request body (UTF-8), kept only with ``keep_bodies``
    api: bool = True  # False for control paths and files the emulator serves

    @property
    def finished(self) -> float:
        return self.ended

    @property
    def body_size(self) -> int:
        return self.request_bytes


@dataclass
class Request:
    method: str
    path: str  # relative to the API prefix
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    raw: bytes
    body: Any = None

    @property
    def params(self) -> dict[str, str]:
        """The query with each parameter's last value."""
        return {k: v[-1] for k, v in self.query.items()}


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON-ready; None: no body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None  # default: the emulator's
    raw: bytes | None = None  # sent as is instead of ``body``


class AnswerError(Exception):
    """Raise to answer at once from anywhere (a handler, authenticate, a state method)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(f"HTTP {answer.status}")
        self.answer = answer


def route(method: str, template: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an emulator method as the handler of ``method template``."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__dict__.setdefault("_routes", []).append((method, template))
        return fn

    return mark


def _compile(template: str) -> re.Pattern[str]:
    """``/lists/{list_id}`` -> a regex with a named group per parameter (``{id:int}``: digits)."""

    def group(match: re.Match[str]) -> str:
        name, _, kind = match.group(1).partition(":")
        return f"(?P<{name}>\\d+)" if kind == "int" else f"(?P<{name}>[^/]+)"

    return re.compile("^" + re.sub(r"\\\{([^}\\]+)\\\}", group, re.escape(template)) + "$")


class Emulator:
    """Subclass it for a service; see the module's docstring for what the base does."""

    name: ClassVar[str] = "emulator"
    api_prefix: ClassVar[str] = ""  # e.g. "/3.0": ``url`` ends with it
    keep_prefix_in_log: ClassVar[bool] = False
    content_type: ClassVar[str] = "application/json"
    server_version: ClassVar[str] = "segsync-emulator"
    _routes: ClassVar[list[tuple[str, re.Pattern[str], str]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = []
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for method, template in getattr(value, "_routes", ()) if callable(value) else ():
                    found.append((template, method, attr))
        # Literal segments win over parameters (/contacts/lists before /contacts/{id}).
        found.sort(key=lambda t: (t[0].count("{"), -len(t[0])))
        cls._routes = [(method, _compile(template), attr) for template, method, attr in found]

    def __init__(
        self,
        *,
        port: int = 0,
        latency: float = 0.0,
        max_connections: int | None = None,
        rate_limits: RateLimits | None = None,
        validator: OpenApiValidator | None = None,
        validate_responses: bool = False,
        random_faults: RandomFaults | None = None,
        keep_bodies: bool = False,
    ) -> None:
        self.latency = latency
        self.connections = ConnectionLimit(max_connections)
        self.limiter = RateLimiter(rate_limits)
        self.validator = validator
        self.validate_responses = validate_responses
        self.faults = FaultPlan(random_faults)
        self.keep_bodies = keep_bodies
        # gc.freeze() after every request (EmulatorProcess turns it on in the emulator's own
        # process): what a request leaves alive is the emulator's state, which the collector
        # would otherwise traverse again and again as it grows (12 % of the Mailchimp emulator's
        # CPU at a million members). Requests leave no reference cycles behind (a test holds
        # this), so nothing that freezing keeps from the collector is garbage.
        self.freeze_after_requests = False
        self.violations: list[str] = []  # answers the emulator sent that the spec forbids
        self.log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"emulator": self, "server_version": self.server_version})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler, bind_and_activate=False)
        server.daemon_threads = True
        server.request_queue_size = 256  # the default backlog of 5 drops bursts of connects
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        self._server: ThreadingHTTPServer | None = server
        self.port: int = server.server_address[1]
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.api_prefix}"

    def start(self) -> Emulator:
        assert self._server is not None, "a stopped emulator cannot start again"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):  # noqa: ANN204 - the subclass's type
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- faults, log, limits -------------------------------------------------------------

    @property
    def random_faults(self) -> RandomFaults | None:
        return self.faults.random

    @property
    def max_connections(self) -> int | None:
        return self.connections.limit

    @property
    def peak_in_flight(self) -> int:
        return self.connections.peak

    @property
    def in_flight(self) -> int:
        """Admitted requests in progress now."""
        return self.connections.in_flight

    def inject(self, kind: str, count: int = 1, **options: Any) -> Fault:
        """Fail the next ``count`` requests matching ``method``/``path`` (a regex); see
        :class:`~segsync.testing.emulator.faults.Fault` for the kinds and options."""
        return self.faults.add(Fault(kind, count, **options))

    def clear_faults(self) -> None:
        self.faults.clear()

    def record(self, entry: RequestRecord) -> None:
        with self._log_lock:
            self.log.append(entry)

    def reset_log(self) -> None:
        with self._log_lock:
            self.log.clear()
            self.connections.peak = self.connections.in_flight

    def calls(self, method: str | None = None, path: str | None = None, *,
              admitted_only: bool = True) -> list[RequestRecord]:
        """Logged API requests in order of arrival, filtered by method and path (a regex, searched)."""
        pattern = re.compile(path) if path else None
        with self._log_lock:
            records = sorted(self.log, key=lambda r: r.started)  # the log is in completion order
        return [r for r in records if r.api and (not admitted_only or r.admitted)
                and (method is None or r.method == method) and (pattern is None or pattern.search(r.path))]

    def max_concurrency(self) -> int:
        """Most admitted requests in progress at one instant, from the log."""
        calls = self.calls()
        edges = sorted([(r.started, 1) for r in calls] + [(r.ended, -1) for r in calls])
        level = peak = 0
        for _, step in edges:
            level += step
            peak = max(peak, level)
        return peak

    # -- what a subclass says about its service ------------------------------------------

    def authenticate(self, request: Request) -> None:
        """Raise :class:`AnswerError` (or the service's error) when the credentials are wrong."""

    def error_answer(self, exc: Exception) -> Answer | None:
        """The service's answer for an exception raised by a handler (None: not the service's)."""
        return None

    def internal_error(self, exc: Exception) -> Answer:
        return Answer(500, {"message": f"emulator error: {type(exc).__name__}"})

    def not_found(self, request: Request) -> Answer:
        return Answer(404, {"message": f"no route for {request.method} {request.path}"})

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Answer:
        return Answer(405, {"message": "method not allowed"}, {"Allow": ", ".join(allowed)})

    def invalid_json(self, request: Request) -> Answer:
        return Answer(400, {"message": "Invalid JSON body"})

    def invalid_request(self, request: Request, violations: list[Violation]) -> Answer:
        errors = [{"field": v.field, "message": v.message} for v in violations]
        return Answer(400, {"message": str(violations[0]), "errors": errors})

    def too_many_connections(self, request: Request) -> Answer:
        return Answer(429, {"message": "too many simultaneous connections"})

    def rate_limited(self, request: Request) -> Answer:
        return Answer(429, {"message": "Too many requests"})

    def rate_bucket(self, path: str) -> str:
        return "other"

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{reset:.3f}"}

    def fault_answer(self, fault: Fault, request: Request) -> Answer:
        """The answer of an injected ``status`` or ``error`` fault."""
        headers = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else {}
        return Answer(fault.status, {"message": f"injected HTTP {fault.status}"}, headers)

    def shape_answer(self, request: Request, answer: Answer) -> Answer:
        """A last look at a successful answer (e.g. the service's ``fields=`` projection)."""
        return answer

    def control(self, request: Request) -> Answer | None:
        """Answer a path outside the API (e.g. a file the service links to); None: 404."""
        return None

    def seed(self, body: Any) -> Any:
        """Fill the state from JSON (``POST /_emulator/seed``), for an emulator in its own process."""
        raise AnswerError(Answer(501, {"message": f"the {self.name} emulator takes no seed"}))

    def act(self, body: Any) -> Any:
        """``POST /_emulator/act``: what a person does in the service (unsubscribes through a
        link, bounces, complains), with the consequences the service gives it (its webhooks)."""
        raise AnswerError(Answer(501, {"message": f"the {self.name} emulator takes no act"}))

    def configure(self, body: Mapping[str, Any]) -> None:
        """``POST /_emulator/config``: ``latency`` seconds, ``rate_limits: false``."""
        if "latency" in body:
            self.latency = float(body["latency"])
        if body.get("rate_limits") is False:
            self.limiter.limits = None

    # -- the pipeline --------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Answer:
        for method, pattern, attr in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                if self.validator is not None:
                    violations = self.validator.check_request(request.method, request.path, request.query, request.body)
                    if violations:
                        return self.invalid_request(request, violations)
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return _as_answer(getattr(self, attr)(request, **params))
        allowed = [method for method, pattern, _ in self._routes if pattern.match(request.path)]
        return self.method_not_allowed(request, allowed) if allowed else self.not_found(request)

    def _api_answer(self, request: Request) -> Answer:
        headers: dict[str, str] = {}
        try:
            self.authenticate(request)
            decision = self.limiter.check(self.rate_bucket(request.path))
            if decision is not None:
                headers = self.rate_limit_headers(decision.limit, decision.remaining, decision.reset)
                if not decision.allowed:
                    return _with_headers(self.rate_limited(request), headers)
            if request.raw:
                try:
                    request.body = json.loads(request.raw)
                except ValueError:
                    return _with_headers(self.invalid_json(request), headers)
            answer = self._dispatch(request)
            if answer.status < 400:
                answer = self.shape_answer(request, answer)
        except AnswerError as exc:
            answer = exc.answer
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator must still answer
            answer = self.error_answer(exc)
            if answer is None:
                log.exception("%s emulator failed on %s %s", self.name, request.method, request.path)
                answer = self.internal_error(exc)
        if self.validate_responses and self.validator is not None and answer.raw is None:
            for violation in self.validator.check_response(request.method, request.path, answer.status, answer.body):
                self.violations.append(str(violation))
                log.error("%s emulator answer violates the spec: %s", self.name, violation)
        return _with_headers(answer, headers)

    def _control(self, request: Request) -> Answer:
        path, method = request.path, request.method
        body = json.loads(request.raw) if request.raw else {}
        if path == "log" and method == "GET":
            with self._log_lock:
                return Answer(200, [asdict(e) for e in self.log])
        if path == "faults" and method == "POST":
            self.inject(**body)
            return Answer(200, {"ok": True})
        if path == "faults" and method == "DELETE":
            self.clear_faults()
            return Answer(200, {"ok": True})
        if path == "config" and method == "POST":
            self.configure(body)
            return Answer(200, {"ok": True})
        if path == "seed" and method == "POST":
            return Answer(200, self.seed(body))
        if path == "act" and method == "POST":
            return Answer(200, self.act(body))
        if path == "stats" and method == "GET":
            return Answer(200, {"requests": len(self.log), "peak_in_flight": self.peak_in_flight,
                                "violations": list(self.violations),
                                # the collector's thresholds in this process (EmulatorProcess sets them)
                                "gc_thresholds": list(gc.get_threshold()),
                                "gc_frozen": gc.get_freeze_count()})
        return Answer(404, {"message": "unknown control path"})


def _as_answer(result: Any) -> Answer:
    if isinstance(result, Answer):
        return result
    if isinstance(result, tuple):
        return Answer(result[0], result[1])
    return Answer(200, result)


def _with_headers(answer: Answer, headers: Mapping[str, str]) -> Answer:
    if headers:
        answer.headers = {**headers, **answer.headers}
    return answer


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _Handler(BaseHTTPRequestHandler):
    emulator: Emulator
    protocol_version = "HTTP/1.1"  # keep-alive, as SDKs' connection pools expect
    # TCP_NODELAY: an answer goes out as two writes (the head, then the body); with Nagle's
    # algorithm the body waits for the client to acknowledge the head, which a client delays
    # (up to 40 ms on Linux): every call took ~40 ms more than its latency.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log replaces stderr noise; it never holds addresses or keys

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        em = self.emulator
        started = time.monotonic()
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        full_path = parts.path
        prefix = em.api_prefix
        api = full_path.startswith(prefix + "/") if prefix else not full_path.startswith(CONTROL_PREFIX)
        path = full_path[len(prefix):] if api and prefix else full_path
        query = parse_qs(parts.query, keep_blank_values=True)
        entry = RequestRecord(method, full_path if (em.keep_prefix_in_log or not api) else path, query, parts.query,
                              len(raw), started=started, api=api,
                              body=raw.decode("utf-8", "replace") if em.keep_bodies else None)
        request = Request(method, path, query, self.headers, raw)
        try:
            if not api:
                answer = self._outside_api(request, full_path)
                return self._send(entry, answer)
            if not em.connections.admit():
                entry.admitted = False
                return self._send(entry, em.too_many_connections(request))
            # Released before the answer goes out: a client that reads the answer and opens its
            # next connection at once must not find this one still counted.
            try:
                answer = self._admitted(entry, request)
            finally:
                em.connections.release()
            if answer is not None:
                self._send(entry, answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to do
        finally:
            if em.freeze_after_requests:
                gc.freeze()

    def _outside_api(self, request: Request, full_path: str) -> Answer:
        em = self.emulator
        if full_path.startswith(CONTROL_PREFIX):
            request.path = full_path[len(CONTROL_PREFIX):]
            try:
                return em._control(request)
            except AnswerError as exc:
                return exc.answer
        return em.control(request) or Answer(404, {"message": "not found"})

    def _admitted(self, entry: RequestRecord, request: Request) -> Answer | None:
        """The answer to send, or None when the connection was dropped without one."""
        em = self.emulator
        if em.latency:
            time.sleep(em.latency)
        fault = em.faults.take(request.method, entry.path)
        if fault is not None:
            entry.fault = fault.kind
            if fault.kind in ("status", "error"):
                return em.fault_answer(fault, request)
            if fault.kind in ("drop", "reset"):
                self._hang_up(entry, fault.kind)
                return None
            if fault.kind == "timeout":
                time.sleep(fault.delay)
        answer = em._api_answer(request)
        if fault is not None and fault.kind == "lost":
            entry.status = answer.status  # carried out, but the answer never reaches the client
            self._hang_up(entry, "drop")
            return None
        return answer

    def _hang_up(self, entry: RequestRecord, how: str) -> None:
        entry.ended = time.monotonic()
        self.emulator.record(entry)
        self.close_connection = True
        if how == "reset":
            reset_connection(self.connection)
            return
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, entry: RequestRecord, answer: Answer) -> None:
        if answer.raw is not None:
            payload = answer.raw
        else:
            payload = b"" if answer.body is None else encode_json(answer.body)
        # Logged before answering, so a client that reads the log right after its call sees it.
        entry.status = answer.status
        entry.response_bytes = len(payload)
        entry.ended = time.monotonic()
        self.emulator.record(entry)
        self.send_response(answer.status)
        content_type = answer.content_type or (self.emulator.content_type if payload else None)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

"""The emulator's HTTP front: routing, auth, limits, fault injection and the request log.

Each request is admitted against the account's connection limit (Mailchimp allows 10
simultaneous connections and answers 429 TooManyRequests beyond that), delayed by the
configured latency, checked (API key, ``X-Trigger-Error``, the OpenAPI spec) and then handed to
:class:`~segsync_mailchimp.emulator.state.EmulatorState`. Every request is logged with its start
and end time so tests and benchmarks can count calls and measure concurrency.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from segsync.testing.faults import RandomFaults, reset_connection
from segsync_mailchimp.emulator.problems import GLOSSARY, ApiProblem
from segsync_mailchimp.emulator.spec import SpecValidator
from segsync_mailchimp.emulator.state import EmulatorState

API_PREFIX = "/3.0"
DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef-us1"


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # without the /3.0 prefix and the query string
    query: dict[str, list[str]]
    body_size: int
    status: int  # 0 when the connection was dropped
    started: float  # time.monotonic()
    ended: float
    admitted: bool  # False when refused by the connection limit
    fault: str | None = None
    body: str | None = None  # the request body (UTF-8), kept only with ``keep_bodies``


@dataclass
class Fault:
    """A scripted failure for the next ``count`` matching requests."""

    # "error" (a glossary name), "status" (bare status, empty body), "timeout", "drop", "reset"
    # (TCP RST, no answer) or "lost" (carried out, then the connection is closed without an answer)
    kind: str
    count: int
    error: str | None = None
    status: int | None = None
    delay: float = 0.0
    method: str | None = None
    path: re.Pattern[str] | None = None
    retry_after: float | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or bool(self.path.search(path))
        )


_L = r"/lists/(?P<list_id>[^/]+)"
_M = _L + r"/members/(?P<member>[^/]+)"
_S = _L + r"/segments/(?P<segment_id>[^/]+)"
_C = r"/reports/(?P<campaign_id>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(p + "$"), handlers)
    for p, handlers in [
        (r"/ping", {"GET": "ping"}),
        (_L, {"GET": "get_list", "POST": "batch_subscribe"}),
        (_L + "/members", {"GET": "list_members"}),
        (_M, {"GET": "get_member", "DELETE": "archive_member"}),
        (_M + "/actions/delete-permanent", {"POST": "delete_permanent"}),
        (_L + "/merge-fields", {"GET": "merge_fields"}),
        (_L + "/segments", {"GET": "list_segments", "POST": "create_segment"}),
        (_S, {"GET": "get_segment", "POST": "batch_segment"}),
        (_S + "/members", {"GET": "segment_members"}),
        (r"/reports", {"GET": "reports"}),
        (_C, {"GET": "report"}),
        (_C + "/email-activity", {"GET": "email_activity"}),
        (_C + "/unsubscribed", {"GET": "unsubscribed"}),
    ]
]


class MailchimpEmulator:
    """A stateful Mailchimp Marketing API v3 on 127.0.0.1.

    ``latency`` (seconds) is added to every admitted request; ``max_connections`` is the
    account's simultaneous-connection limit; ``retry_after`` (seconds) is sent on the 429s the
    limit produces (Mailchimp itself sends none; None leaves it out). ``random_faults`` fails a
    share of the requests no scripted fault claimed (429 with ``Retry-After``, bare 5xx, timeouts
    after which the request is applied, connection resets); ``keep_bodies`` keeps each request's
    body in the log, so tests can see exactly what was sent.
    """

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
        self.api_key = api_key
        self.random_faults = random_faults
        self.keep_bodies = keep_bodies
        self.latency = latency
        self.max_connections = max_connections
        self.retry_after = retry_after
        self.state = state or EmulatorState()
        self.validator = SpecValidator() if validate else None
        self.log: list[RequestRecord] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MailchimpEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        server = ThreadingHTTPServer(("127.0.0.1", self._port), handler, bind_and_activate=False)
        server.daemon_threads = True
        server.request_queue_size = 256  # the default backlog of 5 drops bursts of connects
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="mailchimp-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MailchimpEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the emulator first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The SDK host to use: ``client.api_client.host = emulator.url``."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    # ------------------------------------------------------------------ faults and log
    def inject(
        self,
        kind: str,
        count: int = 1,
        *,
        error: str | None = None,
        status: int | None = None,
        delay: float = 0.0,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Fail the next ``count`` requests matching ``method``/``path`` (a regex).

        ``kind``: ``error`` answers the glossary error ``error`` as problem+json; ``status``
        answers a bare ``status`` with an empty body (what a proxy or the limiter may send);
        ``timeout`` stalls ``delay`` seconds before answering; ``drop`` closes the connection
        without an answer; ``lost`` carries the request out, then drops the answer (a create
        that succeeded but whose answer never arrived). ``reset`` resets the connection (TCP RST)
        without an answer.
        """
        if kind == "error" and error not in GLOSSARY:
            raise ValueError(f"unknown Mailchimp error {error!r}")
        with self._lock:
            self._faults.append(Fault(kind, count, error, status, delay, method,
                                      re.compile(path) if path else None, retry_after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def calls(self, method: str | None = None, path: str | None = None, *, admitted_only: bool = True) -> list[RequestRecord]:
        """Logged requests in order of arrival, filtered by method and path (a regex)."""
        pattern = re.compile(path) if path else None
        with self._lock:
            records = sorted(self.log, key=lambda r: r.started)  # the log is in completion order
        return [r for r in records
                if (not admitted_only or r.admitted)
                and (method is None or r.method == method)
                and (pattern is None or pattern.search(r.path))]

    def max_concurrency(self) -> int:
        """Most admitted requests that were in progress at one instant, from the log."""
        edges = sorted([(r.started, 1) for r in self.calls()] + [(r.ended, -1) for r in self.calls()],
                       key=lambda e: (e[0], e[1]))
        level = peak = 0
        for _, step in edges:
            level += step
            peak = max(peak, level)
        return peak

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.peak_in_flight = 0

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        drawn = self.random_faults.draw() if self.random_faults is not None else None
        if drawn is None:
            return None
        kind, status = drawn
        rf = self.random_faults
        if kind == "429":
            return Fault("error", 1, error="TooManyRequests", retry_after=rf.retry_after)
        if kind == "5xx":
            return Fault("status", 1, status=status)
        if kind == "timeout":
            return Fault("timeout", 1, delay=rf.timeout_delay)
        return Fault("reset", 1)

    def _admit(self) -> bool:
        with self._lock:
            if self._in_flight >= self.max_connections:
                return False
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return True

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _kept(self, raw: bytes) -> str | None:
        return raw.decode("utf-8", "replace") if self.keep_bodies else None

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.log.append(record)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        for pattern, handlers in ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            name = handlers.get(method)
            if name is None:
                raise ApiProblem("MethodNotAllowed", headers={"Allow": ", ".join(handlers)})
            if self.validator is not None and self.validator.enabled:
                errors = self.validator.check(method, path, query, body)
                if errors:
                    raise ApiProblem("InvalidResource", errors=errors)
            args = {k: unquote(v) for k, v in match.groupdict().items()}
            return _ENDPOINTS[name](self.state, args, query, body)
        raise ApiProblem("ResourceNotFound")


def _no_content(fn: Callable[..., None]) -> Callable[..., tuple[int, Any]]:
    def call(*args: Any) -> tuple[int, Any]:
        fn(*args)
        return 204, None
    return call


_ENDPOINTS: dict[str, Callable[[EmulatorState, dict[str, str], dict[str, list[str]], Any], tuple[int, Any]]] = {
    "ping": lambda s, a, q, b: (200, {"health_status": "Everything's Chimpy!"}),
    "get_list": lambda s, a, q, b: (200, s.list_doc(a["list_id"])),
    "batch_subscribe": lambda s, a, q, b: (200, s.batch_subscribe(a["list_id"], b or {}, q)),
    "list_members": lambda s, a, q, b: (200, s.list_members(a["list_id"], q)),
    "get_member": lambda s, a, q, b: (200, s.get_member(a["list_id"], a["member"])),
    "archive_member": _no_content(lambda s, a, q, b: s.archive_member(a["list_id"], a["member"])),
    "delete_permanent": _no_content(lambda s, a, q, b: s.delete_permanent(a["list_id"], a["member"])),
    "merge_fields": lambda s, a, q, b: (200, s.merge_fields_doc(a["list_id"], q)),
    "list_segments": lambda s, a, q, b: (200, s.list_segments(a["list_id"], q)),
    "create_segment": lambda s, a, q, b: (200, s.create_segment(a["list_id"], b or {})),
    "get_segment": lambda s, a, q, b: (200, s.get_segment(a["list_id"], a["segment_id"])),
    "batch_segment": lambda s, a, q, b: (200, s.batch_segment(a["list_id"], a["segment_id"], b or {})),
    "segment_members": lambda s, a, q, b: (200, s.segment_members(a["list_id"], a["segment_id"], q)),
    "reports": lambda s, a, q, b: (200, s.reports(q)),
    "report": lambda s, a, q, b: (200, s.report(a["campaign_id"])),
    "email_activity": lambda s, a, q, b: (200, s.email_activity(a["campaign_id"], q)),
    "unsubscribed": lambda s, a, q, b: (200, s.unsubscribed(a["campaign_id"], q)),
}


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


class _Handler(BaseHTTPRequestHandler):
    emulator: MailchimpEmulator
    protocol_version = "HTTP/1.1"
    server_version = "nginx"  # what Mailchimp's edge calls itself

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
        path = parts.path[len(API_PREFIX):] if parts.path.startswith(API_PREFIX) else parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        admitted = em._admit()
        fault: Fault | None = None
        status, payload, headers = 500, None, {}
        try:
            if not admitted:
                problem = ApiProblem("TooManyRequests")
                if em.retry_after is not None:
                    problem.headers["Retry-After"] = _seconds(em.retry_after)
                raise problem
            if em.latency:
                time.sleep(em.latency)
            fault = em._take_fault(method, path)
            if fault is not None and self._apply_fault(fault):
                em._release()
                em._record(RequestRecord(method, path, query, len(raw), 0, started,
                                         time.monotonic(), True, fault.kind,
                                         em._kept(raw)))
                return
            status, payload = self._answer(method, path, query, raw, fault)
            if fault is not None and fault.kind == "lost":
                # Carried out, but the answer never reaches the client.
                em._release()
                em._record(RequestRecord(method, path, query, len(raw), status, started,
                                         time.monotonic(), True, fault.kind, em._kept(raw)))
                self._apply_fault(Fault("drop", 1))
                return
        except ApiProblem as problem:
            status, payload, headers = problem.status, problem.document(), problem.headers
        except Exception as exc:  # a bug in the emulator must still answer like Mailchimp
            problem = ApiProblem("InternalServerError", f"emulator error: {type(exc).__name__}")
            status, payload = problem.status, problem.document()
        # Release the connection slot before the answer goes out: a client that reads the
        # answer and opens its next connection at once must not find this one still counted.
        if admitted:
            em._release()
        ended = time.monotonic()
        em._record(RequestRecord(method, path, query, len(raw), status, started, ended, admitted,
                                 fault.kind if fault else None, em._kept(raw)))
        if fault is not None and fault.kind == "status":
            self._send(status, b"", None, headers)
            return
        if status == 204:
            self._send(204, b"", None, headers)
            return
        if status >= 400:
            body = json.dumps(payload).encode()
            self._send(status, body, "application/problem+json; charset=utf-8", headers)
            return
        body = json.dumps(project(payload, _csv(query, "fields"), _csv(query, "exclude_fields"))).encode()
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _apply_fault(self, fault: Fault) -> bool:
        """Act out a connection-level fault; True when no answer must be written."""
        if fault.kind == "timeout":
            time.sleep(fault.delay)
            return False
        if fault.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if fault.kind == "reset":
            self.close_connection = True
            reset_connection(self.connection)
            return True
        return False

    def _answer(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
                fault: Fault | None) -> tuple[int, Any]:
        em = self.emulator
        self._authenticate()
        trigger = self.headers.get("X-Trigger-Error")
        if trigger in GLOSSARY:
            raise ApiProblem(trigger)
        if fault is not None and fault.kind == "error":
            problem = ApiProblem(fault.error or "InternalServerError")
            if fault.retry_after is not None:
                problem.headers["Retry-After"] = _seconds(fault.retry_after)
            raise problem
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": _seconds(fault.retry_after)} if fault.retry_after is not None else {}
            raise _BareStatus(fault.status or 500, headers)
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiProblem("JSONParseError") from None
        return em.dispatch(method, path, query, body)

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
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
        if key != self.emulator.api_key:
            raise ApiProblem("APIKeyInvalid")

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to do


class _BareStatus(ApiProblem):
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__("InternalServerError", headers=headers)
        self._status = status

    @property
    def status(self) -> int:  # type: ignore[override]
        return self._status


def _csv(query: dict[str, list[str]], name: str) -> list[str] | None:
    if name not in query:
        return None
    return [f for f in ",".join(query[name]).split(",") if f]


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"

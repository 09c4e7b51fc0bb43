"""The emulator's HTTP server: auth, rate limits, faults, spec validation, request log."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from segsync.testing.faults import reset_connection
from segsync_brevo.emulator import routes
from segsync_brevo.emulator.errors import ApiError
from segsync_brevo.emulator.faults import Fault, FaultPlan
from segsync_brevo.emulator.ratelimit import RateLimiter
from segsync_brevo.emulator.spec import SpecValidator, SpecViolation, load_validator
from segsync_brevo.emulator.state import BrevoState
from segsync_brevo.limits import GENERAL_TIER, bucket_for

log = logging.getLogger(__name__)


@dataclass
class LogEntry:
    method: str
    path: str  # /v3/... without the query string
    query: str
    status: int  # 0: connection dropped without an answer
    request_bytes: int
    response_bytes: int
    started: float  # wall clock, seconds since the epoch
    finished: float
    fault: str | None = None
    body: str | None = None  # the request body (UTF-8), kept only with ``keep_bodies``


class BrevoEmulator:
    """A stateful Brevo API v3 on 127.0.0.1; ``url`` is the host to give the SDK.

    ``random_faults`` fails a share of the requests no scripted fault claimed (429 with
    ``x-sib-ratelimit-reset``, 5xx, timeouts after which the request is applied, connection
    resets); ``keep_bodies`` keeps each request's body in the log.
    """

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
        account_email: str = "owner@example.com",
        random_faults: RandomFaults | None = None,
        keep_bodies: bool = False,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.limiter = RateLimiter(rate_limits)
        self.faults = FaultPlan()
        self.faults.random = random_faults
        self.keep_bodies = keep_bodies
        self.validator: SpecValidator | None = load_validator() if validate else None
        self.violations: list[str] = []  # responses the emulator sent that the spec forbids
        self.log: list[LogEntry] = []
        self._log_lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.state = BrevoState(
            account_email=account_email,
            import_delay=import_delay,
            import_rows_per_second=import_rows_per_second,
            report_base_url=f"http://127.0.0.1:{self.port}",
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def start(self) -> BrevoEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="brevo-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.state.close()

    def __enter__(self) -> BrevoEmulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- observation --------------------------------------------------------------------

    def record(self, entry: LogEntry) -> None:
        with self._log_lock:
            self.log.append(entry)

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[LogEntry]:
        """Logged API requests, optionally filtered by method and path regex-free prefix."""
        with self._log_lock:
            return [
                e
                for e in self.log
                if (method is None or e.method == method)
                and (path is None or e.path.startswith(path))
                and e.path.startswith("/v3/")
            ]

    def add_fault(self, **kwargs: Any) -> Fault:
        return self.faults.add(Fault(**kwargs))


def _make_handler(emulator: BrevoEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
        server_version = "BrevoEmulator/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _send(self, entry: LogEntry, status: int, body: Any, headers: Mapping[str, str] = {}, raw: bytes | None = None) -> None:
            payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
            # Log before answering so a client that reads the log right after its call sees it.
            entry.status = status
            entry.response_bytes = len(payload)
            entry.finished = time.time()
            emulator.record(entry)
            self.send_response(status)
            content_type = "text/csv" if raw is not None else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def _handle(self, method: str) -> None:
            started = time.time()
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            entry = LogEntry(method, parts.path, parts.query, 0, len(raw_body), 0, started, started,
                             body=raw_body.decode("utf-8", "replace") if emulator.keep_bodies else None)
            try:
                if parts.path.startswith("/_"):
                    self._control(entry, method, parts.path, raw_body)
                    return
                if emulator.latency:
                    time.sleep(emulator.latency)
                fault = emulator.faults.take(method, parts.path)
                if fault is not None:
                    entry.fault = fault.kind
                    if fault.kind in ("drop", "reset"):
                        entry.finished = time.time()
                        emulator.record(entry)
                        self.close_connection = True
                        if fault.kind == "reset":
                            reset_connection(self.connection)
                        return
                    if fault.kind == "lost":
                        entry.status, _body, _headers = self._api(method, parts.path, parts.query, raw_body)
                        entry.finished = time.time()
                        emulator.record(entry)
                        self.close_connection = True
                        return
                    if fault.kind == "timeout":
                        time.sleep(fault.delay)
                    else:
                        headers = {}
                        if fault.status == 429:
                            headers = {
                                "x-sib-ratelimit-limit": "10",
                                "x-sib-ratelimit-remaining": "0",
                                "x-sib-ratelimit-reset": f"{fault.reset:.3f}",
                            }
                        body = {"code": "injected_fault", "message": f"injected HTTP {fault.status}"}
                        self._send(entry, fault.status, body, headers)
                        return
                status, body, headers = self._api(method, parts.path, parts.query, raw_body)
                self._send(entry, status, body, headers)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _api(self, method: str, full_path: str, raw_query: str, raw_body: bytes):
            if not full_path.startswith("/v3/"):
                return 404, {"code": "document_not_found", "message": "Not found"}, {}
            path = full_path[3:]
            if self.headers.get("api-key") != emulator.api_key:
                return 401, {"code": "unauthorized", "message": "Key not found"}, {}
            allowed, headers = emulator.limiter.check(bucket_for(path))
            if not allowed:
                return 429, {"code": "too_many_requests", "message": "Too many requests"}, headers
            query = dict(parse_qsl(raw_query, keep_blank_values=True))
            try:
                body = json.loads(raw_body) if raw_body else None
            except ValueError:
                return 400, {"code": "bad_request", "message": "Invalid JSON body"}, headers
            op = None
            if emulator.validator is not None:
                try:
                    op = emulator.validator.check_request(method, path, query, body)
                except SpecViolation as exc:
                    return 400, {"code": "invalid_parameter", "message": str(exc)}, headers
            try:
                result = routes.dispatch(emulator.state, method, path, query, body)
            except ApiError as exc:
                result = (exc.status, exc.body())
            if result is None:
                return 501, {"code": "not_acceptable", "message": f"the emulator does not implement {method} {path}"}, headers
            status, out = result
            if op is not None:
                try:
                    emulator.validator.check_response(op, status, out)
                except SpecViolation as exc:
                    if status < 400 or str(status) in op.spec.get("responses", {}):
                        emulator.violations.append(str(exc))
                        log.error("emulator answer violates Brevo's spec: %s", exc)
            return status, out, headers

        def _control(self, entry: LogEntry, method: str, path: str, raw_body: bytes) -> None:
            """Endpoints for running the emulator standalone: reports, seeding, faults, log."""
            if path.startswith("/_reports/"):
                report = emulator.state.reports.get(path[len("/_reports/") :])
                if report is None:
                    return self._send(entry, 404, {"code": "document_not_found", "message": "no such report"})
                return self._send(entry, 200, None, raw=report.encode())
            body = json.loads(raw_body) if raw_body else {}
            if path == "/_emulator/log" and method == "GET":
                return self._send(entry, 200, [asdict(e) for e in emulator.log])
            if path == "/_emulator/faults" and method == "POST":
                emulator.add_fault(**body)
                return self._send(entry, 200, {"ok": True})
            if path == "/_emulator/faults" and method == "DELETE":
                emulator.faults.clear()
                return self._send(entry, 200, {"ok": True})
            if path == "/_emulator/seed" and method == "POST":
                return self._send(entry, 200, seed(emulator.state, body))
            if path == "/_emulator/config" and method == "POST":
                if "latency" in body:
                    emulator.latency = float(body["latency"])
                if body.get("rate_limits") is False:
                    emulator.limiter.limits = None
                return self._send(entry, 200, {"ok": True})
            return self._send(entry, 404, {"code": "document_not_found", "message": "unknown control path"})

    return Handler


def seed(state: BrevoState, body: Mapping[str, Any]) -> dict[str, Any]:
    """Seed from JSON: {"lists": [name], "attributes": [name], "contacts": [{email, attributes,
    lists (names), blacklisted}], "blocked": [{email, reason}], "events": [{email, event}]}."""
    list_ids = {name: state.add_list(name) for name in body.get("lists", [])}
    for name in body.get("attributes", []):
        state.add_attribute(name)
    for contact in body.get("contacts", []):
        state.seed_contact(
            contact["email"],
            attributes=contact.get("attributes"),
            list_ids=[list_ids[n] for n in contact.get("lists", [])],
            blacklisted=contact.get("blacklisted", False),
        )
    for blocked in body.get("blocked", []):
        state.add_blocked(blocked["email"], blocked["reason"])
    for event in body.get("events", []):
        state.add_event(event["email"], event["event"])
    return {"lists": list_ids}

"""The emulator's HTTP server: OAuth2 bearer auth and the token endpoint, rate limits, faults
and a request log, in front of ``routes``."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from segsync.testing.faults import RandomFaults, reset_connection

from segsync_constantcontact.emulator import routes
from segsync_constantcontact.emulator.state import ApiError, ConstantContactState
from segsync_constantcontact.limits import REQUESTS_PER_DAY, REQUESTS_PER_SECOND

log = logging.getLogger(__name__)
TOKEN_PATH = "/oauth2/default/v1/token"


@dataclass
class LogEntry:
    method: str
    path: str
    query: str
    status: int = 0  # 0: no answer (connection reset)
    fault: str | None = None
    body: Any = None
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Fault:
    """Fail ``times`` requests whose method and path match (after letting ``skip`` through):
    answer ``status`` (with ``Retry-After: retry_after`` when set), ``reset`` the connection, or
    hold the request ``delay`` seconds (``timeout``) and then carry it out."""

    path: str
    method: str | None = None
    status: int = 503
    kind: str = "status"  # status | reset | timeout
    times: int = 1
    skip: int = 0
    retry_after: float | None = None
    delay: float = 5.0
    fired: int = field(default=0, init=False)


class RateLimit:
    """Requests per second and per day, per key, as the API documents for standard keys."""

    def __init__(self, per_second: int | None = REQUESTS_PER_SECOND, per_day: int | None = REQUESTS_PER_DAY) -> None:
        self.per_second = per_second
        self.per_day = per_day
        self._recent: deque[float] = deque()
        self.today = 0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if self.per_day is not None and self.today >= self.per_day:
                return False
            if self.per_second is not None and len(self._recent) >= self.per_second:
                return False
            self._recent.append(now)
            self.today += 1
            return True


class ConstantContactEmulator:
    """A stateful Constant Contact API v3 on 127.0.0.1; ``url`` is the ``host`` setting."""

    def __init__(self, *, port: int = 0, latency: float = 0.0, activity_delay: float = 0.05,
                 rate_limit: RateLimit | None = None, random_faults: RandomFaults | None = None) -> None:
        self.state = ConstantContactState(activity_delay=activity_delay)
        self.latency = latency
        self.rate_limit = rate_limit if rate_limit is not None else RateLimit()
        self.random_faults = random_faults
        self.faults: list[Fault] = []
        self.log: list[LogEntry] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{TOKEN_PATH}"

    # The authorization the demo and tests configure: what a user gets from the OAuth2 flow.
    access_token = property(lambda self: self.state.access_token)
    refresh_token = property(lambda self: self.state.refresh_token)
    client_id = property(lambda self: self.state.client_id)
    client_secret = property(lambda self: self.state.client_secret)

    def start(self) -> ConstantContactEmulator:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="constantcontact-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ConstantContactEmulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def add_fault(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests(self, method: str | None = None, path: str = "") -> list[LogEntry]:
        """Logged requests, by method and path prefix (``/v3/contacts``)."""
        with self._lock:
            return [e for e in self.log if (method is None or e.method == method) and e.path.startswith(path)]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.fired < fault.times and (fault.method in (None, method)) and re.search(fault.path, path):
                    if fault.skip:
                        fault.skip -= 1
                        continue
                    fault.fired += 1
                    return fault
        drawn = self.random_faults.draw() if self.random_faults is not None else None
        if drawn is None:
            return None
        kind, status = drawn
        if kind == "reset":
            return Fault(path, kind="reset")
        if kind == "timeout":
            return Fault(path, kind="timeout", delay=self.random_faults.timeout_delay)
        return Fault(path, status=status, retry_after=self.random_faults.retry_after if status == 429 else None)

    def _record(self, entry: LogEntry) -> None:
        with self._lock:
            self.log.append(entry)


def _error(exc: ApiError) -> tuple[int, Any]:
    if exc.status in (400, 401) and exc.key.startswith("invalid_"):  # the token endpoint's (OAuth2) form
        return exc.status, {"error": exc.key, "error_description": exc.message}
    return exc.status, [{"error_key": exc.key, "error_message": exc.message}]


def _handler(emulator: ConstantContactEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug(format, *args)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            entry = LogEntry(method, parts.path, parts.query)
            if emulator.latency:
                time.sleep(emulator.latency)
            fault = emulator._take_fault(method, parts.path)
            if fault is not None:
                entry.fault = fault.kind if fault.kind != "status" else str(fault.status)
                if fault.kind == "reset":
                    emulator._record(entry)
                    self.close_connection = True
                    reset_connection(self.connection)
                    return
                if fault.kind == "timeout":
                    time.sleep(fault.delay)  # then carry it out: the work is done, the answer late
                else:
                    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                    return self._send(entry, fault.status, [{"error_key": "injected_fault",
                                                             "error_message": f"injected HTTP {fault.status}"}], headers)
            try:
                status, body = self._answer(method, parts.path, parts.query, raw, entry)
            except ApiError as exc:
                status, body = _error(exc)
            headers = {}
            if status == 429:
                headers["Retry-After"] = "1"
            self._send(entry, status, body, headers)

        def _answer(self, method: str, path: str, query: str, raw: bytes, entry: LogEntry) -> tuple[int, Any]:
            if path == TOKEN_PATH and method == "POST":
                return 200, self._token(raw)
            if not path.startswith("/v3/"):
                raise ApiError(404, "not_found", "Not found.")
            auth = self.headers.get("Authorization") or ""
            if not (auth.startswith("Bearer ") and emulator.state.authorized(auth[7:])):
                raise ApiError(401, "unauthorized", "Unauthorized")
            if not emulator.rate_limit.allow():
                raise ApiError(429, "too_many_requests", "Too many requests.")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise ApiError(400, "body.malformed", "The JSON body is malformed.") from None
            entry.body = body
            return routes.dispatch(emulator.state, method, path, dict(parse_qsl(query, keep_blank_values=True)), body)

        def _token(self, raw: bytes) -> dict[str, Any]:
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            if form.get("grant_type") != "refresh_token":
                raise ApiError(400, "invalid_request", "Only the refresh_token grant is emulated.")
            auth = self.headers.get("Authorization") or ""
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                client_id = secret = ""
            if not auth.startswith("Basic "):
                client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            return emulator.state.refresh(client_id, secret, form.get("refresh_token", ""))

        def _send(self, entry: LogEntry, status: int, body: Any, headers: dict[str, str]) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            entry.status = status
            emulator._record(entry)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    return Handler

"""The emulator's HTTP server: bearer-token auth, HubSpot's rate limits, faults, request log."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from segsync.testing.faults import RandomFaults, reset_connection

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

log = logging.getLogger(__name__)


@dataclass
class LogEntry:
    method: str
    path: str
    query: str
    status: int  # 0: no answer (reset)
    body: Any
    fault: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Fault:
    """The next ``times`` requests whose method and path match fail: ``status`` answers that
    HTTP status (a 429 the way HubSpot sends it), ``timeout`` holds the answer ``delay`` seconds
    and then applies the request, ``reset`` resets the connection without applying it."""

    kind: str = "status"
    status: int = 500
    path: str = ".*"
    method: str | None = None
    times: int = 1
    delay: float = 2.0
    retry_after: float | None = None  # a 429's window reset (X-HubSpot-RateLimit-Interval-Milliseconds)
    fired: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


class SlidingWindow:
    """At most ``limit`` requests in any ``window`` seconds (HubSpot's limits are rolling)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, int, float]:
        """(admitted, remaining after this request, seconds until the oldest hit leaves)."""
        with self._lock:
            now = self._clock()
            while self._hits and self._hits[0] <= now - self.window:
                self._hits.popleft()
            if len(self._hits) >= self.limit:
                return False, 0, self._hits[0] + self.window - now
            self._hits.append(now)
            return True, self.limit - len(self._hits), self.window


class HubSpotEmulator:
    """A stateful HubSpot API on 127.0.0.1 (``url``), reached with ``access_token``.

    ``ten_secondly`` and ``window_ms`` set the private app's rolling limit (HubSpot's
    Free/Starter: 100 per 10 s; tests shorten the window); searches are limited to
    ``search_per_second`` separately and answer without rate-limit headers, as HubSpot's do.
    """

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
    ) -> None:
        self.access_token = access_token
        # The batch subscription endpoints need Marketing Hub Enterprise scopes; without them
        # HubSpot answers 403 and only the per-contact endpoints work.
        self.batch_subscriptions = batch_subscriptions
        self.latency = latency
        self.state = AccountState(clock)
        self.general = SlidingWindow(ten_secondly, window_ms / 1000) if ten_secondly else None
        self.searches = SlidingWindow(search_per_second, 1.0) if search_per_second else None
        self.daily_used = 0
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
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubSpotEmulator:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hubspot-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def add_fault(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests(self, method: str | None = None, path: str | None = None) -> list[LogEntry]:
        with self._lock:
            return [e for e in self.log if (method is None or e.method == method)
                    and (path is None or re.search(path, e.path))]

    def _take_fault(self, method: str, path: str) -> tuple[str, int, float] | None:
        """(kind, status, delay or a 429's retry hint) of the fault this request meets, scripted
        ones first."""
        with self._lock:
            for fault in self.faults:
                if fault.fired < fault.times and fault.matches(method, path):
                    fault.fired += 1
                    if fault.kind == "status":
                        return fault.kind, fault.status, fault.retry_after or 0.0
                    return fault.kind, 0, fault.delay
        drawn = self.random_faults.draw() if self.random_faults is not None else None
        if drawn is None:
            return None
        kind, status = drawn
        if kind in ("429", "5xx"):
            return "status", status, self.random_faults.retry_after  # type: ignore[union-attr]
        return kind, 0, self.random_faults.timeout_delay  # type: ignore[union-attr]

    def _record(self, entry: LogEntry) -> None:
        with self._lock:
            self.log.append(entry)

    def rate_headers(self, remaining: int, window: float | None = None) -> dict[str, str]:
        if self.general is None:
            return {}
        self.daily_used += 1
        window = self.general.window if window is None else window
        return {RATE_LIMIT_MAX: str(self.general.limit), RATE_LIMIT_REMAINING: str(remaining),
                RATE_LIMIT_INTERVAL: str(int(window * 1000)), RATE_LIMIT_DAILY: str(DAILY_MAX),
                RATE_LIMIT_DAILY_REMAINING: str(max(0, DAILY_MAX - self.daily_used))}


def error_body(status: int, category: str, message: str, context: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                            "category": category}
    if context:
        body["context"] = context
    return body


def rate_limited(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body (errorType RATE_LIMIT, the policy that was hit)."""
    what = "secondly" if policy == "SECONDLY" else "ten_secondly_rolling"
    return {"status": "error", "message": f"You have reached your {what} limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy}


def _handler(emulator: HubSpotEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "HubSpotEmulator/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _send(self, entry: LogEntry, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            entry.status = status
            emulator._record(entry)  # before answering: a client reading the log next sees it
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            entry = LogEntry(method, parts.path, parts.query, 0, body)
            try:
                if emulator.latency:
                    time.sleep(emulator.latency)
                if self.headers.get("Authorization") != f"Bearer {emulator.access_token}":
                    return self._send(entry, 401, error_body(
                        401, "INVALID_AUTHENTICATION",
                        "Authentication credentials not found. This API supports OAuth 2.0 authentication."))
                fault = emulator._take_fault(method, parts.path)
                if fault is not None:
                    kind, status, delay = fault
                    entry.fault = kind if kind != "status" else str(status)
                    if kind == "reset":
                        emulator._record(entry)
                        self.close_connection = True
                        reset_connection(self.connection)
                        return
                    if kind == "timeout":
                        # Logged when it arrives; answered never. The work is done after the
                        # client has given up, as a slow server would.
                        emulator._record(entry)
                        time.sleep(delay)
                    elif status == 429:  # the window reported is the hint, as HubSpot's headers give it
                        return self._send(entry, 429, rate_limited("TEN_SECONDLY_ROLLING"),
                                          emulator.rate_headers(0, delay or None))
                    else:
                        return self._send(entry, status, error_body(status, "INTERNAL_ERROR",
                                                                    f"injected HTTP {status}"))
                if not emulator.batch_subscriptions and parts.path.startswith(routes.SUBSCRIPTION_BATCH_PATHS):
                    return self._send(entry, 403, error_body(
                        403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call.",
                        {"requiredGranularScopes": ["communication_preferences.statuses.batch.read"]}))
                searching = parts.path == routes.SEARCH_PATH
                headers: dict[str, str] = {}
                if searching and emulator.searches is not None:
                    admitted, _, wait = emulator.searches.admit()
                    if not admitted:
                        return self._send(entry, 429, rate_limited("SECONDLY"))
                elif not searching and emulator.general is not None:
                    admitted, remaining, wait = emulator.general.admit()
                    headers = emulator.rate_headers(remaining)
                    if not admitted:
                        return self._send(entry, 429, rate_limited("TEN_SECONDLY_ROLLING"), headers)
                query = dict(parse_qsl(parts.query, keep_blank_values=True))
                try:
                    status, out = routes.dispatch(emulator.state, method, parts.path, query, body)
                except ApiError as exc:
                    status, out = exc.status, error_body(exc.status, exc.category, exc.message, exc.context)
                if fault is not None and fault[0] == "timeout":
                    entry.status = status
                    self.close_connection = True
                    return
                self._send(entry, status, out, headers)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler

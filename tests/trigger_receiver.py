"""A webhook receiver for trigger tests: a real HTTP server on 127.0.0.1 that checks the
signature, records every request and drops repeated deliveries by their idempotency key, the
way docs/triggers.md asks a receiver to."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[dict] = []  # every request: headers, deliveries, whether signed right
        self.kept: dict[str, dict] = {}  # delivery id → the delivery, once
        self.statuses: list[int] = []  # answers to give, in order (then 200)
        self.hold = threading.Event()  # set: the next request is recorded but never answered
        self.received = threading.Event()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/segsync"

    def signed(self, timestamp: str, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        stamp = handler.headers.get("X-Segsync-Timestamp", "")
        valid = hmac.compare_digest(handler.headers.get("X-Segsync-Signature", ""), self.signed(stamp, body))
        deliveries = json.loads(body)["deliveries"]
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.requests.append({"headers": dict(handler.headers), "deliveries": deliveries, "valid": valid,
                                  "status": status})
            if valid and status < 300:
                for d in deliveries:
                    self.kept.setdefault(d["id"], d)  # a repeat is dropped
        self.received.set()
        if self.hold.is_set():
            threading.Event().wait(30)  # the sender is killed meanwhile
            return
        handler.send_response(status if valid else 401)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@contextmanager
def receiver(secret: str) -> Iterator[Receiver]:
    rec = Receiver(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            rec.handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()

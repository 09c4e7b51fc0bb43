"""Webhooks an emulator sends, as its service does: POSTed from a thread of their own, retried.

An emulator whose service has a webhook API keeps the webhooks registered through it and calls
:meth:`WebhookSender.send` when something happens that the service reports (a person
unsubscribes, an address bounces). Each delivery is POSTed in the background in the order sent,
retried ``attempts`` times on a connection error or an answer other than 2xx (with doubling
waits from ``retry_wait``), and recorded in :attr:`WebhookSender.deliveries` (tests read them).
``wait_idle()`` returns once everything sent so far was delivered or given up.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    url: str
    kind: str  # the service's event word (unsubscribe, hard_bounce, …)
    body: bytes
    headers: dict[str, str]
    attempts: int = 0
    status: int | None = None  # the last answer's status; None: no answer (connection error)
    delivered_at: float | None = None  # time.monotonic() of the 2xx answer
    queued_at: float = 0.0


class WebhookSender:
    def __init__(self, *, attempts: int = 5, retry_wait: float = 0.2, timeout: float = 10.0) -> None:
        self.attempts = attempts
        self.retry_wait = retry_wait
        self.timeout = timeout  # Mailchimp gives up on a URL that takes more than 10 s
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._idle = threading.Condition()
        self._open = 0
        self._thread: threading.Thread | None = None

    def send(self, url: str, kind: str, body: bytes, headers: Mapping[str, str]) -> Delivery:
        delivery = Delivery(url, kind, body, dict(headers), queued_at=time.monotonic())
        with self._idle:
            self.deliveries.append(delivery)
            self._open += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="emulator-webhooks", daemon=True)
                self._thread.start()
        self._queue.put(delivery)
        return delivery

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every delivery sent so far was delivered or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._open == 0, timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)

    def _run(self) -> None:
        session = requests.Session()
        while (delivery := self._queue.get()) is not None:
            for attempt in range(1, self.attempts + 1):
                delivery.attempts = attempt
                try:
                    answer = session.post(delivery.url, data=delivery.body, headers=delivery.headers,
                                          timeout=self.timeout)
                    delivery.status = answer.status_code
                except requests.RequestException as exc:
                    delivery.status = None
                    log.info("webhook to %s failed: %s", delivery.url.split("?")[0], type(exc).__name__)
                if delivery.status is not None and 200 <= delivery.status < 300:
                    delivery.delivered_at = time.monotonic()
                    break
                if attempt < self.attempts:
                    time.sleep(self.retry_wait * 2 ** (attempt - 1))
            with self._idle:
                self._open -= 1
                self._idle.notify_all()
        session.close()

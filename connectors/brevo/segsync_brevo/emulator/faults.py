"""Fault injection: make chosen requests fail the way a real network and service do."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Literal

from segsync.testing.faults import RandomFaults

FaultKind = Literal["status", "timeout", "drop", "lost", "reset"]


@dataclass
class Fault:
    """Applies to requests whose method and path (``/v3/...``) match, ``times`` times.

    ``status``: answer that HTTP status (429 carries exhausted rate-limit headers);
    ``timeout``: hold the request ``delay`` seconds before answering (past the client's
    timeout); ``drop``: close the connection without answering; ``lost``: carry the request
    out, then close the connection without answering (a create that succeeded but whose answer
    never arrived). ``reset``: reset the connection (TCP RST) without answering.
    ``skip`` lets that many matching requests through first.
    """

    kind: FaultKind = "status"
    status: int = 500
    path: str = ".*"
    method: str | None = None
    times: int = 1
    skip: int = 0
    delay: float = 5.0
    reset: float = 1.0  # x-sib-ratelimit-reset sent with an injected 429
    fired: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


class FaultPlan:
    """Scripted faults first; then, if set, ``random`` fails a share of the other requests."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.random: RandomFaults | None = None

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.fired >= fault.times or not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.fired += 1
                return fault
        drawn = self.random.draw() if self.random is not None else None
        if drawn is None:
            return None
        kind, status = drawn
        if kind in ("429", "5xx"):
            return Fault("status", status=status, reset=self.random.retry_after)
        if kind == "timeout":
            return Fault("timeout", delay=self.random.timeout_delay)
        return Fault("reset")

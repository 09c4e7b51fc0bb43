"""Scripted faults (by count and route) and random ones, for :class:`~segsync.testing.emulator.Emulator`.

Kinds, each acted out the way a network or a service fails:

* ``status`` — answer ``status`` at once, nothing applied (the emulator's
  :meth:`~segsync.testing.emulator.Emulator.fault_answer` says with which body and headers; a
  429 carries ``retry_after``);
* ``error`` — answer the service's named error ``error`` (e.g. Mailchimp's glossary names);
* ``timeout`` — hold the request ``delay`` seconds (past the client's timeout), then apply and
  answer it: the client sees no answer for work that was done;
* ``drop`` — close the connection without an answer, nothing applied;
* ``lost`` — apply the request, then close the connection without an answer;
* ``reset`` — reset the connection (TCP RST) before anything is applied.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from segsync.testing.faults import RandomFaults

FAULT_KINDS = ("status", "error", "timeout", "drop", "lost", "reset")


@dataclass
class Fault:
    """Fails ``count`` requests whose method and path (a regex, searched) match, after letting
    ``skip`` matching ones through."""

    kind: str = "status"
    count: int = 1
    status: int = 500
    error: str | None = None
    delay: float = 5.0
    method: str | None = None
    path: str | None = None
    retry_after: float | None = None
    skip: int = 0
    drawn: bool = False  # drawn by ``random_faults``, not scripted
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {self.kind!r}")
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self._pattern is None or self._pattern.search(path) is not None)


class FaultPlan:
    """Scripted faults first, in the order added; then ``random`` (if set) draws for the rest."""

    def __init__(self, random: RandomFaults | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.random = random

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this request meets, or None; a scripted fault is used up as it fires."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.fired += 1
                if fault.fired >= fault.count:
                    self._faults.remove(fault)
                return fault
        drawn = self.random.draw() if self.random is not None else None
        if drawn is None:
            return None
        kind, status = drawn
        if kind in ("429", "5xx"):
            return Fault("status", status=status, retry_after=self.random.retry_after if status == 429 else None,
                         drawn=True)
        if kind == "timeout":
            return Fault("timeout", delay=self.random.timeout_delay, drawn=True)
        return Fault("reset", drawn=True)

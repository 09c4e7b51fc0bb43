"""Random fault injection shared by the connectors' emulators (tests, benchmarks, soaks).

An emulator given a :class:`RandomFaults` asks :meth:`RandomFaults.draw` once per API request
that no scripted fault claimed; a drawn kind is acted out the way that emulator's service fails:

* ``429`` — rate limited, with the service's retry hint (``retry_after`` seconds);
* ``5xx`` — a server error (500, 502 or 503), nothing applied;
* ``timeout`` — the answer is held ``timeout_delay`` seconds (past the client's timeout), then
  the request is applied: the client sees no answer for work that was done;
* ``reset`` — the connection is reset (TCP RST) before anything is applied.

Whether a request fails is drawn from one seeded generator; failures take the kinds in turn,
so every kind is acted out once every ``len(kinds)`` failures. The sequence of draws is
reproducible; which request gets which draw depends on the order requests arrive in.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable

FAULT_KINDS = ("429", "5xx", "timeout", "reset")
SERVER_ERRORS = (500, 502, 503)


class RandomFaults:
    def __init__(
        self,
        rate: float,
        *,
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int = 0,
        retry_after: float = 0.2,
        timeout_delay: float = 2.0,
    ) -> None:
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}, got {sorted(unknown) or 'none'}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate}")
        self.rate = rate
        self.retry_after = retry_after
        self.timeout_delay = timeout_delay
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # kind -> faults acted out
        self.requests = 0  # requests that drew (faulted or not)

    def draw(self) -> tuple[str, int] | None:
        """None (no fault) or (kind, HTTP status to answer; 0 when no answer is sent)."""
        with self._lock:
            self.requests += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self.kinds[sum(self.injected.values()) % len(self.kinds)]
            status = {"429": 429, "5xx": self._rng.choice(SERVER_ERRORS)}.get(kind, 0)
            self.injected[kind] += 1
            return kind, status


def reset_connection(sock: socket.socket) -> None:
    """Make closing ``sock`` send a TCP RST instead of an orderly FIN (a "connection reset")."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

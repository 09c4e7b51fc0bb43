"""A service's limits as an emulator enforces them: simultaneous connections and request rates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# bucket -> (requests, window seconds) pairs, all enforced at once
RateLimits = Mapping[str, tuple[tuple[int, float], ...]]


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the reported window starts again


class RateLimiter:
    """Fixed windows per bucket; a bucket without its own limits uses ``"other"``'s (if any).

    Each decision reports the most constraining window: fewest requests left, then soonest reset.
    ``limits`` None (or empty) admits everything. ``clock`` (seconds, monotonic) can be replaced
    by a test's fake clock, so pacing is checked without waiting.
    """

    def __init__(self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(limits) if limits else None
        self.clock = clock
        self._windows: dict[tuple[str, float], list[float]] = {}  # -> [window start, count]
        self._lock = threading.Lock()

    def check(self, bucket: str) -> RateDecision | None:
        """Count one request of ``bucket``; None when the bucket is not limited."""
        pairs = (self.limits.get(bucket) or self.limits.get("other") or ()) if self.limits else ()
        if not pairs:
            return None
        now = self.clock()
        with self._lock:
            states = []
            for limit, window in pairs:
                state = self._windows.setdefault((bucket, window), [now, 0])
                if now >= state[0] + window:
                    state[0], state[1] = now, 0
                states.append((limit, window, state))
            blocked = [(n, w, s) for n, w, s in states if s[1] >= n]
            if not blocked:
                for _n, _w, state in states:
                    state[1] += 1
            limit, window, state = min(blocked or states, key=lambda t: (t[0] - t[2][1], t[2][0] + t[1]))
            return RateDecision(not blocked, limit, max(0, limit - int(state[1])), max(0.0, state[0] + window - now))


class ConnectionLimit:
    """At most ``limit`` requests in progress at once (None: unlimited); counts the peak."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            if self.limit is not None and self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1

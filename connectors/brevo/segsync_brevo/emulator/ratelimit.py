"""Fixed-window rate limits per bucket, reported in ``x-sib-ratelimit-*`` headers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping

from segsync_brevo.limits import GENERAL_TIER


class RateLimiter:
    """``limits`` maps a bucket to (requests, window seconds) pairs; None disables limiting."""

    def __init__(
        self, limits: Mapping[str, tuple[tuple[int, float], ...]] | None = GENERAL_TIER
    ) -> None:
        self.limits = dict(limits) if limits is not None else None
        self._windows: dict[tuple[str, float], list[float]] = {}  # -> [window start, count]
        self._lock = threading.Lock()

    def check(self, bucket: str) -> tuple[bool, dict[str, str]]:
        """Count one request; returns (allowed, headers to send)."""
        if not self.limits:
            return True, {}
        pairs = self.limits.get(bucket) or self.limits.get("other") or ()
        now = time.monotonic()
        with self._lock:
            states = []
            for limit, window in pairs:
                state = self._windows.setdefault((bucket, window), [now, 0])
                if now >= state[0] + window:
                    state[0], state[1] = now, 0
                states.append((limit, window, state))
            blocked = [(l, w, s) for l, w, s in states if s[1] >= l]
            if not blocked:
                for _l, _w, state in states:
                    state[1] += 1
            # Report the most constraining window: fewest requests left, then soonest reset.
            limit, window, state = min(
                blocked or states, key=lambda t: (t[0] - t[2][1], t[2][0] + t[1])
            )
            remaining = max(0, limit - int(state[1]))
            reset = max(0.0, state[0] + window - now)
        return not blocked, {
            "x-sib-ratelimit-limit": str(limit),
            "x-sib-ratelimit-remaining": str(remaining),
            # Seconds, with millisecond precision (emulator choice: Brevo documents the unit as
            # "typically seconds" without saying whether fractions are sent).
            "x-sib-ratelimit-reset": f"{math.ceil(reset * 1000) / 1000:.3f}",
        }

"""Client-side pacing from Brevo's ``x-sib-ratelimit-*`` headers.

Every Brevo response says how many requests are left in the current window and how many
seconds until it resets; waiting for the reset when nothing is left avoids 429s altogether
(the 429 path with back-off stays as the safety net for other clients sharing the key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from segsync_brevo.limits import bucket_for

LIMIT = "x-sib-ratelimit-limit"
REMAINING = "x-sib-ratelimit-remaining"
RESET = "x-sib-ratelimit-reset"


@dataclass
class _Window:
    remaining: int
    reset_at: float


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def reset_seconds(headers: Mapping[str, str] | None) -> float | None:
    raw = _header(headers, RESET)
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


class RatePacer:
    """Remembers the last reported window per bucket and sleeps through exhausted ones."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self.slept = 0.0  # total seconds spent waiting, for benchmarks and tests
        self.waits = 0

    def before(self, path: str) -> None:
        bucket = bucket_for(path)
        with self._lock:
            window = self._windows.get(bucket)
            if window is None:
                return
            now = self._clock()
            if now >= window.reset_at:
                del self._windows[bucket]
                return
            if window.remaining > 0:
                # Count this request against the window now, so the next one waits even if
                # this one's response never arrives.
                window.remaining -= 1
                return
            delay = window.reset_at - now
            del self._windows[bucket]
        self.waits += 1
        self.slept += delay
        self._sleep(delay)

    def after(self, path: str, headers: Mapping[str, str] | None) -> None:
        raw_remaining = _header(headers, REMAINING)
        reset = reset_seconds(headers)
        if raw_remaining is None or reset is None:
            return
        try:
            remaining = int(raw_remaining)
        except ValueError:
            return
        with self._lock:
            self._windows[bucket_for(path)] = _Window(remaining, self._clock() + reset)

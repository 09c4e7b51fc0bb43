"""Client-side pacing from a service's rate-limit headers.

Many services say in every answer how many requests are left in the current window and when
it resets (Brevo: ``x-sib-ratelimit-remaining`` / ``-reset`` in seconds; HubSpot:
``X-HubSpot-RateLimit-Remaining`` / ``-Interval-Milliseconds``; GitHub style:
``X-RateLimit-Remaining`` / ``-Reset`` as a Unix time). :class:`RatePacer` remembers the last
window reported for each bucket (a service may limit endpoint families separately) and, when
nothing is left, sleeps until it resets instead of earning a 429. The 429 path with back-off
stays as the safety net for other clients sharing the account.

Share one pacer between every session of one account: limits hold per account.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

ResetKind = Literal["seconds", "milliseconds", "epoch"]


@dataclass(frozen=True)
class RateLimitHeaders:
    """The names of a service's rate-limit headers and how its reset header counts.

    ``reset_kind``: ``seconds`` or ``milliseconds`` until the window resets, or ``epoch`` (the
    Unix time it resets at).
    """

    remaining: str = "X-RateLimit-Remaining"
    reset: str = "X-RateLimit-Reset"
    reset_kind: ResetKind = "epoch"

    def reset_seconds(self, headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
        """Seconds until the window of ``headers`` resets; None when the header is absent."""
        raw = header(headers, self.reset)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            return None
        if value is None or value != value:
            return None
        if self.reset_kind == "milliseconds":
            value /= 1000.0
        elif self.reset_kind == "epoch":
            value -= time.time() if now is None else now
        return max(0.0, value)

    def remaining_in(self, headers: Mapping[str, str] | None) -> int | None:
        raw = header(headers, self.remaining)
        try:
            return int(float(raw)) if raw is not None else None
        except ValueError:
            return None


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value whatever the case of its name (plain dicts included)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


# Resets this close together are one window seen from two answers (the reset is reported in
# milliseconds at best, and answers take a moment to arrive).
SAME_WINDOW = 0.1


@dataclass
class _Window:
    remaining: int
    reset_at: float


def one_bucket(path: str) -> str:
    return "all"


class RatePacer:
    """Remembers the last reported window per bucket and sleeps through exhausted ones."""

    def __init__(
        self,
        headers: RateLimitHeaders | None = None,
        *,
        bucket: Callable[[str], str] = one_bucket,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.headers = headers or RateLimitHeaders()
        self._bucket = bucket
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()
        self.slept = 0.0  # total seconds spent waiting, for benchmarks and tests
        self.waits = 0

    def before(self, path: str) -> None:
        """Call before sending a request to ``path``: waits when its window is used up. Every
        caller that finds it used up waits for the reset (requests sent side by side too), not
        only the first."""
        bucket = self._bucket(path)
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
                # this one's answer never arrives.
                window.remaining -= 1
                return
            delay = window.reset_at - now
            self.waits += 1
            self.slept += delay
        self._sleep(delay)

    def after(self, path: str, headers: Mapping[str, str] | None) -> None:
        """Call with every answer's headers: remembers the window they report. Answers to
        requests sent side by side arrive in any order: within one window (the same reset, give
        or take ``SAME_WINDOW`` seconds) the fewest requests left is kept, so an answer counted
        early cannot hand back requests already spent."""
        remaining = self.headers.remaining_in(headers)
        reset = self.headers.reset_seconds(headers)
        if remaining is None or reset is None:
            return
        bucket = self._bucket(path)
        with self._lock:
            reset_at = self._clock() + reset
            known = self._windows.get(bucket)
            if known is not None and abs(known.reset_at - reset_at) <= SAME_WINDOW:
                known.remaining = min(known.remaining, remaining)
                return
            self._windows[bucket] = _Window(remaining, reset_at)

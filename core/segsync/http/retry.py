"""The framework's retry policy: which failures are worth another try, and how long to wait.

* Retryable: 429, 5xx, timeouts and dropped connections (``requests``' ``ConnectionError`` and
  ``Timeout``, Python's ``ConnectionError`` and ``TimeoutError``, or any exception whose
  ``retryable`` attribute is true). Other 4xx are final:
  sending the same request again gets the same answer.
* Bounded: at most ``attempts`` tries in all.
* Waits: the service's ``Retry-After`` when it gave one (capped at ``wait_max``), else
  exponential back-off with jitter (``wait_initial`` × 2ⁿ plus up to ``wait_initial`` at
  random, capped at ``wait_max``), which spreads parallel workers' retries apart.

Any client can use the policy, not only :class:`segsync.http.HttpSession`: an SDK call wrapped
in :meth:`RetryPolicy.retrying` retries an exception that carries ``retryable`` and
``retry_after`` attributes (see :class:`HttpError`).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tenacity loads with the first Retrying: settings classes import this module
    from tenacity import RetryCallState, Retrying

RETRYABLE_STATUSES = frozenset({408, 429})  # plus every 5xx


def is_retryable_status(status: int) -> bool:
    """429 (and 408 Request Timeout) and 5xx; no other status gets a different answer next time."""
    return status in RETRYABLE_STATUSES or status >= 500


def is_retryable(exc: BaseException) -> bool:
    """Whether the failure ``exc`` is worth another try (see the module's docstring)."""
    flag = getattr(exc, "retryable", None)
    if flag is not None:
        return bool(flag)
    if isinstance(exc, (ConnectionError, TimeoutError)):  # resets, refusals, socket timeouts
        return True
    import requests  # only when a failure is judged: the policy itself does not need requests

    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110).

    None when absent or unreadable; never negative.
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with ``Retry-After`` or exponential back-off with jitter between them."""

    attempts: int = 6
    wait_initial: float = 0.5
    wait_max: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if self.wait_initial < 0 or self.wait_max < 0:
            raise ValueError("retry waits cannot be negative")

    def wait_seconds(self, attempt_number: int, retry_after: float | None = None) -> float:
        """How long to wait after failed attempt ``attempt_number`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.wait_max)
        # tenacity's wait_exponential_jitter, written out: its first parameter was renamed
        # between the releases this project allows (initial -> multiplier).
        backoff = self.wait_initial * 2 ** (attempt_number - 1) + random.uniform(0, self.wait_initial)
        return min(backoff, self.wait_max)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return self.wait_seconds(state.attempt_number, getattr(exc, "retry_after", None))

    def retrying(
        self,
        *,
        retry: Callable[[BaseException], bool] = is_retryable,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Retrying:
        """A tenacity ``Retrying`` with this policy; the last failure is re-raised as it was."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt

        return Retrying(
            retry=retry_if_exception(retry),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )

"""Calls made, per endpoint: what a run reports in ``WriteResult.calls`` and benchmarks compare
with the minimum (Σ ceil(changes / batch) per endpoint)."""

from __future__ import annotations

import threading
from collections import Counter


class CallCounter:
    """Thread-safe counts of HTTP requests sent (every attempt counts), by endpoint label."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.retries = 0  # attempts after the first, across endpoints

    def record(self, endpoint: str, *, retry: bool = False) -> None:
        with self._lock:
            self._counts[endpoint] += 1
            if retry:
                self.retries += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_endpoint(self) -> dict[str, int]:
        """A snapshot: endpoint label → requests sent."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, endpoint: str) -> int:
        with self._lock:
            return self._counts[endpoint]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self.retries = 0

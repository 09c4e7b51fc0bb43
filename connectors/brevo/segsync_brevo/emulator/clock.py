"""Timestamps as Brevo writes them, strictly increasing so ``modifiedSince`` paging is exact."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    def __init__(self) -> None:
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            current = datetime.now(timezone.utc)
            current = current.replace(microsecond=(current.microsecond // 1000) * 1000)
            if self._last is not None and current <= self._last:
                current = self._last + timedelta(milliseconds=1)
            self._last = current
            return current


def fmt(moment: datetime) -> str:
    """``2024-05-01T17:05:03.120Z``: UTC with milliseconds, as in Brevo's reference."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def parse(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value

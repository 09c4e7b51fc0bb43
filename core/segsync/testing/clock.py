"""A fake clock: the "now" of a sync run, under the test's control.

segsync reads the time of a run once, as its ``as_of`` (``RunOptions.as_of``, or the runner's
``clock`` when it is not given): segment windows (``opens(30d)``), implied consent that expires,
and the consent engine's "newer than" all compare against it, never against the wall clock.
A :class:`FakeClock` passed as the runner's clock (:class:`segsync.testing.Project` does that)
makes every run happen when the test says::

    clock = FakeClock("2025-01-01T00:00:00Z")
    project = Project(tmp_path, clock=clock)
    project.run()                  # as of 2025-01-01
    clock.advance(days=31)
    project.run()                  # as of 2025-02-01: a 30-day window has moved on
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def _aware(when: datetime | str) -> datetime:
    value = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else when
    if value.tzinfo is None:
        raise ValueError(f"the fake clock needs a time with a zone (e.g. 2025-01-01T00:00:00Z), not {when!r}")
    return value.astimezone(timezone.utc)


class FakeClock:
    """A clock that stands still until moved. Call it (or :meth:`now`) for the current time."""

    def __init__(self, start: datetime | str = "2025-01-01T00:00:00Z") -> None:
        self._now = _aware(start)

    def __call__(self) -> datetime:
        return self._now

    def now(self) -> datetime:
        """The current fake time (UTC, aware)."""
        return self._now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**units)`` (``days=1``); returns the new now.
        A clock never goes back: a negative step raises."""
        step = (delta or timedelta()) + timedelta(**units)
        if step < timedelta():
            raise ValueError(f"a clock does not go back ({step})")
        self._now += step
        return self._now

    def set(self, when: datetime | str) -> datetime:
        """Jump to ``when`` (aware, or ISO 8601 text with a zone), forward or back."""
        self._now = _aware(when)
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()!r})"

"""When full syncs run: every N minutes and/or on a cron expression (croniter), in UTC."""

from __future__ import annotations

from datetime import datetime, timezone


class ScheduleError(ValueError):
    pass


class Schedule:
    """``every_minutes`` (from the start, then after each run's start) and ``cron`` (five
    fields, UTC); either, both or neither (no scheduled syncs)."""

    def __init__(self, every_minutes: float | None = None, cron: str | None = None) -> None:
        from croniter import croniter

        if every_minutes is not None and every_minutes <= 0:
            raise ScheduleError(f"--every: {every_minutes} is not a positive number of minutes")
        if cron is not None and not croniter.is_valid(cron):
            raise ScheduleError(f"--cron: {cron!r} is not a cron expression (five fields: minute hour day month weekday)")
        self.every = every_minutes * 60 if every_minutes is not None else None
        self.cron = cron

    @property
    def active(self) -> bool:
        return self.every is not None or self.cron is not None

    def next_after(self, last_start: float | None, now: float) -> float | None:
        """The time (epoch seconds) of the next sync, given when the last one started; None
        without a schedule. Runs missed while one was running are not made up (no overlap)."""
        from croniter import croniter

        times = []
        if self.every is not None:
            times.append(now if last_start is None else max(last_start + self.every, now))
        if self.cron is not None:
            base = datetime.fromtimestamp(max(now, last_start or now), timezone.utc)
            times.append(croniter(self.cron, base).get_next(float))
        return min(times) if times else None

    def describe(self) -> str:
        parts = []
        if self.every is not None:
            parts.append(f"every {self.every / 60:g} min")
        if self.cron is not None:
            parts.append(f"cron {self.cron!r} (UTC)")
        return ", ".join(parts) or "no scheduled syncs"

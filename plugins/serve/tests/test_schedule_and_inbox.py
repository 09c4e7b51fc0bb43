"""The schedule's next times (interval and cron, UTC) and the inbox's durability."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from segsync import Batch, Stream
from segsync_serve.inbox import Inbox
from segsync_serve.schedule import Schedule, ScheduleError


def _t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_every_n_minutes_runs_at_once_then_n_minutes_after_each_start() -> None:
    schedule = Schedule(every_minutes=15)
    now = _t("2026-01-01T10:07:00")
    assert schedule.next_after(None, now) == now
    assert schedule.next_after(now, now + 60) == now + 900
    # A run that took longer than the interval is not made up: the next starts when it ends.
    assert schedule.next_after(now, now + 1000) == now + 1000


def test_a_cron_expression_gives_the_next_matching_minute_in_utc() -> None:
    schedule = Schedule(cron="*/15 * * * *")
    assert schedule.next_after(None, _t("2026-01-01T10:07:00")) == _t("2026-01-01T10:15:00")
    assert schedule.next_after(_t("2026-01-01T10:15:00"), _t("2026-01-01T10:15:30")) == _t("2026-01-01T10:30:00")
    both = Schedule(every_minutes=60, cron="0 12 * * *")
    assert both.next_after(_t("2026-01-01T11:30:00"), _t("2026-01-01T11:31:00")) == _t("2026-01-01T12:00:00")
    assert both.describe() == "every 60 min, cron '0 12 * * *' (UTC)"
    assert Schedule().next_after(None, 0.0) is None and Schedule().describe() == "no scheduled syncs"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every_minutes": 0}, "--every: 0 is not a positive number of minutes"),
    ({"cron": "every day"}, "--cron: 'every day' is not a cron expression (five fields: minute hour day month weekday)"),
])
def test_a_bad_schedule_is_refused_naming_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Schedule(**kwargs)
    assert str(caught.value) == message


ROW = {"email": "ann@example.com", "channel": "email", "purpose": "marketing", "status": "opted_out",
       "timestamp": "2026-01-02T03:04:05+00:00", "method": "email_link", "evidence": "test"}


def test_what_the_inbox_holds_survives_a_reopen_until_done(tmp_path: Path) -> None:
    store = tmp_path / "store.duckdb"
    inbox = Inbox.beside(store)
    first = inbox.add("mc", [Batch(Stream.CONSENT, None, [ROW], record_ids=["webhook 1"])], received_at=100.0)
    second = inbox.add("brevo", [Batch(Stream.CONTACTS, None, [{"email": "bo@example.com"}])], received_at=101.0)
    inbox.close()
    reopened = Inbox.beside(store)
    assert reopened.path == tmp_path / "store.duckdb.inbox.sqlite"
    pending = reopened.pending(max_attempts=3)
    assert [(p.id, p.received_at, p.connection, p.attempts) for p in pending] == [
        (first, 100.0, "mc", 0), (second, 101.0, "brevo", 0)]
    (batch,) = pending[0].batches
    assert (batch.stream, list(batch.rows), list(batch.record_ids), batch.cursor) == (
        Stream.CONSENT, [ROW], ["webhook 1"], None)
    assert pending[1].batches[0].record_ids is None
    reopened.failed([first], "StoreError: boom")
    reopened.failed([first], "StoreError: boom")
    assert reopened.counts(max_attempts=3) == (2, 0)
    reopened.failed([first], "StoreError: boom")
    assert reopened.counts(max_attempts=3) == (1, 1)
    assert [p.id for p in reopened.pending(max_attempts=3)] == [second]
    assert reopened.oldest(max_attempts=3) == 101.0
    reopened.done([second])
    assert reopened.counts(max_attempts=3) == (0, 1)
    reopened.close()

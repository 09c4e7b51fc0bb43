"""The one thread that writes: it applies the inbox and runs the scheduled syncs, one at a time.

Every run of this process goes through this thread, so two never overlap; a scheduled time that
passes while a run is going is not made up. Webhooks that arrive during a run wait in the
durable inbox and are applied right after it. When another process holds the store (a
``segsync sync`` from cron), nothing is written: deliveries stay pending and are retried every
``busy_retry`` seconds, and a scheduled sync is skipped (counted in ``/metrics``).

A run whose destinations did not all take their changes (a service down, records left to retry)
has still committed what it received: the opt-out is in the store. The worker then runs again
without reading any source (trigger ``retry``) after ``retry_wait`` seconds, doubling up to
``retry_wait_max``, until a run pushes everything; a later webhook or scheduled sync does too.

A run that raises (a bug, a broken configuration) leaves its deliveries pending with the error;
after ``max_attempts`` such runs they are given up (kept in the inbox, shown in ``/healthz`` and
``/metrics``), so one bad record cannot stop every later webhook.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segsync import mask_email
from segsync.live import LiveProject, StoreBusy

from segsync_serve.inbox import Inbox, Pending
from segsync_serve.metrics import Metrics
from segsync_serve.schedule import Schedule

log = logging.getLogger(__name__)
ADDRESS = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")


@dataclass
class LastRun:
    run_id: int | None
    trigger: str
    status: str
    finished_at: float
    deliveries: int = 0


class Worker:
    def __init__(
        self,
        project: LiveProject,
        inbox: Inbox,
        schedule: Schedule,
        metrics: Metrics,
        *,
        max_attempts: int = 5,
        busy_retry: float = 1.0,
        retry_wait: float = 30.0,
        retry_wait_max: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.inbox = inbox
        self.schedule = schedule
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.busy_retry = busy_retry
        self.retry_wait, self.retry_wait_max = retry_wait, retry_wait_max
        self._retry_at: float | None = None  # when to push again what a run left behind
        self._retries = 0
        self.clock = clock
        self.last_run: LastRun | None = None
        self.last_error: str | None = None
        self.running: str | None = None  # the trigger of the run going on now
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sync_requested = False
        self._last_sync_start: float | None = None
        self._thread = threading.Thread(target=self._loop, name="segsync-serve-worker", daemon=True)
        # Observers of each finished run of this process: (summary, deliveries it applied).
        self.observers: list[Callable[[Any, list[Pending]], None]] = []

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        self._refresh_gauges()
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the run going on (if any) has finished."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """Something was queued: apply it now."""
        self._wake.set()

    def request_sync(self) -> None:
        """Run a full sync as soon as the run going on (if any) has finished."""
        self._sync_requested = True
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            busy = self._apply_pending()
            if not busy and self._retry_at is not None and self._retry_at <= self.clock():
                busy = self._push_again()
            now = self.clock()
            due = self.schedule.next_after(self._last_sync_start, now)
            if not self._stop.is_set() and (self._sync_requested or (due is not None and due <= now)):
                self._sync_requested = False
                self._last_sync_start = now
                busy = self._sync() or busy
                continue  # webhooks that came during the sync go first
            waits = [self.busy_retry] if busy else []
            for moment in (due, self._retry_at):
                if moment is not None:
                    waits.append(max(0.0, moment - self.clock()))
            self._wake.wait(min(waits) if waits else None)

    def _apply_pending(self) -> bool:
        """Apply every pending delivery in one run; True when the store was busy."""
        pending = self.inbox.pending(self.max_attempts)
        if not pending:
            return False
        received: dict[str, list] = {}
        for delivery in pending:
            received.setdefault(delivery.connection, []).extend(delivery.batches)
        self.running = "webhook"
        try:
            summary = self.project.apply(received)
        except StoreBusy:
            self.metrics.busy.inc()
            return True
        except Exception as exc:  # noqa: BLE001 - kept pending with the error, then given up
            self._failed("webhook", exc, pending)
            return False
        finally:
            self.running = None
        ended = self.clock()
        self.inbox.done([d.id for d in pending])
        for delivery in pending:
            self.metrics.lag.observe(max(0.0, ended - delivery.received_at))
        self._finished(summary, pending)
        return False

    def _push_again(self) -> bool:
        """A run that reads nothing and pushes what earlier runs left; True when the store was busy."""
        self.running = "retry"
        try:
            summary = self.project.apply({}, trigger="retry")
        except StoreBusy:
            self.metrics.busy.inc()
            return True
        except Exception as exc:  # noqa: BLE001 - reported; tried again later
            self._failed("retry", exc, [])
            return False
        finally:
            self.running = None
        self._finished(summary, [])
        return False

    def _sync(self) -> bool:
        self.running = "schedule"
        try:
            summary = self.project.sync()
        except StoreBusy:
            self.metrics.skipped.inc()
            log.warning("scheduled sync skipped: another process holds the store")
            return True
        except Exception as exc:  # noqa: BLE001 - reported; the next scheduled sync tries again
            self._failed("schedule", exc, [])
            return False
        finally:
            self.running = None
        self._finished(summary, [])
        return False

    # -- bookkeeping ------------------------------------------------------------------------

    def _finished(self, summary: Any, deliveries: list[Pending]) -> None:
        if summary.failed:
            self._retries += 1
            wait = min(self.retry_wait * 2 ** (self._retries - 1), self.retry_wait_max)
            self._retry_at = self.clock() + wait
            log.warning("run %s left changes to push: pushing again in %.0f s", summary.run_id, wait)
        else:
            self._retry_at, self._retries = None, 0
        self.metrics.run_finished(summary)
        self.metrics.last_run.labels(summary.trigger).set(self.clock())
        self.last_run = LastRun(summary.run_id, summary.trigger, str(summary.status), self.clock(), len(deliveries))
        self._refresh_gauges()
        log.info("run %s (%s): %s, %d webhook deliveries", summary.run_id, summary.trigger, summary.status,
                 len(deliveries))
        for observer in list(self.observers):
            try:
                observer(summary, deliveries)
            except Exception:  # noqa: BLE001 - an observer must not stop the worker
                log.exception("an observer of finished runs failed")

    def _failed(self, trigger: str, exc: Exception, deliveries: list[Pending]) -> None:
        # Addresses masked: this text is logged, kept in the inbox and shown by /healthz.
        self.last_error = ADDRESS.sub(lambda m: mask_email(m.group()),
                                      f"{trigger} run failed: {type(exc).__name__}: {exc}")
        log.error(self.last_error)
        self.metrics.errors.labels(f"{trigger}_run").inc()
        if deliveries:
            self.inbox.failed([d.id for d in deliveries], self.last_error)
            given_up = [d for d in deliveries if d.attempts + 1 >= self.max_attempts]
            if given_up:
                self.metrics.errors.labels("delivery_given_up").inc(len(given_up))
        self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        waiting, dead = self.inbox.counts(self.max_attempts)
        self.metrics.queue.set(waiting)
        self.metrics.dead.set(dead)

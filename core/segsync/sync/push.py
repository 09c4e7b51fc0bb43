"""The push stage: one destination's diff, batch by batch, through the ``segsync_push`` hook.

For each batch of the :class:`~segsync.sync.diff.DestinationDiff` the :class:`~segsync.sync.gate.Gate`
stops what consent does not allow before any hook sees it; the rest goes to the hook
implementations with a :class:`~segsync.sync.gate.GatedConnector` bound to the batch (the core's
own implementation, :mod:`segsync.default_plugins.push`, calls ``connector.write``). Every
settled batch, and every write batch a connector reports while it writes
(``Connector.write_batch_size``), goes to the acknowledgement at once, so a crash re-sends only
what is still in flight. A plugin that raises stops this destination's push; what was not
acknowledged by then is planned again on the next run.

A batch holds at most ``Connector.max_batch_size`` changes. A connector without that limit
gets the whole diff as one batch: one write call per run, acknowledged once after it. The diff
is still read and gated page by page, so per-change work stays the same whatever the batch
size. A connector without that limit that offers a write session (``Connector.write_session``,
e.g. the files destination, which rewrites its audience atomically) gets the diff a page at a
time instead, each page through the hook like a batch, and one ``commit`` at the end: its
pages are acknowledged (:meth:`~segsync.sync.ack.Acknowledgement.commit_pending`) only once the
commit returned, so nothing holds every change of a large run at once and a crash before the
commit acknowledges nothing.

While a destination is pushed, Python's cyclic garbage collector does not run on its own
(:func:`collector_paused`); the push collects the young generations itself once a page. A page
is tens of thousands of short-lived objects (changes, outcomes, their dicts and tuples) that hold
no reference cycles and are freed as soon as the page is acknowledged, but with the default
thresholds the collector ran every 700 of them and, every hundred runs, walked every object
alive: about a third of the push's CPU at 1M changes (bench/RESULTS-sync.md).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from segsync.collector import collector_paused
from segsync.connector import Connector, Outcome, WriteResult, WriteSession
from segsync.plugins import PluginHost
from segsync.progress import Reporter
from segsync.sync.diff import DestinationDiff, PlannedChange
from segsync.sync.gate import Blocked, Gate, GatedConnector

log = logging.getLogger(__name__)

# Changes read from the diff and gated at a time when the connector sets no max_batch_size.
PAGE_SIZE = 10_000


@dataclass(frozen=True)
class WrittenBatch:
    """Planned changes of ``diff`` and the outcomes the gate settled for them."""

    diff: DestinationDiff
    planned: tuple[PlannedChange, ...]
    result: WriteResult
    # A page of a write session: its ok outcomes are final only once the session commits.
    pending: bool = False


@dataclass
class PushResult:
    """What the push stage did for one destination (outcomes went to the acknowledgement)."""

    diff: DestinationDiff
    write_calls: int = 0
    blocked: int = 0  # changes a plugin wrote that the consent gate blocked
    problems: list[str] = field(default_factory=list)  # plugins that broke the push contract
    contract_errors: list[str] = field(default_factory=list)  # the connector broke its contract
    error: str | None = None  # a plugin raised: nothing after that batch was pushed


class Acknowledger(Protocol):
    """What the push stage hands its outcomes to (:class:`segsync.sync.ack.Acknowledgement`)."""

    def refused(self, gate: Gate, blocked: Sequence[Blocked], planned: Sequence[PlannedChange]) -> None: ...

    def written(self, batch: WrittenBatch) -> None: ...

    def commit_pending(self) -> None: ...

    def drop_pending(self) -> None: ...


def push(
    diff: DestinationDiff,
    gate: Gate,
    connector: Connector,
    host: PluginHost,
    ack: Acknowledger,
    reporter: Reporter,
) -> PushResult:
    """Push every batch of ``diff`` to ``connector`` through the hook; outcomes go to ``ack``."""
    if gate.diff is not diff:
        raise ValueError(f"the gate was built for the diff of {gate.destination!r}, not this one")
    name = diff.destination
    plugin = host.connector_plugin(connector.type_name)
    pushed = PushResult(diff)
    only_core = host.only_core_pushes()
    in_flight: dict[str, PlannedChange] = {}  # this batch's changes not yet acknowledged

    def acknowledge(outcomes: Sequence[Outcome]) -> None:
        # A finished write batch, reported during `write` (connectors with write_batch_size):
        # committed now, so a crash re-sends only what is still in flight.
        done = [in_flight.pop(o.contact_key) for o in outcomes if o.contact_key in in_flight]
        if done:
            ack.written(WrittenBatch(diff, tuple(done), WriteResult(list(outcomes), 0)))

    session = connector.write_session() if connector.max_batch_size is None and diff.total else None
    page_size = PAGE_SIZE if session is not None else connector.max_batch_size
    with reporter.phase(f"push {name}", total=diff.total) as advance, collector_paused():
        for batch, planned_count in _gated_batches(diff, gate, ack, page_size):
            if not batch:
                advance(planned_count)
                continue
            # Hooks get copies of the batch and a connector bound to it: only changes equal
            # to the push stage's own, checked again, reach the connector (sync/gate.py).
            gated = GatedConnector(connector, gate, [p.change for p in batch], host.calling_plugin,
                                   report=acknowledge, plugin=plugin,
                                   writer=session.write if session is not None else None, only_core=only_core)
            in_flight.clear()
            in_flight.update((p.change.contact_key, p) for p in batch)
            try:
                result = host.push(gated, gated.handed_over(), gate.run_id)
            except Exception as exc:
                # What was not reported before the failure is planned again next run.
                pushed.error = _failed(host, exc, plugin, name)
                break
            finally:
                gated.close()
            settled = gated.settle(result)
            pushed.blocked += settled.blocked
            pushed.problems.extend(p for p in settled.problems if p not in pushed.problems)
            pushed.contract_errors.extend(e for e in settled.contract_errors if e not in pushed.contract_errors)
            pushed.write_calls += settled.result.calls
            ack.written(WrittenBatch(diff, tuple(in_flight.values()), settled.result, pending=session is not None))
            advance(planned_count)
        if session is not None:
            _finish_session(session, pushed, ack, host, plugin, name)
    return pushed


def _failed(host: PluginHost, exc: Exception, plugin: str | None, name: str) -> str:
    raiser = host.raised_by(exc, "segsync_push") or plugin
    error = f"plugin {raiser!r} (connection {name!r}) failed writing: {type(exc).__name__}: {exc}"
    log.error(error)
    return error


def _finish_session(
    session: WriteSession, pushed: PushResult, ack: Acknowledger, host: PluginHost, plugin: str | None, name: str
) -> None:
    """Commit the session's pages and acknowledge them; after a failure, drop both."""
    if pushed.error is None:
        try:
            pushed.write_calls += session.commit()
        except Exception as exc:
            pushed.error = _failed(host, exc, plugin, name)
    if pushed.error is None:
        ack.commit_pending()
        return
    try:
        session.abort()
    finally:
        ack.drop_pending()


def _gated_batches(
    diff: DestinationDiff, gate: Gate, ack: Acknowledger, max_batch_size: int | None
) -> Iterator[tuple[list[PlannedChange], int]]:
    """The batches to push: the planned changes the gate lets through, at most
    ``max_batch_size`` a batch (None: all of them in one), each with how many planned changes
    it settles (those the gate stopped included: they go to ``ack`` as they are found)."""
    batch: list[PlannedChange] = []
    planned_count = 0
    for page in diff.batches(max_batch_size or PAGE_SIZE):
        gc.collect(1)  # what the pages before this one left (collector_paused)
        planned_count += len(page)
        _, blocked = gate.split([p.change for p in page])
        if blocked:
            ack.refused(gate, blocked, page)
            blocked_keys = {b.change.contact_key for b in blocked}
            page = [p for p in page if p.change.contact_key not in blocked_keys]
        batch.extend(page)
        if max_batch_size is not None:
            yield batch, planned_count
            batch, planned_count = [], 0
    if max_batch_size is None and planned_count:
        yield batch, planned_count



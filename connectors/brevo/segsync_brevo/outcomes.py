"""Per-change outcome bookkeeping: the worst answer a change got wins (rejected > retryable).

With a ``report`` callback (``write(changes, report=...)``), each change is also reported as
soon as the last call it is part of is done: :meth:`Outcomes.expect` counts a change into a
call before any call is made, :meth:`Outcomes.settle` counts it out when the call is over
(answered, failed or skipped), and a change whose count reaches zero is reported with its
final outcome. The runner acknowledges each report at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from segsync import ContactChange, Outcome, OutcomeReport

from segsync.collector import collector_paused


class Outcomes:
    def __init__(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> None:
        self.changes = changes
        self._rejected: dict[int, tuple[str, str | None]] = {}
        self._retryable: dict[int, str] = {}
        self._report = report
        self._pending: Counter[int] = Counter()
        self._reported: dict[int, Outcome] = {}  # the outcome each change was reported with
        self._ok: list[Outcome] | None = None  # every change's ok outcome, built ahead (build_ahead)

    def reject(self, indices: Iterable[int], reason: str, field: str | None = None) -> None:
        for index in indices:
            self._rejected.setdefault(index, (reason, field))

    def retry(self, indices: Iterable[int], reason: str) -> None:
        for index in indices:
            self._retryable.setdefault(index, reason)

    def failed(self, index: int) -> bool:
        return index in self._rejected

    def expect(self, indices: Iterable[int]) -> None:
        """These changes are part of one more call."""
        self._pending.update(indices)

    def settle(self, indices: Iterable[int]) -> None:
        """One call these changes were part of is over; report those with no call left."""
        done = []
        for index in indices:
            self._pending[index] -= 1
            if self._pending[index] <= 0:
                done.append(index)
        self._send(done)

    def settle_idle(self) -> None:
        """Report the changes that need no call at all (refused while planning, or no change)."""
        self._send([i for i in range(len(self.changes)) if self._pending[i] <= 0])

    def _send(self, indices: list[int]) -> None:
        fresh = [i for i in dict.fromkeys(indices) if i not in self._reported]
        if self._report is None or not fresh:
            return
        outcomes = [self.outcome(i) for i in fresh]
        self._reported.update(zip(fresh, outcomes))
        self._report(outcomes)

    def outcome(self, index: int) -> Outcome:
        change = self.changes[index]
        if index in self._rejected:
            reason, field = self._rejected[index]
            return Outcome.rejected(change.contact_key, reason, field)
        if index in self._retryable:
            return Outcome.retryable(change.contact_key, self._retryable[index])
        if self._ok is not None:
            return self._ok[index]
        return Outcome.ok(change.contact_key, change.external_id)

    def build_ahead(self) -> None:
        """Build every change's ``ok`` outcome now, while the write waits for Brevo anyway (an
        import's processing): :meth:`outcome` hands it out unless the change is refused or to
        be retried by then. 100,000 of them took ~0.2 s after the last poll otherwise."""
        with collector_paused():
            self._ok = [Outcome.ok(change.contact_key, change.external_id) for change in self.changes]

    def result(self) -> list[Outcome]:
        """Every change's outcome: the one it was reported with, else built now (one object per
        change, no cycles: the collector waits)."""
        reported = self._reported
        with collector_paused():
            return [reported.get(index) or self.outcome(index) for index in range(len(self.changes))]

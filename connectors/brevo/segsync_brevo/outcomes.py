"""Per-change outcome bookkeeping: the worst answer a change got wins (rejected > retryable)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from segsync.connector import ContactChange, Outcome


class Outcomes:
    def __init__(self, changes: Sequence[ContactChange]) -> None:
        self.changes = changes
        self._rejected: dict[int, tuple[str, str | None]] = {}
        self._retryable: dict[int, str] = {}

    def reject(self, indices: Iterable[int], reason: str, field: str | None = None) -> None:
        for index in indices:
            self._rejected.setdefault(index, (reason, field))

    def retry(self, indices: Iterable[int], reason: str) -> None:
        for index in indices:
            self._retryable.setdefault(index, reason)

    def failed(self, index: int) -> bool:
        return index in self._rejected

    def result(self) -> list[Outcome]:
        out = []
        for index, change in enumerate(self.changes):
            if index in self._rejected:
                reason, field = self._rejected[index]
                out.append(Outcome.rejected(change.contact_key, reason, field))
            elif index in self._retryable:
                out.append(Outcome.retryable(change.contact_key, self._retryable[index]))
            else:
                out.append(Outcome.ok(change.contact_key, change.external_id))
        return out

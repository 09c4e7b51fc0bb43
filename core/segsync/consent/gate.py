"""The consent gate: the core's last check between the diff and any connector's write.

The desired state already derives every status from effective consent, so the gate should never
fire for what the planner produced; it is defence in depth against plugins (a ``segsync_push``
implementation that injects or alters changes) and planner bugs. It is applied twice:

1. the runner splits each planned batch before calling the ``segsync_push`` hook, so a blocked
   change is never handed to any hook implementation;
2. the connector object every hook implementation receives is a :class:`GatedConnector`, whose
   ``write`` checks its changes again against the same effective consent, so a hook that calls
   ``connector.write`` with changes of its own (as the core's default push does) is checked too.

Every block is recorded: a record error (phase ``gate``) and a ``status_changes`` row with
outcome ``blocked``. What no in-process check can enforce: a plugin that reaches around the
connector object (its private attributes, or an API client of its own) — plugins run with the
same rights as segsync itself; install only trusted ones.

Rules, per change (``op`` ``delete`` always passes: removing someone never mails them):

* an erased person (their address matches an erasure hash) gets no upsert at all;
* ``subscribed`` needs effective status ``subscribed``; ``pending`` needs ``subscribed``, or
  ``pending`` for someone the destination already holds (pending is not consent: nobody is
  *added* while awaiting confirmation);
* ``none`` may only reach a destination that already holds the person (it stops mailing them);
  an *add* without consent is blocked;
* opt-out statuses (``unsubscribed``, ``cleaned``, ``complained``) always pass; anything else is
  blocked as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from segsync.connector import Connector, ContactChange, Outcome, WriteResult
from segsync.consent import suppression
from segsync.consent.rules import EFFECTIVE_TABLE, OPT_OUT_STATUSES
from segsync.model import mask_email
from segsync.store import Store


@dataclass(frozen=True)
class Blocked:
    change: ContactChange
    reason: str
    ledger_id: int | None = None
    suppression_id: int | None = None


@dataclass
class Gate:
    """Checks changes for one destination against ``_effective_consent`` (see :mod:`.rules`)."""

    store: Store
    destination: str
    run_id: int | None
    blocked: list[Blocked] = field(default_factory=list)

    def _effective(self, keys: list[str]) -> dict[str, tuple[str, int | None, int | None]]:
        rows = self.store.con.execute(
            f"SELECT contact_key, status, ledger_id, suppression_id FROM {EFFECTIVE_TABLE} "
            "WHERE contact_key IN (SELECT unnest(?::VARCHAR[]))",
            [keys],
        ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def split(self, changes: Sequence[ContactChange]) -> tuple[list[ContactChange], list[Blocked]]:
        upserts = [c.contact_key for c in changes if c.op != "delete"]
        effective = self._effective(upserts) if upserts else {}
        erased = suppression.erased(self.store.con, upserts)
        allowed: list[ContactChange] = []
        blocked: list[Blocked] = []
        for change in changes:
            status, ledger_id, suppression_id = effective.get(change.contact_key, ("none", None, None))
            reason = _reason(change, status, change.contact_key in erased)
            if reason is None:
                allowed.append(change)
            else:
                blocked.append(Blocked(change, reason, ledger_id, suppression_id))
        return allowed, blocked

    def record(self, blocked: Iterable[Blocked], by: str) -> None:
        """Record blocks as record errors and in the status audit; ``by`` says who tried."""
        blocked = list(blocked)
        if not blocked:
            return
        con = self.store.con
        for b in blocked:
            reason = f"blocked by the consent gate ({by}): {b.reason}"
            self.store.record_error(self.run_id, self.destination, "gate", mask_email(b.change.contact_key),
                                    "status", reason)
            con.execute(
                """
                INSERT INTO status_changes (run_id, destination, contact_key, channel, purpose, action,
                    before_status, after_status, ledger_id, suppression_id, policy, outcome, reason, changed_at)
                VALUES (?, ?, ?, 'email', 'marketing', ?, ?, ?, ?, ?, NULL, 'blocked', ?, now())
                """,
                [self.run_id, self.destination, b.change.contact_key, b.change.op,
                 b.change.previous_status, b.change.status, b.ledger_id, b.suppression_id, reason],
            )
        self.blocked.extend(blocked)


def _reason(change: ContactChange, effective: str, erased: bool) -> str | None:
    if change.op == "delete":
        return None
    if erased:
        return "the person was erased; only a hashed suppression entry remains"
    status = change.status
    if status == "subscribed":
        return None if effective == "subscribed" else f"no consent to subscribe (effective status: {effective})"
    if status == "pending":
        if effective == "subscribed" or (effective == "pending" and change.previous_status is not None):
            return None
        return f"pending is not consent; not added (effective status: {effective})"
    if status == "none":
        return None if change.previous_status is not None else "no consent on record; not added"
    if status in OPT_OUT_STATUSES:
        return None
    return f"unknown subscription status {status!r}"


class GatedConnector:
    """What ``segsync_push`` implementations receive: the destination's connector, with a
    ``write`` that passes every change through the gate first. Everything else is delegated."""

    def __init__(self, connector: Connector, gate: Gate) -> None:
        self._connector = connector
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        allowed, blocked = self._gate.split(changes)
        self._gate.record(blocked, by="a segsync_push plugin wrote it through the connector")
        result = self._connector.write(allowed) if allowed else WriteResult([], 0)
        refused = [Outcome.rejected(b.change.contact_key, f"blocked by the consent gate: {b.reason}", "status")
                   for b in blocked]
        return WriteResult([*result.outcomes, *refused], result.calls)

    def __repr__(self) -> str:
        return f"<gated {self._connector!r}>"

"""Delivering the trigger outbox: after the run's memberships (and its push) committed.

Per trigger, the rows still owed (``pending``, ``failed`` and, after a crash, ``sending``) go
out in batches. A batch is marked ``sending`` (and its attempt counted) and committed *before*
the action runs, and its outcome is committed right after, so a crash in between leaves rows
``sending``: the next delivery hands them over again as *in doubt*, with the same idempotency
key, and the receiving side drops the repeat (docs/triggers.md, "Exactly once").

Consent: a trigger whose action reaches the person through an ESP (event, tag) is sent only for
people the connection acknowledged as ``subscribed`` and whose effective consent, under that
connection's policy, is ``subscribed`` now; anyone else is ``blocked`` (never sent, not retried).
Webhook and file triggers reach the business's own systems and carry everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from segsync.config import ConsentSettings
from segsync.connector import Connector
from segsync.consent.rules import EffectiveConsent
from segsync.statuses import SubscriptionStatus
from segsync.store import Store
from segsync.sync.summary import TriggerReport

from .actions import Action, ActionError, ConnectorAction, Delivery, FileAction, Result, WebhookAction
from .definitions import TriggerDef

log = logging.getLogger(__name__)

OWED = ("pending", "failed", "sending")
ESP_BATCH = 100


def owed(store: Store, trigger: str) -> list[Delivery]:
    rows = store.con.execute(
        """
        SELECT id, idempotency_key, trigger, segment, contact_key, change, occurred_at, origin, run_id,
               status = 'sending'
        FROM trigger_outbox WHERE trigger = ? AND status IN (SELECT unnest(?::VARCHAR[]))
        ORDER BY id
        """,
        [trigger, list(OWED)],
    ).fetchall()
    return [Delivery(*row) for row in rows]


def deliver(
    store: Store,
    triggers: Sequence[TriggerDef],
    *,
    project_dir: Path,
    connectors: Mapping[str, Connector],
    consent: ConsentSettings,
    as_of: datetime,
    run_id: int | None,
    queued: Mapping[str, int] | None = None,
) -> list[TriggerReport]:
    """Deliver every configured trigger's owed rows; one report per trigger."""
    reports = []
    for trigger in triggers:
        report = TriggerReport(trigger.name, trigger.action, queued=(queued or {}).get(trigger.name, 0))
        try:
            _deliver_one(store, trigger, report, project_dir, connectors, consent, as_of, run_id)
        except ActionError as exc:
            report.error = str(exc)
            log.error("%s", exc)
        report.settle()
        reports.append(report)
    return reports


def _deliver_one(
    store: Store,
    trigger: TriggerDef,
    report: TriggerReport,
    project_dir: Path,
    connectors: Mapping[str, Connector],
    consent: ConsentSettings,
    as_of: datetime,
    run_id: int | None,
) -> None:
    rows = owed(store, trigger.name)
    if not rows:
        return
    if trigger.reaches_person:
        rows = _gate(store, trigger, rows, consent, as_of, run_id, report)
        if not rows:
            return
    action = _action(trigger, project_dir, connectors)
    size = ESP_BATCH if trigger.reaches_person else (trigger.batch_size if trigger.action == "webhook" else len(rows))
    try:
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            _mark_sending(store, batch)
            try:
                results = action.send(batch)
            except Exception as exc:  # a bug in a connector: this batch stays owed, the run goes on
                log.exception("trigger %r: sending failed", trigger.name)
                results = [Result("failed", f"{type(exc).__name__}: {exc}")] * len(batch)
            _record(store, trigger, batch, results, run_id, report)
    finally:
        action.close()


def _action(trigger: TriggerDef, project_dir: Path, connectors: Mapping[str, Connector]) -> Action:
    if trigger.action == "webhook":
        return WebhookAction(trigger, project_dir)
    if trigger.action == "file":
        return FileAction(trigger, project_dir)
    return ConnectorAction(trigger, connectors.get(trigger.connection or ""))


def _gate(
    store: Store,
    trigger: TriggerDef,
    rows: list[Delivery],
    consent: ConsentSettings,
    as_of: datetime,
    run_id: int | None,
    report: TriggerReport,
) -> list[Delivery]:
    """The rows whose person may be reached through ``trigger.connection`` now; the others are
    marked ``blocked`` (consent) or left ``failed`` (not a member there yet: retried)."""
    connection = trigger.connection
    assert connection is not None
    keys = sorted({r.contact_key for r in rows})
    with EffectiveConsent.build(store.con, {connection: consent.for_connection(connection)}, consent.countries,
                                as_of=as_of, clock_skew=consent.clock_skew, run_id=run_id) as effective:
        decisions = effective.decisions(connection, keys)
    held = dict(store.con.execute(
        "SELECT contact_key, status FROM acknowledged WHERE destination = ? "
        "AND contact_key IN (SELECT unnest(?::VARCHAR[]))", [connection, keys]).fetchall())
    passing, blocked, waiting = [], [], []
    for row in rows:
        decision = decisions.get(row.contact_key)
        status = decision.status if decision is not None else SubscriptionStatus.NONE
        if status != SubscriptionStatus.SUBSCRIBED:
            blocked.append((row, f"consent gate: {status} under policy "
                                 f"{consent.for_connection(connection).name!r}; no {trigger.action} sent"))
        elif held.get(row.contact_key) != SubscriptionStatus.SUBSCRIBED:
            waiting.append((row, f"not a subscribed member of {connection!r} yet"))
        else:
            passing.append(row)
    if blocked:
        _record(store, trigger, [r for r, _ in blocked], [Result("blocked", why) for _, why in blocked],
                run_id, report)
    if waiting:
        _record(store, trigger, [r for r, _ in waiting], [Result("failed", why) for _, why in waiting],
                run_id, report)
    return passing


def _mark_sending(store: Store, batch: Sequence[Delivery]) -> None:
    store.con.execute(
        "UPDATE trigger_outbox SET status = 'sending', attempts = attempts + 1, updated_at = now() "
        "WHERE id IN (SELECT unnest(?::BIGINT[]))",
        [[d.id for d in batch]],
    )


def _record(
    store: Store,
    trigger: TriggerDef,
    batch: Sequence[Delivery],
    results: Sequence[Result],
    run_id: int | None,
    report: TriggerReport,
) -> None:
    """Commit each row's outcome, count it, and keep a record error for each one not delivered."""
    by_status: dict[str, list[tuple[Delivery, Result]]] = {}
    for d, r in zip(batch, results):
        by_status.setdefault(r.status, []).append((d, r))
    with store.transaction():
        for status, pairs in by_status.items():
            store.con.execute(
                "UPDATE trigger_outbox SET status = $status, updated_at = now(), "
                "last_error = x.reason, "
                "delivered_at = CASE WHEN $status = 'delivered' THEN now() ELSE delivered_at END, "
                "delivered_run = CASE WHEN $status = 'delivered' THEN $run ELSE delivered_run END "
                "FROM (SELECT unnest($ids::BIGINT[]) AS id, unnest($reasons::VARCHAR[]) AS reason) x "
                "WHERE trigger_outbox.id = x.id",
                {"status": status, "run": run_id, "ids": [d.id for d, _ in pairs],
                 "reasons": [None if r.reason is None else _redact(r.reason) for _, r in pairs]},
            )
            if status != "delivered" and run_id is not None:
                for d, r in pairs:
                    store.record_error(run_id=run_id, connection=trigger.name, phase="trigger",
                                       record=d.contact_key, field=trigger.action, reason=r.reason or status,
                                       retryable=status == "failed")
    for status, pairs in by_status.items():
        setattr(report, status, getattr(report, status) + len(pairs))
        if status != "delivered":
            for _, r in pairs[: max(0, 3 - len(report.reasons))]:
                report.reasons.append(_redact(r.reason or status))


def _redact(text: str) -> str:
    from segsync.redaction import redact

    return redact(text)

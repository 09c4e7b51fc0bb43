"""The acknowledge stage: what one destination answered, committed per write batch, and audited.

For every settled batch (or write batch a connector reports while it writes) the
:class:`Acknowledgement` commits, in one transaction: ``ok`` outcomes as the destination's new
acknowledged state, memberships and external ids; refusals remembered in ``rejected`` (see
:mod:`segsync.sync.rejections`) and as record errors; ``retryable`` and missing outcomes as
retryable record errors (planned again next run); and the status-changing upserts in the
``status_changes`` audit, with the ledger record or suppression that decided them. At the end
(:meth:`Acknowledgement.finish`) it settles the destination's status and stores it with the run.

The pages of a connector's write session (``WrittenBatch.pending``) are final only once the
session commits: their refusals and errors are committed as they come; of their ``ok`` outcomes
only the contact keys (and external ids) are kept, in a table of their own, and acknowledged
together by :meth:`Acknowledgement.commit_pending` (or dropped by
:meth:`Acknowledgement.drop_pending` when the commit failed). The rest of what an acknowledgement
records (action, statuses, state hash, tags) is then read by key from the diff
(:meth:`~segsync.sync.diff.DestinationDiff.planned_sql`), the rows the planned changes were built
from, in one join, instead of being copied out of a million Python objects a page at a time.

Everything it writes comes from the planned changes the push stage hands over (or the diff rows
they were read from) and the run's effective consent; it reads no other stage's tables.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

from segsync.consent.rules import EffectiveConsent
from segsync.model import mask_email
from segsync.redaction import redact
from segsync.statuses import OutcomeStatus, PartStatus
from segsync.store import Store
from segsync.sync.diff import DestinationDiff, PlannedChange
from segsync.sync.gate import Blocked, Gate
from segsync.sync.push import PushResult, WrittenBatch
from segsync.sync.summary import DestinationReport


class Acknowledgement:
    """Acknowledges the outcomes of one destination's push in its run, into ``report``."""

    _numbers = itertools.count(1)

    def __init__(
        self, store: Store, consent: EffectiveConsent, diff: DestinationDiff, report: DestinationReport
    ) -> None:
        if not isinstance(diff, DestinationDiff):
            raise TypeError(f"acknowledgements are of a DestinationDiff, not a {type(diff).__name__}")
        if diff.consent is not consent:
            raise ValueError(f"the diff of {diff.destination!r} was planned against another run's consent")
        self.store = store
        self.consent = consent
        self.diff = diff
        self.destination = diff.destination
        self.run_id = consent.run_id
        self.report = report
        # This batch's answers, staged once for the set-based writes (private, unique per object).
        self._batch = f"_acknowledging_{next(self._numbers)}"
        # The ok answers of a write session's pages, acknowledged once it commits.
        self._pending = f"{self._batch}_pending"
        self._has_pending = False

    def _check(self, diff: DestinationDiff) -> None:
        if diff is not self.diff:
            raise ValueError(f"outcomes of the diff of {diff.destination!r} handed to the acknowledgement "
                             f"of another diff ({self.destination!r})")

    def refused(self, gate: Gate, blocked: Sequence[Blocked], planned: Sequence[PlannedChange]) -> None:
        """Planned changes the gate stopped: recorded, and remembered as rejected for their state
        (like a destination's refusal) so they are not planned again until that state changes."""
        self._check(gate.diff)
        by_key = {p.change.contact_key: p for p in planned}
        with self.store.transaction():
            gate.record(blocked, by="planned change")
            self._stage([(by_key[b.change.contact_key], OutcomeStatus.REJECTED, f"consent gate: {b.reason}", None)
                         for b in blocked if b.change.contact_key in by_key])
            self._remember(refused_by="gate")
        self.report.records_blocked += len(blocked)
        self.report.records_rejected += len(blocked)

    def written(self, batch: WrittenBatch) -> None:
        """Commit one batch's outcomes (a write batch, or what the gate settled for a batch)."""
        if not isinstance(batch, WrittenBatch):
            raise TypeError(f"the acknowledgement takes a WrittenBatch from the push stage, "
                            f"not a {type(batch).__name__}")
        self._check(batch.diff)
        store, name, run_id, report = self.store, self.destination, self.run_id, self.report
        by_key = {}
        for outcome in batch.result.outcomes:
            by_key.setdefault(outcome.contact_key, outcome)
        planned = {p.change.contact_key: p for p in batch.planned}
        ok_keys: list[str] = []
        external_ids: dict[str, str] = {}
        rejections: dict[str, str] = {}
        with store.transaction():
            for key in planned:
                outcome = by_key.get(key)
                if outcome is None:
                    report.records_retrying += 1
                    store.record_error(
                        run_id=run_id, connection=name, phase="push", record=mask_email(key), field=None,
                        reason="the connector returned no outcome for this record", retryable=True,
                    )
                elif outcome.status == OutcomeStatus.OK:
                    ok_keys.append(key)
                    if outcome.external_id:
                        external_ids[key] = outcome.external_id
                elif outcome.status == OutcomeStatus.REJECTED:
                    report.records_rejected += 1
                    rejections[key] = redact(outcome.reason or "rejected")  # stored in the audit
                    store.record_error(
                        run_id=run_id, connection=name, phase="push", record=mask_email(key),
                        field=outcome.field, reason=outcome.reason or "rejected",
                    )
                else:
                    report.records_retrying += 1
                    store.record_error(
                        run_id=run_id, connection=name, phase="push", record=mask_email(key),
                        field=outcome.field, reason=outcome.reason or "retryable", retryable=True,
                    )
            refused = [(planned[k], OutcomeStatus.REJECTED, reason, None) for k, reason in rejections.items()]
            if batch.pending:
                self._hold(ok_keys, external_ids)
                if refused:  # final at once, unlike the ok answers
                    self._stage(refused)
                    self._remember(refused_by="destination")
                    self._audit(self._batch)
            else:
                self._stage([(planned[k], OutcomeStatus.OK, None, external_ids.get(k)) for k in ok_keys] + refused)
                if refused:  # (this reads the whole batch: skipped when it has no refusal)
                    self._remember(refused_by="destination")
                self._acknowledge(self._batch)
                self._audit(self._batch)
        if not batch.pending:
            report.records_written += len(ok_keys)

    def commit_pending(self) -> None:
        """The write session committed: acknowledge the ok outcomes of its pages."""
        if not self._has_pending:
            return
        con = self.store.con
        with self.store.transaction():
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {self._batch} AS
                SELECT p.contact_key, d.op, d.action, d.status, d.previous_status, d.state_hash, d.tags,
                       'ok' AS outcome, NULL::VARCHAR AS reason, p.external_id
                FROM {self._pending} p JOIN ({self.diff.planned_sql()}) d USING (contact_key)
                """
            )
            self._acknowledge(self._batch)
            self._audit(self._batch)
            written = con.execute(f"SELECT count(*) FROM {self._batch}").fetchall()[0][0]
            con.execute(f"DROP TABLE {self._pending}")
        self._has_pending = False
        self.report.records_written += written

    def drop_pending(self) -> None:
        """The write session failed: its pages' ok outcomes are not acknowledged (planned again)."""
        self.store.con.execute(f"DROP TABLE IF EXISTS {self._pending}")
        self._has_pending = False

    def _hold(self, ok_keys: Sequence[str], external_ids: dict[str, str]) -> None:
        """Keep this page's ok answers for :meth:`commit_pending`: their keys and external ids
        (one JSON text, as :meth:`_stage` binds its columns)."""
        con = self.store.con
        if not self._has_pending:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {self._pending} (contact_key VARCHAR, external_id VARCHAR)")
            self._has_pending = True
        if not ok_keys:
            return
        ids = [external_ids.get(k) for k in ok_keys] if external_ids else []  # (none: NULL for each)
        con.execute(
            f"""
            INSERT INTO {self._pending}
            WITH page AS (SELECT from_json($columns, '["JSON"]') AS c)
            SELECT unnest(c[1]::VARCHAR[]), unnest(c[2]::VARCHAR[]) FROM page
            """,
            {"columns": json.dumps([ok_keys, ids])},
        )

    def finish(self, pushed: PushResult) -> DestinationReport:
        """Settle the destination's status from what was pushed and acknowledged; store it."""
        if not isinstance(pushed, PushResult):
            raise TypeError(f"finish takes the PushResult of the push stage, not a {type(pushed).__name__}")
        self._check(pushed.diff)
        report = self.report
        report.write_calls += pushed.write_calls
        report.records_blocked += pushed.blocked
        if pushed.error is not None:
            # What was not acknowledged before the failure is planned again next run.
            report.status = PartStatus.FAILED
            report.error = pushed.error
            report.records_retrying += self.diff.total - report.records_written - report.records_rejected
            self.store.record_error(run_id=self.run_id, connection=self.destination, phase="push",
                                    record=self.destination, field=None, reason=pushed.error, retryable=True)
        elif pushed.problems or pushed.contract_errors:
            # A plugin broke the push contract, or the connector its own: what it did right was
            # written, the rest is not ok (its records are retried, each naming the breach).
            report.status = PartStatus.PARTIAL if report.records_written else PartStatus.FAILED
            report.error = "; ".join([*pushed.contract_errors, *pushed.problems]) + " (see `segsync runs --errors`)"
            # Each breach once; those that touched records are already their record errors.
            recorded = {r for (r,) in self.store.con.execute(
                "SELECT DISTINCT reason FROM record_errors WHERE run_id = ? AND connection = ?",
                [self.run_id, self.destination]).fetchall()}
            for error in pushed.contract_errors:
                if redact(error) not in recorded:
                    self.store.record_error(run_id=self.run_id, connection=self.destination, phase="push",
                                            record=self.destination, field=None, reason=error, retryable=True)
        elif report.records_retrying:
            # The system answered "later" for some records: the run did not finish its job.
            report.status = PartStatus.PARTIAL if report.records_written else PartStatus.FAILED
            report.error = (
                f"{report.records_retrying} record(s) to retry on the next run (see `segsync runs --errors`)"
            )
        elif report.records_rejected:
            # Refused records are not sent again until they or the destination change: the
            # run finished, but not cleanly.
            report.status = PartStatus.WITH_REJECTIONS
            report.error = f"{report.records_rejected} record(s) rejected (see `segsync runs --errors`)"
        self.store.record_destination(
            run_id=self.run_id or 0,
            destination=self.destination,
            status=report.status,
            write_calls=report.write_calls,
            written=report.records_written,
            rejected=report.records_rejected,
            retrying=report.records_retrying,
            error=report.error,
        )
        self.store.con.execute(f"DROP TABLE IF EXISTS {self._batch}")
        self.drop_pending()
        return report

    # -- set-based writes of one batch ---------------------------------------------------------

    def _stage(self, answers: Sequence[tuple[PlannedChange, str, str | None, str | None]]) -> None:
        """Stage ``(planned change, outcome, reason, external id)`` rows (outcome ``ok`` or
        ``rejected``) as this batch's table, which the writes below read."""
        changes = [p.change for p, *_ in answers]
        # One JSON text of the batch's columns, bound once: DuckDB parses it faster than it
        # converts ten bound Python lists value by value.
        columns = json.dumps([
            [c.contact_key for c in changes], [c.op for c in changes], [p.action for p, *_ in answers],
            [c.status for c in changes], [c.previous_status for c in changes], [p.state_hash for p, *_ in answers],
            [c.tags for c in changes], [a[1] for a in answers], [a[2] for a in answers], [a[3] for a in answers],
        ])
        self.store.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {self._batch} AS
            WITH batch AS (SELECT from_json($columns, '["JSON"]') AS c)
            SELECT unnest(c[1]::VARCHAR[]) AS contact_key, unnest(c[2]::VARCHAR[]) AS op,
                   unnest(c[3]::VARCHAR[]) AS action, unnest(c[4]::VARCHAR[]) AS status,
                   unnest(c[5]::VARCHAR[]) AS previous_status, unnest(c[6]::VARCHAR[]) AS state_hash,
                   unnest(c[7]::VARCHAR[][]) AS tags, unnest(c[8]::VARCHAR[]) AS outcome,
                   unnest(c[9]::VARCHAR[]) AS reason, unnest(c[10]::VARCHAR[]) AS external_id
            FROM batch
            """,
            {"columns": columns},
        )

    def _remember(self, *, refused_by: str) -> None:
        """Remember refused states (``refused_by``: ``destination`` or ``gate``), so the diff does
        not plan them again while they hold."""
        self.store.con.execute(
            f"""
            INSERT INTO rejected (destination, contact_key, state_hash, reason, run_id, rejected_at, refused_by)
            SELECT $dest, contact_key, state_hash, reason, $run, now(), $by
            FROM {self._batch} WHERE outcome = 'rejected' AND state_hash IS NOT NULL
            ON CONFLICT (destination, contact_key) DO UPDATE SET state_hash = EXCLUDED.state_hash,
                reason = EXCLUDED.reason, run_id = EXCLUDED.run_id, rejected_at = EXCLUDED.rejected_at,
                refused_by = EXCLUDED.refused_by
            """,
            {"dest": self.destination, "run": self.run_id, "by": refused_by},
        )

    def _acknowledge(self, batch: str) -> None:
        """The destination now holds what was planned for the ``ok`` answers staged in ``batch``."""
        con = self.store.con
        params = {"dest": self.destination, "run": self.run_id}
        dest = {"dest": self.destination}
        ok = f"SELECT contact_key FROM {batch} WHERE outcome = 'ok'"
        con.execute(f"DELETE FROM rejected WHERE destination = $dest AND contact_key IN ({ok})", dest)
        con.execute(
            f"""
            INSERT INTO acknowledged (destination, contact_key, state_hash, status, run_id, acked_at)
            SELECT $dest, contact_key, state_hash, status, $run, now()
            FROM {batch} WHERE outcome = 'ok' AND op = 'upsert'
            ON CONFLICT (destination, contact_key) DO UPDATE SET state_hash = EXCLUDED.state_hash,
                status = EXCLUDED.status, run_id = EXCLUDED.run_id, acked_at = EXCLUDED.acked_at
            """,
            params,
        )
        con.execute(f"DELETE FROM acknowledged_memberships WHERE destination = $dest AND contact_key IN ({ok})",
                    dest)
        con.execute(
            f"""
            INSERT INTO acknowledged_memberships (destination, contact_key, segment, run_id, acked_at)
            SELECT $dest, contact_key, unnest(tags), $run, now()
            FROM {batch} WHERE outcome = 'ok' AND op = 'upsert'
            """,
            params,
        )
        con.execute(
            f"DELETE FROM acknowledged WHERE destination = $dest AND contact_key IN ({ok} AND op = 'delete')", dest
        )
        con.execute(
            f"""
            INSERT INTO identities (connection, external_id, contact_key, seen_at)
            SELECT $dest, external_id, contact_key, now()
            FROM {batch} WHERE outcome = 'ok' AND external_id IS NOT NULL
            ON CONFLICT (connection, external_id) DO UPDATE SET
                contact_key = EXCLUDED.contact_key, seen_at = EXCLUDED.seen_at
            """,
            dest,
        )

    def _audit(self, batch: str, where: str = "true") -> None:
        """A ``status_changes`` row for each acknowledged or refused upsert staged in ``batch``
        (those matching ``where``) that changes the person's subscription status, with what
        decided the new status."""
        self.store.con.execute(
            f"""
            INSERT INTO status_changes (run_id, destination, contact_key, channel, purpose, action,
                before_status, after_status, ledger_id, suppression_id, policy, outcome, reason, changed_at)
            SELECT $run, $dest, b.contact_key, 'email', 'marketing', b.action, b.previous_status, b.status,
                   e.ledger_id, e.suppression_id, e.policy,
                   CASE b.outcome WHEN 'ok' THEN 'acknowledged' ELSE 'rejected' END, b.reason, now()
            FROM {batch} b
            LEFT JOIN ({self.consent.status_sql(self.destination, f"SELECT contact_key FROM {batch}")}) e
              USING (contact_key)
            WHERE b.op = 'upsert' AND b.status IS DISTINCT FROM b.previous_status AND {where}
            """,
            {"run": self.run_id, "dest": self.destination},
        )

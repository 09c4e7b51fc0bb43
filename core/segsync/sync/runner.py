"""One sync run: pull every source, plan every destination, push, acknowledge.

```
sources ──pull──▶ store ──plan (diff vs acks)──▶ changes ──push──▶ destinations
```

* Pull is incremental: a batch's records and its cursor are committed in one transaction.
* The plan diffs each destination's desired state against what it acknowledged, so a re-run
  with no new input writes nothing, and a crashed run resumes where acknowledgements stop.
* Failures stay where they happen: a failing source or destination is reported with its plugin's
  name; the others go on, and nothing of the failed one is acknowledged.
* ``dry_run`` does all of the above inside one transaction that is rolled back, and never
  calls a connector's ``write``.
* Consent (docs/consent.md): pending erasures are retried first; people erased earlier and
  pulled again are dropped after the pull; each destination's desired status comes from its
  consent policy, and the consent gate (:mod:`segsync.consent.gate`) checks every change
  between the diff and the ``segsync_push`` hook; status changes are audited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from segsync import plan
from segsync.config import ConfigError, ProjectConfig, connection_settings
from segsync.connector import (
    READ_CAPABILITIES,
    STREAM_CAPABILITY,
    WRITE_CAPABILITIES,
    Capability,
    Connector,
    Outcome,
    Stream,
    WriteResult,
)
from segsync.consent import audit, erasure, rules
from segsync.consent.gate import Gate, GatedConnector
from segsync.consent.settings import ConsentSettings, load_settings
from segsync.model import mask_email
from segsync.plugins import PluginHost
from segsync.progress import Reporter
from segsync.redaction import redact
from segsync.segments import evaluate, snapshot
from segsync.segments.validate import carry_over, validate
from segsync.store import Store
from segsync.store.ingest import Ingestor

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000


@dataclass
class SourceReport:
    name: str
    # ok | with-rejections (read, but some records were record errors) | failed (a file or
    # the system could not be read: nothing after that point was loaded)
    status: str = "ok"
    loaded: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class DestinationReport:
    name: str
    # ok | with-rejections (all written but the records a system or the consent gate refused)
    # | partial (some records retrying) | failed | skipped
    status: str = "ok"
    planned: dict[str, int] = field(default_factory=dict)
    write_calls: int = 0
    records_written: int = 0
    records_rejected: int = 0
    records_retrying: int = 0
    records_blocked: int = 0  # stopped by the consent gate (also counted as rejected)
    # Remembered rejections planned again because the destination changed (plan.renew_rejections).
    rejections_renewed: int = 0
    error: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunSummary:
    run_id: int | None
    status: str  # succeeded | with-rejections | partial | failed | dry-run
    as_of: datetime
    dry_run: bool
    sources: list[SourceReport] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)  # name → members at as_of
    destinations: list[DestinationReport] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Pending erasures retried at the start of the run: connection, status, action, error.
    erasures: list[dict[str, Any]] = field(default_factory=list)
    # Segments that could not be evaluated → why; they kept their last membership.
    segment_errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.segment_errors) or any(s.status == "failed" for s in self.sources) or any(
            d.status in ("failed", "partial") for d in self.destinations
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


@dataclass
class RunOptions:
    dry_run: bool = False
    full_refresh: bool = False
    as_of: datetime | None = None
    sample_size: int = 5


class Runner:
    def __init__(
        self, config: ProjectConfig, host: PluginHost, reporter: Reporter | None = None
    ) -> None:
        self.config = config
        self.host = host
        self.reporter = reporter or Reporter(quiet=True)
        self.consent: ConsentSettings | None = None
        # Connections whose connector's plugin failed to load → why; their part of a run fails.
        self.broken: dict[str, str] = {}

    # -- set-up ------------------------------------------------------------------------------

    def connectors(self) -> dict[str, Connector]:
        """Instantiate every configured connection (settings validated, secrets from env)."""
        types = self.host.connector_types()
        instances = {}
        for name, connection in self.config.connections.items():
            cls = types.get(connection.type)
            failure = self.host.failure_for(connection.type) if cls is None else None
            if failure is not None:
                self.broken[name] = (f"connection {name!r} (type {connection.type}): plugin "
                                     f"{failure.name!r} failed to load: {failure.error}")
                continue
            if cls is None:
                known = ", ".join(sorted(types)) or "none installed"
                raise ConfigError(
                    f"connection {name!r}: no connector of type {connection.type!r} "
                    f"(installed: {known}); install its package, e.g. pip install segsync-{connection.type}"
                )
            settings = connection_settings(cls, connection, self.config.project_dir)
            instances[name] = cls(name, settings, self.config.project_dir)
        return instances

    def _pulls(self, name: str, connector: Connector) -> bool:
        wanted = self.config.connections[name].pull
        can = bool(connector.enabled_capabilities() & READ_CAPABILITIES)
        return can if wanted is None else (wanted and can)

    def _pushes(self, name: str, connector: Connector) -> bool:
        wanted = self.config.connections[name].push
        can = bool(connector.enabled_capabilities() & WRITE_CAPABILITIES)
        return can if wanted is None else (wanted and can)

    # -- the run -----------------------------------------------------------------------------

    def run(self, options: RunOptions | None = None) -> RunSummary:
        options = options or RunOptions()
        as_of = options.as_of or datetime.now(timezone.utc)
        connectors = self.connectors()
        self.consent = load_settings(self.config, self.host.consent_policies())
        store = Store(self.config.store_path)
        self.reporter.listeners.append(_publish_to(store))
        try:
            return self._run(store, connectors, options, as_of)
        except BaseException as exc:
            # A bug or an interrupt: close the run row so history shows it, then re-raise.
            run_id = store.scalar("SELECT max(id) FROM runs WHERE status = 'running'")
            if run_id is not None and not options.dry_run:
                store.finish_run(run_id=run_id, status="failed",
                                 counts={"error": f"{type(exc).__name__}: {exc}"})
            raise
        finally:
            for connector in connectors.values():
                try:
                    connector.close()
                except Exception:  # closing must not hide the run's own outcome
                    log.exception("connection %r failed to close", connector.connection)
            store.close()
            self.reporter.listeners.pop()

    def _run(
        self, store: Store, connectors: dict[str, Connector], options: RunOptions, as_of: datetime
    ) -> RunSummary:
        summary = RunSummary(None, "running", as_of, options.dry_run)
        if options.dry_run:
            # Everything (pull included) happens in one transaction that is rolled back.
            store.con.execute("BEGIN TRANSACTION")
        else:
            summary.run_id = store.start_run(
                as_of, {"full_refresh": options.full_refresh, "dry_run": False}
            )
        try:
            if not options.dry_run and erasure.pending(store):
                # Before pulling: a system that now confirms the deletion is not read again.
                retried = erasure.retry_pending(store, connectors, self.host, summary.run_id)
                summary.erasures = [{"erasure_id": erasure_id, **vars(t)}
                                    for erasure_id, targets in retried.items() for t in targets]
            event_types = self.host.event_types()
            for name, connector in connectors.items():
                if self._pulls(name, connector):
                    summary.sources.append(
                        self._pull(store, name, connector, summary.run_id, options, event_types)
                    )
            # A pull may bring back someone who was erased: drop them before anything is planned.
            erasure.purge_reimported(store, summary.run_id)
            self._report_broken(store, summary)
            destinations = [n for n, c in connectors.items() if self._pushes(n, c)]
            summary.segments = self._evaluate_segments(store, destinations, summary, as_of)
            for name, connector in connectors.items():
                if name in destinations:
                    summary.destinations.append(
                        self._push(store, name, connector, summary.run_id, options, as_of)
                    )
        finally:
            if options.dry_run:
                store.con.execute("ROLLBACK")
        if options.dry_run:
            summary.status = "dry-run"
            return summary
        summary.status = _status(summary)
        assert summary.run_id is not None
        summary.errors = [
            {"connection": r[0], "phase": r[1], "record": r[2], "field": r[3], "reason": r[4]}
            for r in store.con.execute(
                "SELECT connection, phase, record, field, reason FROM record_errors "
                "WHERE run_id = ? ORDER BY occurred_at LIMIT 20",
                [summary.run_id],
            ).fetchall()
        ]
        store.finish_run(run_id=summary.run_id, status=summary.status, counts=_counts(summary))
        self.host.run_finished(summary)
        return summary

    def _report_broken(self, store: Store, summary: RunSummary) -> None:
        """A connection whose plugin failed to load fails its part of the run (as a destination,
        or as a source when it is never pushed to); the others go on."""
        for name, reason in self.broken.items():
            log.error(reason)
            if self.config.connections[name].push is False:
                summary.sources.append(SourceReport(name, "failed", error=reason))
            else:
                summary.destinations.append(DestinationReport(name, "failed", error=reason))
            if summary.run_id is not None:
                store.record_error(run_id=summary.run_id, connection=name, phase="load", record=name,
                                   field=None, reason=reason)
                if self.config.connections[name].push is not False:
                    store.record_destination(run_id=summary.run_id, destination=name, status="failed",
                                             write_calls=0, written=0, rejected=0, retrying=0,
                                             error=reason)

    def _evaluate_segments(
        self, store: Store, destinations: list[str], summary: RunSummary, as_of: datetime
    ) -> dict[str, int]:
        """Evaluate every segment at ``as_of``, snapshot it, map it to each destination."""
        plan.ensure_membership_table(store.con)
        config = self.config.segments
        if not config.segments:
            return {}
        with self.reporter.phase("evaluate segments"):
            registry = self.host.segment_registry()
            # A segment that cannot compile is held (and named), never evaluated as empty.
            checked = validate(config.segments, config.groups, as_of, registry)
            sizes = evaluate(store.con, checked.segments, checked.groups, as_of, registry)
            if summary.run_id is not None:
                snapshot(store.con, summary.run_id, as_of)
            carry_over(store.con, list(checked.held))
            plan.map_memberships(store.con, config.segments, destinations)
        summary.segment_errors = checked.held
        for name, reason in checked.held.items():
            log.error(reason)
            if summary.run_id is not None:
                store.record_error(run_id=summary.run_id, connection="segments", phase="evaluate",
                                   record=name, field="rule", reason=reason)
        return sizes

    def _pull(
        self,
        store: Store,
        name: str,
        connector: Connector,
        run_id: int | None,
        options: RunOptions,
        event_types: dict[str, str],
    ) -> SourceReport:
        report = SourceReport(name)
        ingestor = Ingestor(store.con, connection=name, run_id=run_id, event_types=event_types)
        enabled = connector.enabled_capabilities()
        plugin = self.host.connector_plugin(self.config.connections[name].type)
        for stream in Stream:
            if STREAM_CAPABILITY[stream] not in enabled:
                continue
            cursor = None if options.full_refresh else store.get_cursor(name, stream.value)
            loaded = rejected = 0
            try:
                with self.reporter.phase(f"pull {name} {stream.value}") as advance:
                    for batch in connector.read(stream, cursor):
                        if batch.stream is not stream:
                            raise ValueError(
                                f"read({stream.value}) yielded a {batch.stream.value} batch"
                            )
                        if options.dry_run:
                            result = ingestor.ingest(batch)
                        else:
                            with store.transaction():
                                result = ingestor.ingest(batch)
                                # Error texts may quote raw lines: redacted before they commit.
                                store.redact_record_errors(run_id, name)
                                store.set_cursor(connection=name, stream=stream.value,
                                                 cursor=batch.cursor, run_id=run_id)
                        loaded += result.loaded
                        rejected += result.rejected
                        advance(result.rows)
            except Exception as exc:
                report.status = "failed"
                report.error = (
                    f"plugin {plugin!r} (connection {name!r}) failed reading {stream.value}: "
                    f"{type(exc).__name__}: {exc}"
                )
                log.error(report.error)
                if not options.dry_run:
                    store.record_error(run_id=run_id, connection=name, phase=f"pull:{stream.value}",
                                       record=name, field=None, reason=report.error)
                break
            finally:
                report.loaded[stream.value] = loaded
                report.rejected[stream.value] = rejected
        rejected_total = sum(report.rejected.values())
        if report.status == "ok" and rejected_total:
            report.status = "with-rejections"
            report.error = f"{rejected_total} record(s) rejected (see `segsync runs --errors`)"
        return report

    def _push(
        self,
        store: Store,
        name: str,
        connector: Connector,
        run_id: int | None,
        options: RunOptions,
        as_of: datetime,
    ) -> DestinationReport:
        report = DestinationReport(name)
        plugin = self.host.connector_plugin(self.config.connections[name].type)
        consent = self.consent or ConsentSettings()
        status_sql = rules.materialize(
            store.con, consent.for_connection(name), consent.countries,
            as_of=as_of, clock_skew=consent.clock_skew,
        )
        # Remembered refusals made before the destination changed are planned again.
        fingerprint_checked = bool(plan.remembered_rejections(store.con, name))
        if fingerprint_checked:
            fingerprint = self._fingerprint(name, connector)
            if fingerprint is not None:
                report.rejections_renewed = plan.renew_rejections(store.con, name, fingerprint)
        plan.build_diff(store.con, name, status_sql)
        report.planned = plan.plan_counts(store.con)
        total = sum(report.planned.values())
        batch_size = connector.max_batch_size or DEFAULT_BATCH_SIZE
        if options.dry_run:
            for planned in next(plan.iter_changes(store.con, options.sample_size), []):
                report.sample.append(
                    {
                        "contact": mask_email(planned.change.contact_key),
                        "action": planned.action,
                        "status": planned.change.status,
                        "tags_add": list(planned.change.tags_add),
                        "tags_remove": list(planned.change.tags_remove),
                    }
                )
            return report
        if Capability.WRITE_CONTACTS not in connector.enabled_capabilities():
            report.status = "skipped"
            report.error = "connector cannot write contacts"
            return report
        gate = Gate(store, name, run_id)
        misbehaved: list[str] = []
        in_flight: dict[str, plan.PlannedChange] = {}  # this batch's changes not yet acknowledged

        def acknowledge(outcomes: Sequence[Outcome]) -> None:
            # A finished write batch, reported during `write` (connectors with write_batch_size):
            # committed now, so a crash re-sends only what is still in flight.
            done = [in_flight.pop(o.contact_key) for o in outcomes if o.contact_key in in_flight]
            if done:
                self._apply_outcomes(store, name, run_id, done, WriteResult(list(outcomes), 0), report)

        with self.reporter.phase(f"push {name}", total=total) as advance:
            for planned_batch in plan.iter_changes(store.con, batch_size):
                allowed, blocked = gate.split([p.change for p in planned_batch])
                if blocked:
                    self._block(store, name, run_id, gate, blocked, report)
                blocked_keys = {b.change.contact_key for b in blocked}
                batch = [p for p in planned_batch if p.change.contact_key not in blocked_keys]
                if not batch:
                    advance(len(planned_batch))
                    continue
                # Hooks get copies of the batch and a connector bound to it: only changes equal
                # to the runner's own, checked again, reach the connector (consent/gate.py).
                gated = GatedConnector(connector, gate, [p.change for p in batch], self.host.calling_plugin,
                                       report=acknowledge)
                in_flight.clear()
                in_flight.update((p.change.contact_key, p) for p in batch)
                try:
                    result = self.host.push(gated, gated.handed_over(), run_id)
                except Exception as exc:
                    # What was not reported before the failure is planned again next run.
                    raiser = self.host.raised_by(exc, "segsync_push") or plugin
                    report.status = "failed"
                    report.error = (
                        f"plugin {raiser!r} (connection {name!r}) failed writing: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    report.records_retrying += total - report.records_written - report.records_rejected
                    log.error(report.error)
                    store.record_error(run_id=run_id, connection=name, phase="push", record=name,
                                       field=None, reason=report.error, retryable=True)
                    break
                finally:
                    gated.close()
                settled = gated.settle(result)
                report.records_blocked += settled.blocked
                misbehaved.extend(p for p in settled.problems if p not in misbehaved)
                report.write_calls += settled.result.calls
                self._apply_outcomes(store, name, run_id, list(in_flight.values()), settled.result, report)
                advance(len(planned_batch))
        if report.status == "ok" and misbehaved:
            # A plugin broke the push contract: what it did right was written, the rest is not ok.
            report.status = "partial" if report.records_written else "failed"
            report.error = "; ".join(misbehaved) + " (see `segsync runs --errors`)"
        if report.status == "ok" and report.records_retrying:
            # The system answered "later" for some records: the run did not finish its job.
            report.status = "partial" if report.records_written else "failed"
            report.error = (
                f"{report.records_retrying} record(s) to retry on the next run "
                "(see `segsync runs --errors`)"
            )
        elif report.status == "ok" and report.records_rejected:
            # Refused records are not sent again until they or the destination change: the
            # run finished, but not cleanly.
            report.status = "with-rejections"
            report.error = (
                f"{report.records_rejected} record(s) rejected (see `segsync runs --errors`)"
            )
        if not fingerprint_checked and plan.remembered_rejections(store.con, name):
            fingerprint = self._fingerprint(name, connector)
            if fingerprint is not None:
                plan.record_fingerprint(store.con, name, fingerprint)
        store.record_destination(
            run_id=run_id or 0,
            destination=name,
            status=report.status,
            write_calls=report.write_calls,
            written=report.records_written,
            rejected=report.records_rejected,
            retrying=report.records_retrying,
            error=report.error,
        )
        return report

    def _fingerprint(self, name: str, connector: Connector) -> str | None:
        """What ``name``'s remembered refusals hold under (see plan.renew_rejections); None
        when the connector cannot report its schema now (its refusals are then kept)."""
        try:
            schema = connector.schema_version()
        except Exception as exc:  # e.g. the service is down: the push will say so
            log.warning("connection %r could not report its schema (%s); its remembered "
                        "rejections are kept", name, type(exc).__name__)
            return None
        mapping = [
            (s.name, s.destinations[name].model_dump() if name in s.destinations else None)
            for s in self.config.segments.segments
            if not s.destinations or name in s.destinations
        ]
        return plan.destination_fingerprint(connector.settings.model_dump(mode="json"), mapping, schema)

    def _block(self, store, name, run_id, gate, blocked, report) -> None:
        """Planned changes the gate stopped: recorded, and remembered as rejected for their state
        (like a destination's refusal) so they are not planned again until that state changes."""
        with store.transaction():
            gate.record(blocked, by="planned change")
            plan.record_outcomes(store.con, name, run_id, [], {},
                                 {b.change.contact_key: f"consent gate: {b.reason}" for b in blocked},
                                 refused_by="gate")
        report.records_blocked += len(blocked)
        report.records_rejected += len(blocked)

    def _apply_outcomes(self, store, name, run_id, batch, result, report) -> None:
        by_key = {}
        for outcome in result.outcomes:
            by_key.setdefault(outcome.contact_key, outcome)
        ok_keys: list[str] = []
        external_ids: dict[str, str] = {}
        rejections: dict[str, str] = {}
        with store.transaction():
            for planned in batch:
                key = planned.change.contact_key
                outcome = by_key.get(key)
                if outcome is None:
                    report.records_retrying += 1
                    store.record_error(
                        run_id=run_id, connection=name, phase="push", record=mask_email(key),
                        field=None, reason="the connector returned no outcome for this record",
                        retryable=True,
                    )
                elif outcome.status == "ok":
                    ok_keys.append(key)
                    if outcome.external_id:
                        external_ids[key] = outcome.external_id
                elif outcome.status == "rejected":
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
            plan.record_outcomes(store.con, name, run_id, ok_keys, external_ids, rejections)
            audit.record_pushes(store.con, name, run_id, ok_keys, rejections)
        report.records_written += len(ok_keys)


def _publish_to(store: Store):
    """A progress listener that updates the running sync's status file (segsync.store.status)."""
    def publish(phase: str, done: int, total: int | None) -> None:
        if store.status is not None:
            store.status.progress(phase, done, total)
    return publish


def _status(summary: RunSummary) -> str:
    """succeeded only when nothing failed, is left to retry, or was rejected."""
    parts = [*summary.sources, *summary.destinations]
    failed = [p for p in parts if p.status in ("failed", "partial")]
    if failed or summary.segment_errors:
        # A segment that could not be evaluated is a part of the run that did not do its job.
        return "failed" if parts and len(failed) == len(parts) else "partial"
    if any(p.status == "with-rejections" for p in parts):
        return "with-rejections"
    return "succeeded"


def _counts(summary: RunSummary) -> dict[str, Any]:
    return {
        "segments": summary.segments,
        "pull": {s.name: {"loaded": s.loaded, "rejected": s.rejected} for s in summary.sources},
        "push": {
            d.name: {
                "planned": d.planned,
                "written": d.records_written,
                "rejected": d.records_rejected,
                "retrying": d.records_retrying,
                "blocked": d.records_blocked,
                "renewed": d.rejections_renewed,
                "write_calls": d.write_calls,
            }
            for d in summary.destinations
        },
    }

"""One sync run: the stages in order, and the run's status.

```
sources ─pull─▶ store ─evaluate─▶ Memberships ──────────┐
                  └─consent engine─▶ EffectiveConsent ──┴─diff─▶ DestinationDiff
                                                                 └─gate─▶ push ─▶ ack  (per destination)
```

Each stage is a module of this package (``segments.memberships`` for evaluate, the segment
engine's) and hands the next an object that owns its data; see docs/architecture.md.

* Failures stay where they happen: a failing source or destination is reported with its plugin's
  name; the others go on, and nothing of the failed one is acknowledged.
* ``dry_run`` does all of the above inside one transaction that is rolled back, and never
  calls a connector's ``write``.
* Segment-entry triggers (docs/triggers.md): entries and exits are queued right after the
  evaluation, and delivered after the push.
* Consent (docs/consent.md): pending erasures are retried first; people erased earlier and
  pulled again are dropped after the pull; effective consent is derived once, under each
  destination's policy, for the diff, the gate and the audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from segsync.config import (
    ConfigError,
    ConsentSettings,
    ProjectConfig,
    consent_settings,
    instantiate_connection,
    open_engine,
)
from segsync.connector import READ_CAPABILITIES, WRITE_CAPABILITIES, Batch, Capability, Connector
from segsync.consent import erasure
from segsync.consent.rules import EffectiveConsent
from segsync.engines import DEFAULT_ENGINE, Engine
from segsync.engines.stage import consent_on_engine, evaluate_on_engine
from segsync.engines.transfer import transfer
from segsync.distributions import missing_connector
from segsync.plugins import PluginHost
from segsync.progress import Reporter
from segsync.segments.memberships import Memberships, evaluate_memberships
from segsync.statuses import PartStatus, RunStatus
from segsync.store import Store, dicts
from segsync.sync.ack import Acknowledgement
from segsync.sync.diff import DestinationDiff
from segsync.sync.gate import Gate
from segsync.sync.pull import pull, receive
from segsync.sync.push import push
from segsync.sync.rejections import RememberedRejections
from segsync.sync.summary import DestinationReport, RunSummary, SourceReport, run_counts, run_status
from segsync.triggers import stage as triggers

__all__ = ["DestinationReport", "RunOptions", "RunSummary", "Runner", "SourceReport"]

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    dry_run: bool = False
    full_refresh: bool = False
    as_of: datetime | None = None
    sample_size: int = 5
    # What started the run: "sync" (a command), or what a long-lived process names it
    # (``segsync serve``: "schedule", "webhook", "retry").
    trigger: str = "sync"
    # Whether sources are read (a webhook-driven run reads none: it brings its records along).
    pull: bool = True
    # Batches a service pushed to segsync, per connection: ingested by the pull's rules
    # (``pull.receive``) before anything is evaluated; no cursor moves.
    received: Mapping[str, Sequence[Batch]] = field(default_factory=dict)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Runner:
    """Runs syncs of one project. ``clock`` gives a run's ``as_of`` when its options set none
    (tests pass a :class:`segsync.testing.FakeClock`)."""

    def __init__(
        self, config: ProjectConfig, host: PluginHost, reporter: Reporter | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.host = host
        self.reporter = reporter or Reporter(quiet=True)
        self.clock = clock
        # Connections whose connector's plugin failed to load → why; their part of a run fails.
        self.broken: dict[str, str] = {}
        self.engine: Engine | None = None

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
                raise ConfigError(f"connection {name!r}: {missing_connector(connection.type, types)}")
            instances[name] = instantiate_connection(cls, connection, self.config.project_dir)
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
        if options.dry_run and options.received:
            # Received records are committed batch by batch, as a pull's are; a dry run commits nothing.
            raise ValueError("a dry run cannot take received records")
        unknown = sorted(set(options.received) - set(self.config.connections))
        if unknown:
            raise ConfigError(f"records received for {unknown[0]!r}, which is not a connection of this project")
        as_of = options.as_of or self.clock()
        connectors = self.connectors()
        consent = consent_settings(self.config, self.host.consent_policies())
        # An external engine (docs/scale.md): evaluation and consent run there; None: the store.
        self.engine = None if self.config.store_engine == DEFAULT_ENGINE else open_engine(self.config, self.host)
        if self.engine is not None:
            self.engine.open()
        try:
            store = Store(self.config.store_path, memory_limit=self.config.store_memory_limit)
        except BaseException:
            self._close_engine()
            raise
        self.reporter.listeners.append(_publish_to(store))
        try:
            if self.engine is not None:
                self.engine.create_tables()
            return self._run(store, connectors, consent, options, as_of)
        except BaseException as exc:
            # A bug or an interrupt: close the run row so history shows it, then re-raise.
            run_id = store.scalar("SELECT max(id) FROM runs WHERE status = ?", [RunStatus.RUNNING])
            if run_id is not None and not options.dry_run:
                store.finish_run(run_id=run_id, status=RunStatus.FAILED,
                                 counts={"error": f"{type(exc).__name__}: {exc}"})
            raise
        finally:
            for connector in connectors.values():
                try:
                    connector.close()
                except Exception:  # closing must not hide the run's own outcome
                    log.exception("connection %r failed to close", connector.connection)
            store.close()
            self._close_engine()
            self.reporter.listeners.pop()

    def _close_engine(self) -> None:
        if self.engine is not None:
            try:
                self.engine.close()
            except Exception:  # closing must not hide the run's own outcome
                log.exception("the %s engine failed to close", self.engine.name)

    def _run(
        self,
        store: Store,
        connectors: dict[str, Connector],
        consent: ConsentSettings,
        options: RunOptions,
        as_of: datetime,
    ) -> RunSummary:
        summary = RunSummary(None, RunStatus.RUNNING, as_of, options.dry_run, trigger=options.trigger)
        if options.dry_run:
            # Everything (pull included) happens in one transaction that is rolled back.
            store.con.execute("BEGIN TRANSACTION")
        else:
            stored_options: dict[str, object] = {"full_refresh": options.full_refresh, "dry_run": False}
            if options.trigger != "sync":
                stored_options["trigger"] = options.trigger
            if options.received:
                stored_options["received"] = sorted(options.received)
            summary.run_id = store.start_run(as_of, stored_options)
        try:
            if not options.dry_run and erasure.pending(store):
                # Before pulling: a system that now confirms the deletion is not read again.
                retried = erasure.retry_pending(store, connectors, self.host, summary.run_id,
                                                engine=self.engine)
                summary.erasures = [{"erasure_id": erasure_id, **vars(t)}
                                    for erasure_id, targets in retried.items() for t in targets]
            event_types = self.host.event_types()
            for name, batches in options.received.items():
                plugin = self.host.connector_plugin(self.config.connections[name].type)
                summary.sources.append(receive(store, name, plugin, batches, summary.run_id, event_types))
            for name, connector in connectors.items():
                if options.pull and self._pulls(name, connector):
                    plugin = self.host.connector_plugin(self.config.connections[name].type)
                    summary.sources.append(pull(
                        store, connector, plugin, summary.run_id, event_types, self.reporter,
                        full_refresh=options.full_refresh, dry_run=options.dry_run,
                    ))
            # A pull may bring back someone who was erased: drop them before anything is planned.
            erasure.purge_reimported(store, summary.run_id)
            if self.engine is not None and not options.dry_run:
                with self.reporter.phase(f"append to {self.engine.name}"):
                    sent = transfer(store.con, self.engine)
                log.info("appended to the %s engine: %s", self.engine.name, sent)
            self._report_broken(store, summary)
            memberships = self._evaluate(store, summary, as_of)
            changes = None
            if not options.dry_run and triggers.wanted(self.config, self.host):
                # Committed with the moved baseline before anything is pushed; delivered below.
                changes = triggers.record(store, self.config, memberships, as_of=as_of, run_id=summary.run_id,
                                          origin=options.trigger)
                summary.segment_changes = changes.counts()
            destinations = {n: c for n, c in connectors.items() if self._pushes(n, c)}
            if destinations:
                policies = {name: consent.for_connection(name) for name in destinations}
                if self.engine is None:
                    # Lazy: derived only for the people each destination's diff plans (and reads).
                    effective = EffectiveConsent.build(
                        store.con, policies, consent.countries, as_of=as_of,
                        clock_skew=consent.clock_skew, run_id=summary.run_id, lazy=True)
                else:
                    effective = consent_on_engine(
                        store.con, self.engine, policies, consent.countries, as_of=as_of,
                        clock_skew=consent.clock_skew, run_id=summary.run_id)
                with effective:
                    for name, connector in destinations.items():
                        summary.destinations.append(
                            self._destination(store, connector, memberships, effective, options, as_of)
                        )
            if not options.dry_run and (self.config.triggers or changes is not None):
                # After the push: an ESP event finds the person (and tags) just written.
                summary.triggers = triggers.finish(store, self.config, self.host, changes, connectors=connectors,
                                                   consent=consent, as_of=as_of, run_id=summary.run_id)
        finally:
            if options.dry_run:
                store.con.execute("ROLLBACK")
        if options.dry_run:
            summary.status = RunStatus.DRY_RUN
            return summary
        summary.status = run_status(summary)
        assert summary.run_id is not None
        summary.errors = dicts(
            store.con,
            "SELECT connection, phase, record, field, reason FROM record_errors "
            "WHERE run_id = ? ORDER BY occurred_at LIMIT 20",
            [summary.run_id],
        )
        store.finish_run(run_id=summary.run_id, status=summary.status, counts=run_counts(summary))
        summary.history = next(iter(store.runs(1, run_id=summary.run_id)), None)
        self.host.run_finished(summary)
        return summary

    def _evaluate(self, store: Store, summary: RunSummary, as_of: datetime) -> Memberships:
        """The evaluate stage (the segment engine's): every segment at ``as_of``."""
        if not self.config.segments.segments:
            return Memberships()
        with self.reporter.phase("evaluate segments"):
            if self.engine is not None:
                memberships = evaluate_on_engine(
                    store.con, self.engine, self.config.segments, as_of,
                    self.host.segment_registry(), summary.run_id, score=self.host.score_contacts)
            else:
                memberships = evaluate_memberships(
                    store.con, self.config.segments, as_of, self.host.segment_registry(), summary.run_id,
                    score=self.host.score_contacts,
                )
        summary.segments = memberships.sizes
        summary.segment_errors = memberships.held
        for name, reason in memberships.held.items():
            log.error(reason)
            if summary.run_id is not None:
                store.record_error(run_id=summary.run_id, connection="segments", phase="evaluate",
                                   record=name, field="rule", reason=reason)
        return memberships

    def _destination(
        self,
        store: Store,
        connector: Connector,
        memberships: Memberships,
        consent: EffectiveConsent,
        options: RunOptions,
        as_of: datetime,
    ) -> DestinationReport:
        """Diff, gate, push and acknowledge one destination."""
        report = DestinationReport(connector.connection)
        remembered = RememberedRejections(store.con, connector, self.config.segments.segments)
        report.rejections_renewed = remembered.renew()
        with DestinationDiff.build(store.con, connector.connection, memberships, consent, as_of) as diff:
            log.info("%s planned, %s", connector.connection, diff.planning)
            report.planned = diff.counts
            if options.dry_run:
                report.sample = [planned.masked() for planned in diff.sample(options.sample_size)]
                return report
            if Capability.WRITE_CONTACTS not in connector.enabled_capabilities():
                report.status = PartStatus.SKIPPED
                report.error = "connector cannot write contacts"
                return report
            ack = Acknowledgement(store, consent, diff, report)
            pushed = push(diff, Gate(store, consent, diff), connector, self.host, ack, self.reporter)
            remembered.keep()
            return ack.finish(pushed)

    def _report_broken(self, store: Store, summary: RunSummary) -> None:
        """A connection whose plugin failed to load fails its part of the run (as a destination,
        or as a source when it is never pushed to); the others go on."""
        for name, reason in self.broken.items():
            log.error(reason)
            if self.config.connections[name].push is False:
                summary.sources.append(SourceReport(name, PartStatus.FAILED, error=reason))
            else:
                summary.destinations.append(DestinationReport(name, PartStatus.FAILED, error=reason))
            if summary.run_id is not None:
                store.record_error(run_id=summary.run_id, connection=name, phase="load", record=name,
                                   field=None, reason=reason)
                if self.config.connections[name].push is not False:
                    store.record_destination(run_id=summary.run_id, destination=name, status=PartStatus.FAILED,
                                             write_calls=0, written=0, rejected=0, retrying=0,
                                             error=reason)


def _publish_to(store: Store):
    """A progress listener that updates the running sync's status file (segsync.store.status)."""
    def publish(phase: str, done: int, total: int | None) -> None:
        if store.status is not None:
            store.status.progress(phase, done, total)
    return publish

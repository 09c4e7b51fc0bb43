"""The pull stage: read every stream a source can read, incrementally, into the store.

A batch's records and its cursor are committed in one transaction, so a crashed run resumes
where the committed cursors stop. A bad record is a record error of its own; a stream that
cannot be read fails the source's pull (named with its plugin) and nothing after that point is
loaded; the other sources go on. So does a batch that breaks the connector contract (not a
``Batch``, another stream's, a cursor JSON cannot store): a contract error, checked before
anything of it is stored (:mod:`segsync.sync.contract`).

:func:`receive` is the same stage for batches a service pushed to segsync (a webhook, see
``plugins/serve``): each batch is checked and ingested by the same rules in its own
transaction, and no cursor moves (the connector's next pull still reads from where it was).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from segsync.connector import STREAM_CAPABILITY, Batch, Connector, Stream
from segsync.progress import Reporter
from segsync.statuses import PartStatus
from segsync.store import Store
from segsync.store.ingest import Ingestor
from segsync.sync.contract import ContractError, check_batch, type_name
from segsync.sync.summary import SourceReport

log = logging.getLogger(__name__)


def pull(
    store: Store,
    connector: Connector,
    plugin: str,
    run_id: int | None,
    event_types: dict[str, str],
    reporter: Reporter,
    *,
    full_refresh: bool = False,
    dry_run: bool = False,
) -> SourceReport:
    """Pull every stream ``connector`` reads (``plugin`` provides it) into ``store``.

    ``full_refresh`` reads from the start, ignoring stored cursors; in a ``dry_run`` the caller
    rolls everything back, so batches are not committed one by one and no error is stored.
    """
    name = connector.connection
    report = SourceReport(name)
    ingestor = Ingestor(store.con, connection=name, run_id=run_id, event_types=event_types)
    enabled = connector.enabled_capabilities()
    for stream in Stream:
        if STREAM_CAPABILITY[stream] not in enabled:
            continue
        cursor = None if full_refresh else store.get_cursor(name, stream.value)
        loaded = rejected = 0
        try:
            with reporter.phase(f"pull {name} {stream.value}") as advance:
                for batch in connector.read(stream, cursor):
                    breach = check_batch(batch, stream)
                    if breach is not None:
                        raise ContractError(plugin, name, breach)
                    if dry_run:
                        result = ingestor.ingest(batch)
                    else:
                        with store.transaction():
                            result = ingestor.ingest(batch)
                            # Error texts may quote raw lines: redacted before they commit.
                            store.redact_record_errors(run_id, name)
                            store.set_cursor(connection=name, stream=stream.value, cursor=batch.cursor,
                                             run_id=run_id)
                    loaded += result.loaded
                    rejected += result.rejected
                    advance(result.rows)
        except Exception as exc:
            report.status = PartStatus.FAILED
            report.error = str(exc) if isinstance(exc, ContractError) else (
                f"plugin {plugin!r} (connection {name!r}) failed reading {stream.value}: "
                f"{type(exc).__name__}: {exc}"
            )
            log.error(report.error)
            if not dry_run:
                store.record_error(run_id=run_id, connection=name, phase=f"pull:{stream.value}", record=name,
                                   field=None, reason=report.error)
            break
        finally:
            report.loaded[stream.value] = loaded
            report.rejected[stream.value] = rejected
    rejected_total = sum(report.rejected.values())
    if report.status == PartStatus.OK and rejected_total:
        report.status = PartStatus.WITH_REJECTIONS
        report.error = f"{rejected_total} record(s) rejected (see `segsync runs --errors`)"
    return report


def receive(
    store: Store,
    connection: str,
    plugin: str,
    batches: Iterable[Batch],
    run_id: int | None,
    event_types: dict[str, str],
) -> SourceReport:
    """Ingest ``batches`` received from ``connection`` (its connector is ``plugin``'s) by the
    pull's rules: contract check, validation, record errors, deduplication; one transaction per
    batch, no cursor. A batch that breaks the contract fails the source and stops there."""
    report = SourceReport(connection)
    ingestor = Ingestor(store.con, connection=connection, run_id=run_id, event_types=event_types)
    for batch in batches:
        breach = (check_batch(batch, batch.stream) if isinstance(batch, Batch)
                  else f"handed over {type_name(batch)}, not a Batch")
        if breach is not None:
            report.status = PartStatus.FAILED
            report.error = str(ContractError(plugin, connection, breach))
            log.error(report.error)
            store.record_error(run_id=run_id, connection=connection, phase="receive", record=connection,
                               field=None, reason=report.error)
            break
        with store.transaction():
            result = ingestor.ingest(batch)
            store.redact_record_errors(run_id, connection)
        stream = batch.stream.value
        report.loaded[stream] = report.loaded.get(stream, 0) + result.loaded
        report.rejected[stream] = report.rejected.get(stream, 0) + result.rejected
    rejected_total = sum(report.rejected.values())
    if report.status == PartStatus.OK and rejected_total:
        report.status = PartStatus.WITH_REJECTIONS
        report.error = f"{rejected_total} record(s) rejected (see `segsync runs --errors`)"
    return report

"""The pull stage: read every stream a source can read, incrementally, into the store.

A batch's records and its cursor are committed in one transaction, so a crashed run resumes
where the committed cursors stop. A bad record is a record error of its own; a stream that
cannot be read fails the source's pull (named with its plugin) and nothing after that point is
loaded; the other sources go on. So does a batch that breaks the connector contract (not a
``Batch``, another stream's, a cursor JSON cannot store): a contract error, checked before
anything of it is stored (:mod:`segsync.sync.contract`).
"""

from __future__ import annotations

import logging

from segsync.connector import STREAM_CAPABILITY, Connector, Stream
from segsync.progress import Reporter
from segsync.statuses import PartStatus
from segsync.store import Store
from segsync.store.ingest import Ingestor
from segsync.sync.contract import ContractError, check_batch
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

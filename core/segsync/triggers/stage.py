"""The triggers' part of a sync run (a scheduled or webhook-driven one included).

Right after the evaluate stage, :func:`record` finds the entries and exits and queues the
triggers' deliveries (committed with the moved baseline); after the push, :func:`finish` calls
``segsync_segment_changes`` and delivers the outbox, so an ESP event finds the person (and the
tags) the push just wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from segsync.config import ConsentSettings, ProjectConfig
from segsync.connector import Connector
from segsync.plugins import PluginHost
from segsync.segments.memberships import Memberships
from segsync.store import Store
from segsync.sync.summary import TriggerReport

from .changes import SegmentChanges, record_changes
from .deliver import deliver


def wanted(config: ProjectConfig, host: PluginHost) -> bool:
    """Entries and exits are computed only when something acts on them."""
    return bool(config.segments.segments) and (bool(config.triggers) or host.observes_segment_changes())


def record(
    store: Store, config: ProjectConfig, memberships: Memberships, *, as_of: datetime, run_id: int, origin: str,
) -> SegmentChanges:
    """Record the changes of the segments ``memberships`` evaluated (held ones keep their baseline)."""
    return record_changes(store, memberships.sizes, config.triggers, as_of=as_of, origin=origin, run_id=run_id)


def finish(
    store: Store,
    config: ProjectConfig,
    host: PluginHost,
    changes: SegmentChanges | None,
    *,
    connectors: Mapping[str, Connector],
    consent: ConsentSettings,
    as_of: datetime,
    run_id: int,
) -> list[TriggerReport]:
    """Tell the observers, then deliver every trigger's owed rows (this time's and earlier ones)."""
    if changes is not None:
        host.segment_changes(changes)
    return deliver(store, config.triggers, project_dir=config.project_dir, connectors=connectors,
                   consent=consent, as_of=as_of, run_id=run_id, queued=changes.queued if changes else None)

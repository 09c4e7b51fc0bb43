"""What a sync run reports: per source, per destination and for the whole run.

The stages fill these in; the runner (:mod:`segsync.sync.runner`) turns them into the run's
status, stores the counts with the run and hands the summary to ``segsync_run_finished``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from segsync.statuses import PartStatus, RunStatus


@dataclass
class SourceReport:
    name: str
    # ok | with-rejections (read, but some records were record errors) | failed (a file or
    # the system could not be read: nothing after that point was loaded)
    status: PartStatus = PartStatus.OK
    loaded: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class DestinationReport:
    name: str
    # ok | with-rejections (all written but the records a system or the consent gate refused)
    # | partial (some records retrying) | failed | skipped
    status: PartStatus = PartStatus.OK
    planned: dict[str, int] = field(default_factory=dict)
    write_calls: int = 0
    records_written: int = 0
    records_rejected: int = 0
    records_retrying: int = 0
    records_blocked: int = 0  # stopped by the consent gate (also counted as rejected)
    # Remembered rejections planned again because the destination changed (rejections.renew_rejections).
    rejections_renewed: int = 0
    error: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TriggerReport:
    """One trigger's part of a run (or update): what was delivered this time and what is left."""

    name: str
    action: str
    status: PartStatus = PartStatus.OK
    queued: int = 0  # rows this run (or update) added to the outbox
    delivered: int = 0
    rejected: int = 0  # refused for good by the receiver
    blocked: int = 0  # stopped by the consent gate
    failed: int = 0  # left to retry next time
    error: str | None = None
    reasons: list[str] = field(default_factory=list)  # the first few, masked

    def settle(self) -> None:
        if self.error is not None or (self.failed and not (self.delivered or self.rejected or self.blocked)):
            self.status = PartStatus.FAILED
        elif self.failed:
            self.status = PartStatus.PARTIAL
        elif self.rejected or self.blocked:
            self.status = PartStatus.WITH_REJECTIONS
        else:
            self.status = PartStatus.OK


@dataclass
class RunSummary:
    run_id: int | None
    status: RunStatus  # succeeded | with-rejections | partial | failed | dry-run (running while it runs)
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
    # Entries and exits found this run: segment → {"enter": n, "exit": m} (docs/triggers.md).
    segment_changes: dict[str, dict[str, int]] = field(default_factory=dict)
    triggers: list[TriggerReport] = field(default_factory=list)
    # The finished run as the store's history shows it (``Store.runs``), read before the runner
    # closed the store: ``sync --json`` prints it without opening the store again.
    history: dict[str, Any] | None = None
    # What started the run (``RunOptions.trigger``): sync, schedule, webhook or retry.
    trigger: str = "sync"

    @property
    def failed(self) -> bool:
        return bool(self.segment_errors) or any(s.status == PartStatus.FAILED for s in self.sources) or any(
            d.status in (PartStatus.FAILED, PartStatus.PARTIAL) for d in [*self.destinations, *self.triggers]
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("history")
        data["as_of"] = self.as_of.isoformat()
        return data


def run_status(summary: RunSummary) -> RunStatus:
    """succeeded only when nothing failed, is left to retry, or was rejected."""
    parts = [*summary.sources, *summary.destinations, *summary.triggers]
    failed = [p for p in parts if p.status in (PartStatus.FAILED, PartStatus.PARTIAL)]
    if failed or summary.segment_errors:
        # A segment that could not be evaluated is a part of the run that did not do its job.
        return RunStatus.FAILED if parts and len(failed) == len(parts) else RunStatus.PARTIAL
    if any(p.status == PartStatus.WITH_REJECTIONS for p in parts):
        return RunStatus.WITH_REJECTIONS
    return RunStatus.SUCCEEDED


def run_counts(summary: RunSummary) -> dict[str, Any]:
    """The counts stored with the run (``runs``, ``runs --json``)."""
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
        **({"triggers": {
            t.name: {"status": t.status, "queued": t.queued, "delivered": t.delivered, "rejected": t.rejected,
                     "blocked": t.blocked, "failed": t.failed, "error": t.error}
            for t in summary.triggers
        }} if summary.triggers else {}),
        **({"segment_changes": summary.segment_changes} if summary.segment_changes else {}),
    }

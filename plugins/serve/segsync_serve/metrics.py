"""What ``/metrics`` shows (Prometheus text format, prometheus_client), one registry per server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("segsync_runs", "Sync runs by what started them and their status",
                            ["trigger", "status"], registry=r)
        self.records = Counter("segsync_records", "Records of finished runs: loaded (pulled or received), "
                               "written, rejected", ["kind"], registry=r)
        self.errors = Counter("segsync_errors", "Runs that raised, and deliveries given up", ["kind"], registry=r)
        self.webhooks = Counter("segsync_webhooks", "Webhook requests by connection and outcome "
                                "(queued, ignored, unauthorized, malformed, unknown)", ["connection", "outcome"],
                                registry=r)
        self.lag = Histogram("segsync_webhook_lag_seconds", "From a webhook's arrival to the end of the run "
                             "that pushed what it changed to every destination", buckets=LAG_BUCKETS, registry=r)
        self.queue = Gauge("segsync_webhook_queue", "Webhook deliveries waiting to be applied", registry=r)
        self.dead = Gauge("segsync_webhook_failed", "Webhook deliveries given up after repeated failed runs",
                          registry=r)
        self.busy = Counter("segsync_store_busy", "Attempts to apply webhooks while another process held "
                            "the store (retried)", registry=r)
        self.skipped = Counter("segsync_schedule_skipped", "Scheduled syncs not started (another process "
                               "held the store)", registry=r)
        self.last_run = Gauge("segsync_last_run_timestamp_seconds", "When the last run of a trigger ended",
                              ["trigger"], registry=r)

    def run_finished(self, summary) -> None:  # noqa: ANN001 - segsync's RunSummary
        self.runs.labels(summary.trigger, str(summary.status)).inc()
        loaded = sum(sum(s.loaded.values()) for s in summary.sources)
        self.records.labels("loaded").inc(loaded)
        self.records.labels("written").inc(sum(d.records_written for d in summary.destinations))
        self.records.labels("rejected").inc(
            sum(sum(s.rejected.values()) for s in summary.sources)
            + sum(d.records_rejected for d in summary.destinations))

    def text(self) -> bytes:
        return generate_latest(self.registry)

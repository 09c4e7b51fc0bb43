"""Segment-entry triggers: entries and exits per evaluation, a durable outbox, and the actions
that deliver it (ESP event or tag, signed webhook, JSON Lines file). See docs/triggers.md.

* :mod:`.definitions` — ``[[triggers]]`` in ``segsync.toml``;
* :mod:`.changes` — entries and exits against the baseline, queued in one transaction;
* :mod:`.deliver` — the outbox delivered exactly once (idempotency keys, in-doubt rows);
* :mod:`.actions` — webhook, file and connector actions;
* :mod:`.stage` — the run's part, and :func:`~.stage.after_update` for webhook-driven updates.
"""

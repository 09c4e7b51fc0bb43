"""The status words segsync uses, as ``str`` enums whose values are the words themselves.

Each member *is* its serialised text (``OutcomeStatus.OK == "ok"``, ``str()``, ``format()`` and
``json.dumps`` give ``"ok"``), so stored runs, ``--json`` output and the docs read exactly as they
did when these were bare strings, and code compares against the members instead of retyping
the words. Part of the public API (``from segsync import OutcomeStatus``); this module imports
nothing heavy, so a connector may import it at the top.
"""

from __future__ import annotations

import enum


class OutcomeStatus(enum.StrEnum):
    """A destination's answer for one change (:class:`segsync.Outcome`)."""

    OK = "ok"  # written: acknowledged as the destination's state
    REJECTED = "rejected"  # refused for this record (remembered; not sent again until something changes)
    RETRYABLE = "retryable"  # not written this time; planned again on the next run


class RunStatus(enum.StrEnum):
    """A sync run's status (``segsync sync``, ``segsync runs``, ``segsync_run_finished``)."""

    SUCCEEDED = "succeeded"
    WITH_REJECTIONS = "with-rejections"
    PARTIAL = "partial"
    FAILED = "failed"
    DRY_RUN = "dry-run"
    # Only in history: a run still going, and one whose process died before it finished.
    RUNNING = "running"
    CRASHED = "crashed"


class PartStatus(enum.StrEnum):
    """The status of one source's or destination's part of a run."""

    OK = "ok"
    WITH_REJECTIONS = "with-rejections"  # done, but some records were refused
    PARTIAL = "partial"  # some records were written, others are left to retry
    FAILED = "failed"
    SKIPPED = "skipped"  # a destination that cannot write contacts


class SubscriptionStatus(enum.StrEnum):
    """What a destination should hold for a person (``ContactChange.status``)."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"  # awaiting double opt-in confirmation: not consent
    CLEANED = "cleaned"  # hard bounce
    COMPLAINED = "complained"
    NONE = "none"  # no marketing consent on record


# The statuses that stop all mailing: a destination holds them as its own opt-out (suppression,
# blocklist, unsubscribe), and only the person's own new opt-in lifts them (docs/consent.md).
OPT_OUT_STATUSES: tuple[SubscriptionStatus, ...] = (
    SubscriptionStatus.UNSUBSCRIBED,
    SubscriptionStatus.CLEANED,
    SubscriptionStatus.COMPLAINED,
)
# The statuses under which a destination may hold a person as a list member.
MAILABLE_STATUSES: tuple[SubscriptionStatus, ...] = (SubscriptionStatus.SUBSCRIBED, SubscriptionStatus.PENDING)

"""The evaluate stage of a sync run: every segment's members at the run's ``as_of``.

The segment engine (:mod:`.evaluate`) fills the connection's ``segment_membership`` table;
:func:`evaluate_memberships` adds what a run needs around it (segments that cannot compile are
held and keep their last membership, the snapshot of the run) and hands the diff stage a
:class:`Memberships`, the only way the sync stages read that table. A run that records its
result evaluates incrementally (:mod:`.incremental`): only contacts whose inputs changed since
the last run are recomputed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from segsync.scores import ScoreRun, unavailable_models

from .definitions import SegmentDef, SegmentsConfig
from .evaluate import MEMBERSHIP_TABLE, evaluate, snapshot
from .functions import FunctionRegistry
from .incremental import evaluate_incremental
from .validate import carry_over, validate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Memberships:
    """Who is in which segment this run.

    ``segments`` are every configured segment (held ones included: they carry their last
    membership); ``sizes`` the evaluated ones' member counts; ``held`` segment → why it was not
    evaluated; ``evaluation`` how (full or incremental, and why).
    """

    segments: tuple[SegmentDef, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    evaluation: str = ""

    def members_sql(self) -> str:
        """SQL selecting ``(segment, contact_key)`` of every member of ``segments``."""
        return f"SELECT segment, contact_key FROM {MEMBERSHIP_TABLE}"


def evaluate_memberships(
    con: duckdb.DuckDBPyConnection,
    config: SegmentsConfig,
    as_of: datetime,
    registry: FunctionRegistry,
    run_id: int | None,
    score: Callable[[ScoreRun], None] | None = None,
) -> Memberships:
    """Evaluate every segment of ``config`` at ``as_of``; snapshot them under ``run_id`` (none
    in a dry run). A segment that cannot compile is held (named in ``held``), never evaluated
    as empty: it keeps the membership of the last run that evaluated it.

    A run (``run_id``) evaluates incrementally and keeps what the next run needs; a dry run
    evaluates everyone and leaves the store as it was.

    When the rules read per-contact scores (:mod:`segsync.scores`), a run first has ``score``
    (the plugins' ``segsync_score_contacts``) compute them; a dry run reads the latest ones. A
    segment reading scores that cannot be read at ``as_of`` is held with the reason."""
    if not config.segments:
        return Memberships()
    checked = validate(config.segments, config.groups, as_of, registry)
    if checked.score_models:
        if run_id is not None and score is not None:
            score(ScoreRun(con, run_id, as_of, checked.score_models))
        missing = unavailable_models(con, as_of, checked.score_models)
        if missing:
            checked = validate(config.segments, config.groups, as_of, registry, missing)
    if run_id is None:
        sizes = evaluate(con, checked.segments, checked.groups, as_of, registry)
        how = "full (dry run)"
    else:
        done = evaluate_incremental(con, checked.segments, checked.groups, as_of, registry)
        sizes = done.sizes
        how = (f"incremental: {done.recomputed} contacts recomputed" if done.mode == "incremental"
               else f"full ({done.reason})")
        log.info("segments evaluated, %s", how)
        snapshot(con, run_id, as_of)
    carry_over(con, list(checked.held))
    return Memberships(tuple(config.segments), sizes, dict(checked.held), how)


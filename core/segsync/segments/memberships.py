"""The evaluate stage of a sync run: every segment's members at the run's ``as_of``.

The segment engine (:mod:`.evaluate`) fills the connection's ``segment_membership`` table;
:func:`evaluate_memberships` adds what a run needs around it (segments that cannot compile are
held and keep their last membership, the snapshot of the run) and hands the diff stage a
:class:`Memberships`, the only way the sync stages read that table. A run that records its
result evaluates incrementally (:mod:`.incremental`): only contacts whose inputs changed since
the last run are recomputed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
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

    ``changed_since`` is the run whose memberships these were compared with when they came from
    an external engine (its changes since); ``snapshots`` says that every earlier run's
    memberships can be compared with (a run on the embedded store: its snapshots are there).
    :meth:`changed_sql` names everyone who entered or left a segment since a given run, which is
    how the diff stage knows whose desired state may have moved.
    """

    segments: tuple[SegmentDef, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    evaluation: str = ""
    changed_since: int | None = None
    snapshots: bool = False
    # Names this evaluation's comparison tables (one connection may hold several runs' in tests).
    number: int = field(default_factory=lambda: next(_numbers), compare=False, repr=False)

    def members_sql(self) -> str:
        """SQL selecting ``(segment, contact_key)`` of every member of ``segments``."""
        return f"SELECT segment, contact_key FROM {MEMBERSHIP_TABLE}"

    def changed_sql(self, con: duckdb.DuckDBPyConnection, run_id: int) -> str | None:
        """SQL selecting the ``contact_key`` of everyone whose segments differ from those of run
        ``run_id`` (as snapshotted); None when that run's cannot be compared with."""
        if self.changed_since is not None and self.changed_since == run_id:
            return f"SELECT contact_key FROM {CHANGED_TABLE}"
        if not self.snapshots:
            return None
        table = f"{CHANGED_TABLE}_{self.number}_{int(run_id)}"  # once per run compared with
        before = f"SELECT segment, contact_key FROM segment_snapshots WHERE run_id = {int(run_id)}"
        now = self.members_sql()
        con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} AS SELECT DISTINCT contact_key FROM "
                    f"(({now} EXCEPT {before}) UNION ALL ({before} EXCEPT {now}))")
        return f"SELECT contact_key FROM {table}"


# Connection-local: the contacts whose memberships changed this run (Memberships.changed_sql).
CHANGED_TABLE = "_membership_changed"
_numbers = itertools.count(1)


def record_changes(con: duckdb.DuckDBPyConnection, previous_run: int | None, keys: Sequence[str]) -> int | None:
    """Keep ``keys`` as the contacts whose memberships changed since ``previous_run``; return
    ``previous_run`` (None: nothing to compare with)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CHANGED_TABLE} (contact_key VARCHAR)")
    if previous_run is None:
        return None
    con.execute(f"INSERT INTO {CHANGED_TABLE} SELECT DISTINCT unnest(?::VARCHAR[])", [list(keys)])
    return previous_run


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
    # A held segment's carried members are not in the run's snapshot: the diff plans in full
    # after such a run (segsync.sync.planning).
    return Memberships(tuple(config.segments), sizes, dict(checked.held), how, snapshots=run_id is not None)


"""The evaluate and consent stages of a sync run on an external engine (docs/scale.md).

The engine evaluates every segment and snapshots the result; only the membership changes since
its previous snapshot come back, applied to the embedded mirror (``engine_memberships``), from
which the run's ``segment_membership`` is filled: the diff, gate and push stages then run as on
the embedded store. Effective consent is derived in the engine under each destination's policy
and handed to the run as an :class:`~segsync.consent.rules.EffectiveConsent`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import duckdb
from sqlglot import exp

from segsync.consent.policies import ConsentPolicy
from segsync.consent.rules import EffectiveConsent, PolicyInputs
from segsync.engines.base import Engine
from segsync.engines.transfer import copy_state
from segsync.segments.definitions import SegmentsConfig
from segsync.segments.evaluate import MEMBERSHIP_TABLE
from segsync.segments.functions import FunctionRegistry
from segsync.segments.memberships import Memberships, record_changes
from segsync.segments.query import build_query
from segsync.segments.validate import validate

MIRROR = "engine_memberships"


def last_snapshot(engine: Engine) -> int | None:
    """The run of the engine's latest membership snapshot (None: never)."""
    rows = engine.query(exp.select(exp.Max(this=exp.column("run_id"))).from_("segment_snapshots"))
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def apply_changes(con: duckdb.DuckDBPyConnection, changes: Sequence[tuple[str, str, str]]) -> None:
    """Apply ``(segment, contact_key, enter|exit)`` rows to the mirror (idempotent: an entry
    already there or an exit already gone changes nothing)."""
    for change, statement in (
        ("exit", f"DELETE FROM {MIRROR} WHERE (segment, contact_key) IN "
                 "(SELECT unnest($s::VARCHAR[]), unnest($k::VARCHAR[]))"),
        ("enter", f"INSERT OR IGNORE INTO {MIRROR} SELECT unnest($s::VARCHAR[]), unnest($k::VARCHAR[])"),
    ):
        rows = [(s, k) for s, k, c in changes if c == change]
        if rows:
            con.execute(statement, {"s": [s for s, _ in rows], "k": [k for _, k in rows]})


def evaluate_members(engine: Engine, config: SegmentsConfig, as_of: datetime,
                     registry: FunctionRegistry) -> dict[str, int]:
    """A command's evaluation: ``config`` at ``as_of`` into the engine's ``segment_membership``
    (its own session's), where the command's questions are then asked; only the sizes come
    back, and no snapshot is taken."""
    return engine.evaluate(build_query(config.segments, config.groups, as_of, registry,
                                       dialect=engine.dialect))


def evaluate_on_engine(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    config: SegmentsConfig,
    as_of: datetime,
    registry: FunctionRegistry,
    run_id: int | None,
) -> Memberships:
    """Evaluate ``config`` in ``engine`` at ``as_of``, snapshot it there under ``run_id`` (none
    in a dry run), bring back the changes and fill the run's ``segment_membership``.

    A segment that cannot compile is held as on the embedded store: it keeps its mirrored
    members. Segments reading scores (segsync.scores, kept in the embedded store) are held."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {MEMBERSHIP_TABLE} "
                "(segment VARCHAR NOT NULL, contact_key VARCHAR NOT NULL)")
    if not config.segments:
        return Memberships()
    checked = validate(config.segments, config.groups, as_of, registry)
    if checked.score_models:
        why = f"scores are kept in the embedded store and not read on the {engine.name} engine"
        checked = validate(config.segments, config.groups, as_of, registry,
                           {model: why for model in checked.score_models})
    query = build_query(checked.segments, checked.groups, as_of, registry, dialect=engine.dialect)
    sizes = engine.evaluate(query)
    before = last_snapshot(engine)
    changes = [c for c in engine.membership_changes(before) if c[0] not in checked.held]
    apply_changes(con, changes)
    previous = None
    if run_id is not None:
        engine.snapshot(run_id, as_of)
        # The mirror moved by exactly these rows since run ``before``: the diff stage's input.
        previous = record_changes(con, before, [key for _, key, _ in changes])
    con.execute(f"INSERT INTO {MEMBERSHIP_TABLE} SELECT segment, contact_key FROM {MIRROR}")
    return Memberships(tuple(config.segments), sizes, dict(checked.held),
                       f"on {engine.name}: {len(changes)} membership changes came back", previous)


def consent_on_engine(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    policies: Mapping[str, ConsentPolicy],
    countries: Mapping[str, ConsentPolicy],
    *,
    as_of: datetime,
    clock_skew: timedelta,
    run_id: int | None,
) -> EffectiveConsent:
    """Effective consent of each destination (destination → its policy) derived in ``engine``
    after copying segsync's consent state there."""
    copy_state(con, engine)
    by_policy: dict[str, list[tuple]] = {}
    for policy in policies.values():
        if policy.name not in by_policy:
            by_policy[policy.name] = engine.effective_consent(policy, countries, as_of=as_of,
                                                              clock_skew=clock_skew)
    return EffectiveConsent.from_rows(con, {d: (p.name, by_policy[p.name]) for d, p in policies.items()},
                                      run_id, {d: PolicyInputs(p, countries, clock_skew) for d, p in policies.items()})

"""The evaluate and consent stages of a sync run on an external engine (docs/scale.md).

The engine evaluates every segment and snapshots the result; only the membership changes since
its previous snapshot come back, applied to the embedded mirror (``engine_memberships``), from
which the run's ``segment_membership`` is filled: the diff, gate and push stages then run as on
the embedded store. Effective consent is derived in the engine under each destination's policy;
only the decisions that changed come back, into the embedded mirror (``engine_consent``), from
which the run's :class:`~segsync.consent.rules.EffectiveConsent` is read.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import duckdb
from sqlglot import exp

from segsync.consent.policies import ConsentPolicy
from segsync.consent.rules import EffectiveConsent, PolicyInputs
from segsync.engines.base import Engine
from segsync.engines.mirror import CONSENT_MIRROR, sync_consent, sync_contacts
from segsync.engines.scores import scores_on_engine
from segsync.engines.transfer import copy_state
from segsync.scores import ScoreRun
from segsync.segments.definitions import SegmentsConfig
from segsync.segments.evaluate import MEMBERSHIP_TABLE
from segsync.segments.functions import FunctionRegistry
from segsync.segments.memberships import Memberships, record_changes
from segsync.segments.query import build_query
from segsync.segments.validate import validate

MIRROR = "engine_memberships"
log = logging.getLogger(__name__)
_numbers = itertools.count(1)


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
    score: Callable[[ScoreRun], None] | None = None,
) -> Memberships:
    """Evaluate ``config`` in ``engine`` at ``as_of``, snapshot it there under ``run_id`` (none
    in a dry run), bring back the changes and fill the run's ``segment_membership``.

    A segment that cannot compile is held as on the embedded store: it keeps its mirrored
    members. When rules read scores (segsync.scores), a run has ``score`` compute them in the
    store first and sends them to the engine (:mod:`segsync.engines.scores`); a segment whose
    scores cannot be read there is held with the reason."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {MEMBERSHIP_TABLE} "
                "(segment VARCHAR NOT NULL, contact_key VARCHAR NOT NULL)")
    if not config.segments:
        return Memberships()
    checked = validate(config.segments, config.groups, as_of, registry)
    if checked.score_models:
        missing = scores_on_engine(con, engine, checked.score_models, as_of, run_id, score)
        if missing:
            checked = validate(config.segments, config.groups, as_of, registry, missing)
    query = build_query(checked.segments, checked.groups, as_of, registry, dialect=engine.dialect)
    sizes = engine.evaluate(query)
    before = last_snapshot(engine)
    changes = [c for c in engine.membership_changes(before) if c[0] not in checked.held]
    apply_changes(con, changes)
    previous = None
    engine.received.add("memberships", len(changes))
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
    """Effective consent of each destination (destination → its policy), derived in ``engine``
    after copying segsync's consent state there; only the decisions that changed since the
    embedded mirror was last brought up to date come back (:mod:`segsync.engines.mirror`).
    Contacts of a ``contacts`` table mapped onto the user's are mirrored first, the same way,
    so the diff plans them too."""
    copy_state(con, engine)
    sync_contacts(con, engine, as_of=as_of, run_id=run_id, received=engine.received)
    by_name = {p.name: p for p in policies.values()}
    keys = sync_consent(con, engine, by_name, countries, as_of=as_of, clock_skew=clock_skew,
                        run_id=run_id, received=engine.received)
    for why in engine.received.rebuilt:
        log.info("the %s engine's %s: fetched whole", engine.name, why)
    log.info("rows from the %s engine: %s", engine.name, engine.received.rows)
    number = next(_numbers)
    tables: dict[str, str] = {}
    for n, key in enumerate(dict.fromkeys(keys.values())):
        tables[key] = f"_engine_consent_{number}_{n}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {tables[key]} AS SELECT contact_key, status, ledger_id, "
                    f"method, suppression_id, policy FROM {CONSENT_MIRROR} WHERE policy_key = ?", [key])
    # The diff's incremental planning (segsync.sync.planning) finds what moved in the store's
    # ledger and contacts: with any table mapped onto the user's, those move in the engine
    # instead, so the inputs are not given and every plan is a full one.
    inputs = {} if engine.tables else {d: PolicyInputs(p, countries, clock_skew) for d, p in policies.items()}
    return EffectiveConsent(con, {d: tables[keys[p.name]] for d, p in policies.items()}, run_id,
                            inputs=inputs)

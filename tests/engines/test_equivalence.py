"""The equivalence suite: one generated business, every standard function, every pack, groups
with a catch-all, segment dependencies and every consent policy (with a country policy), on each
engine; memberships, effective consent and the planned membership changes must equal DuckDB's
row by row (docs/scale.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segsync.consent.policies import DEFAULT
from segsync.engines.duckdb import DuckDBEngine
from segsync.engines.transfer import transfer
from segsync.plugins import PluginHost
from segsync.segments import GroupDef, SegmentDef, compile_sql, evaluate
from segsync.segments.builtins import standard_functions
from segsync.segments.packs import expand_packs
from segsync.segments.query import build_query
from segsync.store import Store

from .conftest import ENGINES
from .dataset import AS_OF, LATER, more_events, populate

CUSTOM_RULES = [
    'attr.tier == "gold"', "attr.score > 5", "attr.score <= 5", "attr.vip", "not attr.vip",
    'attr.signup < "2024-02-01"', "days_since(attr.signup) > 300", "days_since(attr.created_at) < 200",
    'attr.country in ("US", "CA")', 'attr.country != "DE"', "attr.company_size >= 50",
    'bucket("spring") < 0.25', 'bucket("spring") >= 0.25 and bucket("spring") < 0.5',
    'consentable("sms")', 'visited("/vip-rewards") and not consentable("email")',
    "sum(order.completed.items, 365d) >= 3", 'max("order.completed", "items", 90d) >= 2',
]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(load_entry_points=False)


@pytest.fixture(scope="module")
def definitions(host):
    segments = [SegmentDef(name="base_vip", rule="spend(365d) > 300")]
    for n, fn in enumerate(standard_functions()):
        rule = fn.example.replace('in_segment("vip")', 'in_segment("base_vip")')
        segments.append(SegmentDef(name=f"fn_{n}_{fn.name}", rule=rule))
    segments += [SegmentDef(name=f"custom_{n}", rule=r) for n, r in enumerate(CUSTOM_RULES)]
    segments += [
        SegmentDef(name="tier_a", rule="orders(365d) >= 3", group="tiers", priority=1),
        SegmentDef(name="tier_b", rule="opens(90d) >= 2", group="tiers", priority=2),
        SegmentDef(name="tier_rest", group="tiers"),
        SegmentDef(name="after_tiers", rule='in_segment("tier_b") and bucket("t") < 0.5'),
    ]
    packs, pack_groups = expand_packs({name: {} for name in host.segment_packs()}, host.segment_packs())
    groups = {"tiers": GroupDef(catch_all="tier_rest"), **pack_groups}
    return segments + packs, groups


@pytest.fixture(params=sorted(ENGINES))
def engine_name(request) -> str:
    return request.param


def _store():
    store = Store(":memory:")
    populate(store.con)
    return store


def _evaluate(engine, definitions, host, as_of):
    segments, groups = definitions
    query = build_query(segments, groups, as_of, host.segment_registry(), dialect=engine.dialect)
    return engine.evaluate(query), engine.members()


def test_memberships_consent_and_changes_equal_duckdb(engine_name, definitions, host, request, tmp_path) -> None:
    reference_store, store = _store(), _store()
    with DuckDBEngine(DuckDBEngine.Settings(), tmp_path, store=reference_store) as reference, \
            ENGINES[engine_name](request, store, tmp_path) as engine:
        # Memberships, row by row, and sizes.
        expected_sizes, expected = _evaluate(reference, definitions, host, AS_OF)
        sizes, members = _evaluate(engine, definitions, host, AS_OF)
        assert members == expected
        assert sizes == expected_sizes
        # The dataset exercises the rules: most segments have members, none has everyone.
        assert sum(1 for n in expected_sizes.values() if n) > len(expected_sizes) * 0.6
        assert len(expected) > 2000

        # Effective consent under every policy, with a country policy on top, and one person's.
        policies = host.consent_policies()
        for policy in policies.values():
            for countries in ({}, {"CA": policies["casl"]}):
                want = reference.effective_consent(policy, countries, as_of=AS_OF)
                assert engine.effective_consent(policy, countries, as_of=AS_OF) == want, policy.name
        everyone = reference.effective_consent(DEFAULT, as_of=AS_OF, clock_skew=timedelta(minutes=1))
        assert {row[1] for row in everyone} == {"subscribed", "unsubscribed", "pending", "cleaned", "complained"}
        assert engine.effective_consent(DEFAULT, as_of=AS_OF, clock_skew=timedelta(minutes=1)) == everyone
        one = everyone[len(everyone) // 2][0]
        assert engine.effective_consent(DEFAULT, as_of=AS_OF, contact_key=one) == \
            [row for row in everyone if row[0] == one]

        # Snapshots and the planned changes of a second run, after a second pull.
        assert engine.snapshot(1, AS_OF) == reference.snapshot(1, AS_OF) == len(expected)
        assert engine.membership_changes(None) == reference.membership_changes(None)
        for source in (reference_store, store):
            source.con.execute("INSERT INTO runs (id, started_at, status, as_of) VALUES (2, ?, 'running', ?)",
                               [LATER, LATER])
            more_events(source.con, run_id=2)
        if engine.name != "duckdb":  # the embedded engine reads the store itself
            assert transfer(store.con, engine)["events"] == 60
        _, expected_later = _evaluate(reference, definitions, host, LATER)
        _, later = _evaluate(engine, definitions, host, LATER)
        assert later == expected_later
        changes = reference.membership_changes(1)
        assert {c for _, _, c in changes} == {"enter", "exit"}
        assert engine.membership_changes(1) == changes
    reference_store.close()
    store.close()


# What `segments show --sql` renders differently per engine: JSON attributes read as a number, a
# flag and a date (TRY_CAST), epoch seconds, md5 buckets, the consent rule, a group's priority.
SHOWN = ["custom_1", "custom_3", "custom_5", "custom_6", "custom_11", "custom_14", "tier_b"]


def test_the_sql_shown_for_an_engine_is_what_it_runs(engine_name, definitions, host, request, tmp_path) -> None:
    segments, groups = definitions
    reference_store, store = _store(), _store()
    evaluate(reference_store.con, segments, groups, AS_OF, host.segment_registry())
    with ENGINES[engine_name](request, store, tmp_path) as engine:
        for name in SHOWN:
            shown = compile_sql(name, segments, groups, as_of=AS_OF, registry=host.segment_registry(),
                                dialect=engine.dialect, tables=engine.renamed_tables())
            expected = [k for (k,) in reference_store.con.execute(
                "SELECT contact_key FROM segment_membership WHERE segment = ? ORDER BY contact_key",
                [name]).fetchall()]
            assert expected, name  # the dataset gives each of them members
            assert sorted(k for (k,) in engine.rows(shown)) == expected, name
    reference_store.close()
    store.close()

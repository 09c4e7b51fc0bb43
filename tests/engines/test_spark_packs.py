"""The project's packs and groups, compiled for Spark SQL, give the embedded store's members
and effective consent on a generated business (contacts, two years of events, opt-outs, a
consent ledger and segsync's own pushes to a destination, so echoes are in play too)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from segsync.config import load_config
from segsync.consent.policies import DEFAULT
from segsync.consent.rules import EffectiveConsent
from segsync.plugins import PluginHost
from segsync.scaffold import write_project
from segsync.segments import evaluate
from segsync.segments.query import build_query
from segsync.engines.transfer import transfer
from segsync.store import Store
from segsync.sync.runner import RunOptions, Runner

from segsync_spark.engine import SparkEngine, SparkSettings


NOW = datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
EVERY_PACK = """
[packs.lifecycle]
[packs.value]
[packs.triggers]
categories = ["shoes", "outdoor"]
"""


@pytest.fixture(scope="module")
def business(tmp_path_factory):
    """A synced project with every standard pack: its config, host and store."""
    root = tmp_path_factory.mktemp("business")
    write_project(root, contacts=400, now=NOW)
    with (root / "segsync.toml").open("a", encoding="utf-8") as config:
        config.write(EVERY_PACK)
    host = PluginHost()
    config = load_config(root / "segsync.toml", host)
    summary = Runner(config, host, clock=lambda: NOW).run(RunOptions())
    assert summary.status == "with-rejections"  # the sample data's deliberately broken rows
    with Store(config.store_path, read_only=True) as store:
        yield config, host, store


def test_every_pack_and_group_has_the_stores_members_on_spark(business, spark_engine: SparkEngine) -> None:
    config, host, store = business
    segments, groups = config.segments.segments, config.segments.groups
    assert {s.group for s in segments} == {None, "engagement", "lifecycle", "rfm"}
    assert transfer(store.con, spark_engine)["contacts"] == 400
    assert store.con.execute("SELECT count(*) FROM status_changes").fetchone()[0] > 0  # echoes in play
    registry = host.segment_registry()
    query = build_query(segments, groups, NOW, registry, dialect="spark")
    spark_sizes = spark_engine.evaluate(query)
    duck_sizes = evaluate(store.con, segments, groups, NOW, registry)
    assert spark_sizes == duck_sizes
    assert spark_engine.members() == sorted(store.con.execute(
        "SELECT segment, contact_key FROM segment_membership").fetchall())
    # A group with a catch-all puts each contact in exactly one of its segments.
    for group in ("engagement", "lifecycle"):
        assert groups[group].catch_all
        assert sum(spark_sizes[s.name] for s in segments if s.group == group) == 400
    assert all(spark_sizes.values())  # every segment has members: equal is not empty


def test_effective_consent_with_echoes_is_the_stores_on_spark(business, spark_engine: SparkEngine) -> None:
    _, _, store = business
    transfer(store.con, spark_engine)
    with EffectiveConsent.build(store.con, {"d": DEFAULT}, {}, as_of=NOW) as consent:
        local = store.con.execute(consent.status_sql("d") + " ORDER BY contact_key").fetchall()
    statuses = {r[1] for r in local}
    assert {"subscribed", "unsubscribed"} <= statuses
    assert spark_engine.effective_consent(DEFAULT, as_of=NOW) == local

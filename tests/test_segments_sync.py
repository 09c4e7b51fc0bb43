"""Segments in a sync run: evaluated once per run, snapshotted, pushed as entries and exits."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from segsync.config import ConfigError
from segsync.store import Store

from .conftest import BASIC_CONFIG, MemoryConnector

SEGMENTS = """
    [[segments]]
    name = "openers"
    rule = "opens(30d) >= 1"

    [[segments]]
    name = "gold"
    rule = 'attr.tier == "gold"'
    [segments.destinations.upload]
    tag = "Gold tier"
    attribute = "is_gold"

    [groups.engagement]
    catch_all = "quiet"

    [[segments]]
    name = "active"
    group = "engagement"
    priority = 1
    rule = "opens(90d) >= 1"

    [[segments]]
    name = "quiet"
    group = "engagement"
"""


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture
def segmented(project):
    project.write_config(BASIC_CONFIG + SEGMENTS)
    return project


def test_memberships_reach_the_destination_as_tags_and_attributes(segmented) -> None:
    summary = segmented.run(as_of=at("2024-02-10T00:00:00"))
    assert summary.segments == {"openers": 1, "gold": 1, "active": 1, "quiet": 2}
    audience = segmented.audience()
    assert audience["ann@example.com"]["tags"] == ["Gold tier", "active", "openers"]
    assert audience["ann@example.com"]["attributes"]["is_gold"] is True
    assert audience["bo@example.com"]["tags"] == ["quiet"]
    assert audience["bo@example.com"]["attributes"]["is_gold"] is False
    with Store(segmented.root / "store.duckdb", read_only=True) as store:
        assert store.con.execute(
            "SELECT segment, count(*) FROM segment_snapshots WHERE run_id = 1 GROUP BY 1 ORDER BY 1"
        ).fetchall() == [("active", 1), ("gold", 1), ("openers", 1), ("quiet", 2)]
        assert store.con.execute(
            "SELECT contact_key, segment FROM acknowledged_memberships WHERE destination = 'upload' ORDER BY 1, 2"
        ).fetchall() == [("ann@example.com", "Gold tier"), ("ann@example.com", "active"),
                         ("ann@example.com", "openers"), ("bo@example.com", "quiet")]


def test_windows_expire_with_time_alone_and_exits_are_pushed(segmented, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_API_KEY", "k")
    segmented.write_config(BASIC_CONFIG + '[connections.crm]\ntype = "memory"\n' + SEGMENTS)
    segmented.run(as_of=at("2024-02-10T00:00:00"))
    # "gold" names only the upload destination, so crm never sees it.
    assert MemoryConnector.held["crm"]["ann@example.com"]["tags"] == ["active", "openers"]
    seen = []

    from segsync import hookimpl

    class Recorder:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            if connector.connection == "crm":
                seen.extend((c.contact_key, c.tags_add, c.tags_remove) for c in changes)
            return (yield)

    # No new input, but 40 days later the open is outside the 30-day window.
    later = segmented.run(Recorder(), as_of=at("2024-03-12T00:00:00"))
    assert later.segments["openers"] == 0 and later.segments["active"] == 1
    assert seen == [("ann@example.com", (), ("openers",))]
    # And a re-run at the same instant changes nothing.
    again = segmented.run(as_of=at("2024-03-12T00:00:00"))
    assert all(d.planned == {} for d in again.destinations)


def test_as_of_makes_runs_reproducible(segmented) -> None:
    first = segmented.run(as_of=at("2024-02-10T00:00:00"), dry_run=True)
    second = segmented.run(as_of=at("2024-02-10T00:00:00"), dry_run=True)
    assert first.segments == second.segments == {"openers": 1, "gold": 1, "active": 1, "quiet": 2}


def test_bad_segment_config_is_a_config_error(project) -> None:
    project.write_config(BASIC_CONFIG + '[[segments]]\nname = "x"\nrule = "opens(30d) >="\n')
    with pytest.raises(ConfigError, match="segments"):
        project.run()
    project.write_config(BASIC_CONFIG + '[[segments]]\nname = "x"\nrule = "opens(30d) > 1"\n[segments.destinations.nowhere]\ntag = "x"\n')
    with pytest.raises(ConfigError, match="names destinations that are not connections: nowhere"):
        project.run()

"""segsync.testing.Project runs real syncs; a FakeClock decides when they happen."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from segsync.store import Store
from segsync.testing import SAMPLE_CONFIG, FakeClock, Project

UTC = timezone.utc


@pytest.fixture(autouse=True)
def _only_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")


def test_the_sample_project_syncs_into_its_files_destination(tmp_path) -> None:
    project = Project.sample(tmp_path)
    assert (tmp_path / "segsync.toml").read_text().strip().startswith('[store]\npath = "store.duckdb"')
    assert sorted(p.name for p in project.data.iterdir()) == ["consent.csv", "contacts.csv", "events.jsonl"]
    summary = project.run()
    assert (summary.status, summary.sources[0].loaded) == (
        "succeeded", {"contacts": 3, "consent": 2, "events": 1})
    assert {k: v["status"] for k, v in project.audience().items()} == {
        "ann@example.com": "subscribed", "bo@example.com": "subscribed"}
    assert project.audience("out/nothing-here") == {}


def test_runs_happen_when_the_fake_clock_says(tmp_path) -> None:
    clock = FakeClock("2024-02-10T00:00:00Z")
    project = Project.sample(tmp_path, clock=clock)
    # Ann opened an email on 2024-02-01: in a 30-day window on 02-10, out of it 30 days later.
    project.write_config(SAMPLE_CONFIG + """
        [[segments]]
        name = "engaged"
        rule = "opens(30d) >= 1"
    """)
    first = project.run()
    assert (first.as_of, first.segments) == (datetime(2024, 2, 10, tzinfo=UTC), {"engaged": 1})
    assert project.audience()["ann@example.com"]["tags"] == ["engaged"]
    clock.advance(days=30)
    later = project.run()
    assert (later.as_of, later.segments) == (datetime(2024, 3, 11, tzinfo=UTC), {"engaged": 0})
    assert project.audience()["ann@example.com"]["tags"] == []
    # An explicit as_of still wins over the clock.
    assert project.run(as_of=datetime(2024, 2, 5, tzinfo=UTC)).segments == {"engaged": 1}
    with Store(tmp_path / "store.duckdb", read_only=True) as store:
        assert [r["as_of"] for r in store.runs()] == [
            "2024-02-05T00:00:00+00:00", "2024-03-11T00:00:00+00:00", "2024-02-10T00:00:00+00:00"]

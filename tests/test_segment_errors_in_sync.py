"""A rule that parses but does not compile: the run names it, keeps its memberships, and
everything else proceeds; `check` finds it first."""

from __future__ import annotations

from datetime import datetime, timezone

from click.testing import CliRunner

from segsync.cli import cli
from segsync.store import Store

from .conftest import BASIC_CONFIG
from .test_segments_sync import SEGMENTS


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


BROKEN = (SEGMENTS
          .replace("rule = 'attr.tier == \"gold\"'", "rule = 'attr.created_at > 5'")
          .replace('rule = "opens(90d) >= 1"', 'rule = "count(email.opend, 90d) >= 1"'))
GOLD_ERROR = (
    "segment 'gold': line 1, column 17: cannot compare a timestamp with a number: "
    "'attr.created_at > 5'\n    attr.created_at > 5\n                    ^"
)
ACTIVE_ERROR = (
    "segment 'active': line 1, column 7: unknown event type 'email.opend'; did you mean "
    "'email.opened'? (event types: `segsync plugins`, docs/records.md)\n"
    "    count(email.opend, 90d) >= 1\n          ^"
)


def test_a_segment_that_cannot_compile_keeps_its_members_and_the_rest_proceeds(project) -> None:
    project.write_config(BASIC_CONFIG + SEGMENTS)
    first = project.run(as_of=at("2024-02-10T00:00:00"))
    assert first.status == "succeeded"
    before = project.audience()
    assert before["ann@example.com"]["tags"] == ["Gold tier", "active", "openers"]

    project.write_config(BASIC_CONFIG + BROKEN)
    # 40 days later: "openers" (still valid) loses Ann; the broken segments must not.
    summary = project.run(as_of=at("2024-03-21T00:00:00"))
    assert summary.status == "partial" and summary.failed
    assert summary.segment_errors == {
        "gold": GOLD_ERROR,
        "active": ACTIVE_ERROR,
        "quiet": "segment 'quiet' is in group 'engagement' with segment 'active', which cannot be evaluated",
    }
    assert summary.segments == {"openers": 0}
    after = project.audience()
    assert after["ann@example.com"]["tags"] == ["Gold tier", "active"]
    assert after["ann@example.com"]["attributes"]["is_gold"] is True
    assert after["bo@example.com"]["tags"] == ["quiet"]
    assert summary.destinations[0].planned == {"update": 1}
    with Store(project.root / "store.duckdb", read_only=True) as store:
        assert store.con.execute(
            "SELECT record, field, reason FROM record_errors WHERE run_id = 2 AND phase = 'evaluate' "
            "ORDER BY record").fetchall() == [
            ("active", "rule", ACTIVE_ERROR), ("gold", "rule", GOLD_ERROR),
            ("quiet", "rule", summary.segment_errors["quiet"])]
        # Held segments are not snapshotted as this run's evaluation.
        assert store.con.execute(
            "SELECT DISTINCT segment FROM segment_snapshots WHERE run_id = 2").fetchall() == []

    # Still broken a run later: still the memberships of the last run that evaluated them.
    again = project.run(as_of=at("2024-03-22T00:00:00"))
    assert again.status == "partial" and again.destinations[0].planned == {}

    project.write_config(BASIC_CONFIG + SEGMENTS)
    fixed = project.run(as_of=at("2024-03-22T00:00:00"))
    assert fixed.status == "succeeded" and fixed.segment_errors == {}
    assert project.audience()["ann@example.com"]["tags"] == ["Gold tier", "active"]


def test_a_segment_depending_on_a_broken_one_is_held_too(project) -> None:
    project.write_config(BASIC_CONFIG + """
        [[segments]]
        name = "base"
        rule = "opens(30d) > zero"

        [[segments]]
        name = "derived"
        rule = 'in_segment("base") or attr.tier == "gold"'

        [[segments]]
        name = "fine"
        rule = 'attr.tier == "silver"'
    """)
    summary = project.run(as_of=at("2024-02-10T00:00:00"))
    assert summary.segment_errors["derived"] == (
        "segment 'derived' depends on segment 'base', which cannot be evaluated")
    assert summary.segment_errors["base"].startswith(
        "segment 'base': line 1, column 14: unknown name 'zero'")
    assert summary.segments == {"fine": 1}
    with Store(project.root / "store.duckdb", read_only=True) as store:
        assert store.con.execute("SELECT segment, contact_key FROM segment_snapshots").fetchall() == [
            ("fine", "cy@example.com")]


def test_check_lists_rule_problems_and_sync_exits_1_without_a_traceback(project, monkeypatch) -> None:
    project.write_config(BASIC_CONFIG + BROKEN)
    monkeypatch.chdir(project.root)
    checked = CliRunner().invoke(cli, ["check"])
    assert checked.exit_code == 1, checked.output
    assert f"✗ segments (4)\n    {GOLD_ERROR.replace(chr(10), chr(10) + '    ')}\n" in checked.output
    assert "    segment 'quiet' is in group 'engagement' with segment 'active'" in checked.output
    assert "✓ shop (files)" in checked.output and "✓ upload (files)" in checked.output
    synced = CliRunner().invoke(cli, ["sync"])
    assert synced.exit_code == 1 and synced.exception is None or isinstance(synced.exception, SystemExit)
    assert GOLD_ERROR in synced.output and "Traceback" not in synced.output
    assert "Those segments kept their last membership everywhere" in synced.output

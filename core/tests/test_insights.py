"""``segsync.insights``, the public read API over a project's figures: exact numbers on a small
store after two real sync runs, and no address in anything it returns."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from segsync.insights import ConsentCount, GroupSplit, HistoryRow, SegmentSize
from segsync.testing import SAMPLE_CONFIG, Project

FEB_10 = datetime(2024, 2, 10, tzinfo=timezone.utc)
MAR_12 = datetime(2024, 3, 12, tzinfo=timezone.utc)

SEGMENTS = """
    [[segments]]
    name = "openers"
    description = "Opened in the last 30 days"
    rule = "opens(30d) >= 1"

    [[segments]]
    name = "gold"
    rule = 'attr.tier == "gold"'
    [segments.destinations.upload]
    tag = "Gold tier"

    [groups.engagement]
    description = "Who reads us"
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


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """ann (gold, opted in by form): 4 sends, 1 open, 1 click, an order of 120 before Feb 10;
    bo (double opt-in): 2 sends, a bounce, an unsubscribe event; cy: opted out; dee: no consent
    record. Synced on Feb 10 (run 1) and Mar 12 (run 2)."""
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    project = Project.sample(tmp_path)
    project.write_config(SAMPLE_CONFIG + SEGMENTS)
    project.append("contacts.csv", "dee@example.com,Dee,\n")
    project.append("events.jsonl", """
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-15T00:00:00Z", "id": "s1"}
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-22T00:00:00Z", "id": "s2"}
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-29T00:00:00Z", "id": "s3"}
        {"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-02-05T00:00:00Z", "id": "s4"}
        {"email": "ann@example.com", "type": "email.clicked", "timestamp": "2024-02-05T01:00:00Z", "id": "c1"}
        {"email": "ann@example.com", "type": "order.completed", "timestamp": "2024-02-06T00:00:00Z", "id": "o1", "value": 120, "currency": "EUR"}
        {"email": "bo@example.com", "type": "email.sent", "timestamp": "2024-02-01T00:00:00Z", "id": "s5"}
        {"email": "bo@example.com", "type": "email.sent", "timestamp": "2024-02-05T00:00:00Z", "id": "s6"}
        {"email": "bo@example.com", "type": "email.bounced", "timestamp": "2024-02-05T00:10:00Z", "id": "b1"}
        {"email": "bo@example.com", "type": "email.unsubscribed", "timestamp": "2024-02-06T00:00:00Z", "id": "u1"}
    """)
    project.append("consent.csv", "cy@example.com,opted_out,2024-02-03T00:00:00Z,email_link\n")
    assert project.run(as_of=FEB_10).status == "succeeded"
    assert project.run(as_of=MAR_12).status == "succeeded"
    return project


def test_sizes_groups_and_history(small: Project) -> None:
    with small.insights(as_of=MAR_12) as view:
        assert view.as_of == MAR_12
        assert view.segments() == [
            SegmentSize("openers", "Opened in the last 30 days", None, "opens(30d) >= 1", 0),
            SegmentSize("gold", "", None, 'attr.tier == "gold"', 1),
            SegmentSize("active", "", "engagement", "opens(90d) >= 1", 1),
            SegmentSize("quiet", "", "engagement", None, 3),
        ]
        assert view.groups() == [GroupSplit("engagement", "Who reads us", (("active", 1), ("quiet", 3)), "quiet")]
        assert view.groups()[0].total == 4
        # ann's only open (Feb 1) leaves the 30-day window before Mar 12: she exits in run 2.
        assert view.history("openers") == [HistoryRow(1, FEB_10, 1, 1, 0), HistoryRow(2, MAR_12, 0, 0, 1)]
        assert view.history("quiet") == [HistoryRow(1, FEB_10, 3, 3, 0), HistoryRow(2, MAR_12, 3, 0, 0)]
        assert view.history("quiet", last=1) == [HistoryRow(2, MAR_12, 3, 0, 0)]
        assert view.history("nobody") == []


def test_overlap_and_performance(small: Project) -> None:
    with small.insights(as_of=FEB_10) as view:
        pairs = {(o.a, o.b): (o.both, o.share_of_a, o.share_of_b, o.exclusive) for o in view.overlap()}
        assert pairs == {
            ("openers", "gold"): (1, 1.0, 1.0, False), ("openers", "active"): (1, 1.0, 1.0, False),
            ("openers", "quiet"): (0, 0.0, 0.0, False), ("gold", "active"): (1, 1.0, 1.0, False),
            ("gold", "quiet"): (0, 0.0, 0.0, False), ("active", "quiet"): (0, 0.0, 0.0, True),
        }
        rows = {p.segment: p.to_dict() for p in view.performance(timedelta(days=30))}
    assert list(rows) == ["openers", "gold", "active", "quiet"]
    assert rows["gold"] == {
        "segment": "gold", "members": 1, "sends": 4, "opens": 1, "clicks": 1, "orders": 1,
        "unsubscribes": 0, "bounces": 0, "revenue": 120.0, "open_rate": 0.25,
        "click_rate": 0.25, "conversion_rate": 0.25, "unsubscribe_rate": 0.0,
        "bounce_rate": 0.0, "revenue_per_email": 30.0}
    # quiet: bo (unsubscribe event, bounce), cy (opted out in the ledger), dee: over bo's 2 sends.
    quiet = rows["quiet"]
    assert (quiet["members"], quiet["sends"], quiet["unsubscribes"], quiet["bounces"]) == (3, 2, 2, 1)
    assert (quiet["unsubscribe_rate"], quiet["bounce_rate"], quiet["revenue_per_email"]) == (1.0, 0.5, 0.0)


def test_consent_counts_per_system(small: Project) -> None:
    with small.insights(as_of=MAR_12) as view:
        counts = view.consent_counts()
    assert counts == [
        # shop's latest record per person: ann and bo opted in, cy opted out; dee has none.
        ConsentCount("shop", "reported", "subscribed", 2),
        ConsentCount("shop", "reported", "unsubscribed", 1),
        # The files destination acknowledged ann and bo as subscribed (cy and dee never sent).
        ConsentCount("upload", "holds", "subscribed", 2),
        ConsentCount("policy default", "effective", "subscribed", 2),
        ConsentCount("policy default", "effective", "none", 1),
        ConsentCount("policy default", "effective", "unsubscribed", 1),
    ]


def test_nothing_returned_holds_an_address(small: Project) -> None:
    with small.insights(as_of=FEB_10) as view:
        everything = [view.segments(), view.groups(), view.overlap(), view.consent_counts(),
                      view.performance(timedelta(days=30)), *(view.history(s.name) for s in view.segments())]
    assert "@" not in repr(everything)
    assert "example.com" not in repr(everything)


def test_a_project_never_synced_has_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    project = Project.sample(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no store at .*store\.duckdb; run `segsync sync`"):
        with project.insights():
            pass


def test_a_plugin_command_reads_the_project_of_its_invocation(small: Project) -> None:
    """open_insights takes --config and the plugin host from the command line it runs in."""
    import click
    from click.testing import CliRunner

    from segsync.cli import cli
    from segsync.insights import open_insights

    @click.command("sizes")
    def sizes() -> None:
        with open_insights(as_of=MAR_12) as view:
            click.echo(" ".join(f"{s.name}={s.size}" for s in view.segments()))

    host = small.host()
    host.add_commands(cli)
    cli.add_command(sizes)
    try:
        result = CliRunner().invoke(cli, ["--config", str(small.root / "segsync.toml"), "sizes"], obj=host)
    finally:
        cli.commands.pop("sizes")
    assert (result.exit_code, result.output) == (0, "openers=0 gold=1 active=1 quiet=3\n")
    with pytest.raises(RuntimeError, match=r"^open_insights\(\) reads the figures of the segsync command that is running"):
        with open_insights(small.root):
            pass


def test_score_distributions(small: Project) -> None:
    from segsync.insights import ScoreDistribution
    from segsync.store import Store

    with small.insights(as_of=MAR_12) as view:
        assert view.score_distributions() == []  # no plugin has scored anyone
    # What a scoring plugin (segsync-predict) leaves in the store (segsync.scores): per run and
    # model, whether it computed the scores, and the scores.
    with Store(small.root / "store.duckdb") as store:
        store.con.execute("INSERT INTO score_runs (run_id, model, as_of, computed, detail) VALUES "
                          "(1, 'churn', $feb, true, NULL), (2, 'churn', $mar, true, NULL), "
                          "(2, 'hour', $mar, true, NULL), (1, 'broken', $feb, true, NULL), "
                          "(2, 'broken', $mar, false, 'too little history')",
                          {"feb": FEB_10, "mar": MAR_12})
        store.con.execute("INSERT INTO contact_scores VALUES (1, 'churn', 'ann@example.com', 0.9), "
                          "(2, 'churn', 'ann@example.com', 0.05), (2, 'churn', 'bo@example.com', 0.1), "
                          "(2, 'churn', 'cy@example.com', 0.95), (2, 'churn', 'dee@example.com', 1.0), "
                          "(2, 'hour', 'ann@example.com', 7), (2, 'hour', 'bo@example.com', 9), "
                          "(2, 'hour', 'cy@example.com', 9), (1, 'broken', 'ann@example.com', 0.5)")
    with small.insights(as_of=MAR_12) as view:
        broken, churn, hour = view.score_distributions()
    # Rules at Mar 12 read run 2, which could not compute it: no bins, and why (not run 1's).
    assert broken == ScoreDistribution("broken", 2, MAR_12, (), (), "too little history")
    # Tenths of [0, 1], the last one closed: 0.05 | 0.1 | 0.95 and 1.0.
    assert churn == ScoreDistribution("churn", 2, MAR_12, tuple((i / 10, (i + 1) / 10) for i in range(10)),
                                      (1, 1, 0, 0, 0, 0, 0, 0, 0, 2))
    assert churn.contacts == 4
    # Beyond [0, 1]: one bin per whole number from the lowest to the highest.
    assert hour == ScoreDistribution("hour", 2, MAR_12, ((7.0, 8.0), (8.0, 9.0), (9.0, 10.0)), (1, 0, 2))
    # As of Feb 10 only run 1 had scored: ann's 0.9 and 0.5.
    with small.insights(as_of=FEB_10) as view:
        assert [(d.model, d.run_id, d.bins) for d in view.score_distributions()] == [
            ("broken", 1, (0, 0, 0, 0, 0, 1, 0, 0, 0, 0)), ("churn", 1, (0, 0, 0, 0, 0, 0, 0, 0, 0, 1))]


def test_parse_as_of_names_what_is_wrong() -> None:
    from segsync.insights import parse_as_of

    assert parse_as_of("2024-02-10T01:00:00+01:00") == FEB_10
    assert parse_as_of("2024-02-10T00:00:00Z") == FEB_10
    with pytest.raises(ValueError, match=r"^'2024-02-10T00:00:00' has no time zone; add Z or an offset$"):
        parse_as_of("2024-02-10T00:00:00")
    with pytest.raises(ValueError, match=r"^'yesterday' is not an ISO 8601 timestamp$"):
        parse_as_of("yesterday")
    with pytest.raises(ValueError, match=r"^'0001-01-01T00:00:00\+01:00' is out of range in UTC$"):
        parse_as_of("0001-01-01T00:00:00+01:00")

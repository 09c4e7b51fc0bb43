"""``segsync segments …`` on a small project: exact output after real sync runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from segsync import hookimpl
from segsync.cli import cli
from segsync.segments.packs import PackParam, PackSegment, SegmentPack

from .conftest import BASIC_CONFIG
from .test_segments_sync import SEGMENTS


FEB_10 = "2024-02-10T00:00:00Z"
MAR_12 = "2024-03-12T00:00:00Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.fixture
def segmented(project):
    project.write_config(BASIC_CONFIG + SEGMENTS)
    # ann: 4 sends, 1 open, 1 click, 1 order of 120 in the 30 days to Feb 10;
    # bo: 2 sends, a bounce and an unsubscribe; cy: opted out in the ledger.
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
    return project


def invoke(project, *args, plugins=()):
    host = project.host(*plugins)
    host.add_commands(cli)
    result = CliRunner().invoke(
        cli, ["--config", str(project.root / "segsync.toml"), "segments", *args], obj=host,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_list_json_shape_and_sizes(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    assert json.loads(invoke(segmented, "list", "--json", "--as-of", FEB_10)) == [
        {"name": "openers", "group": None, "rule": "opens(30d) >= 1", "size": 1},
        {"name": "gold", "group": None, "rule": 'attr.tier == "gold"', "size": 1},
        {"name": "active", "group": "engagement", "rule": "opens(90d) >= 1", "size": 1},
        {"name": "quiet", "group": "engagement", "rule": None, "size": 2},
    ]
    text = invoke(segmented, "list", "--as-of", FEB_10)
    assert "Group engagement (3 contacts, exclusive): active 1, quiet 2" in text


def test_members_show_preview_and_explain(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    assert json.loads(invoke(segmented, "members", "quiet", "--json", "--as-of", FEB_10)) == [
        "bo@example.com", "cy@example.com"]
    assert invoke(segmented, "members", "openers", "--as-of", FEB_10) == "ann@example.com\n"
    shown = invoke(segmented, "show", "gold", "--sql", "--as-of", FEB_10)
    assert "gold\n  rule: attr.tier == \"gold\"\n  destination upload: tag='Gold tier', attribute='is_gold'\n" in shown
    assert "size as of 2024-02-10T00:00:00+00:00: 1\n  sample: ann@example.com\n" in shown
    assert "SELECT" in shown and "contacts AS c" in shown
    # Forty days on, ann's open has left the 30-day window: she would exit.
    preview = invoke(segmented, "preview", "openers", "--as-of", MAR_12)
    assert preview == ("openers as of 2024-03-12T00:00:00+00:00: 0 contacts\n"
                       "  vs run 1: +0 would enter, -1 would exit\n")
    assert json.loads(invoke(segmented, "preview", "quiet", "--json", "--limit", "1",
                             "--as-of", FEB_10)) == {
        "name": "quiet", "as_of": "2024-02-10T00:00:00+00:00", "size": 2, "since_run": 1,
        "entries": 0, "exits": 0, "sample": ["bo@example.com"]}
    explained = invoke(segmented, "explain", "openers", "ANN@example.com", "--as-of", FEB_10)
    assert explained == ("ann@example.com is in 'openers' as of 2024-02-10T00:00:00+00:00\n"
                         "  opens(30d) >= 1  =>  True\n"
                         "    opens(30d)  =>  1\n")
    quiet = invoke(segmented, "explain", "quiet", "bo@example.com", "--as-of", FEB_10)
    assert "no segment matched, so the contact is in the catch-all 'quiet'" in quiet


def test_unknown_segment_suggests_a_name(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    host = segmented.host()
    host.add_commands(cli)
    result = CliRunner().invoke(cli, ["--config", str(segmented.root / "segsync.toml"),
                                      "segments", "members", "opener"], obj=host)
    assert result.exit_code == 1
    assert "no segment 'opener'; did you mean 'openers'?" in result.output


def test_overlap_counts_shares_and_flags(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    rows = json.loads(invoke(segmented, "overlap", "--json", "--as-of", FEB_10))
    pairs = {(r["a"], r["b"]): r for r in rows}
    assert len(rows) == 6
    # Both hold ann; "gold" goes to upload only, "openers" (no destinations) everywhere.
    assert pairs[("openers", "gold")] == {
        "a": "openers", "b": "gold", "both": 1, "share_of_a": 1.0, "share_of_b": 1.0,
        "exclusive": False, "shared_destinations": ["upload"], "flagged": True}
    assert pairs[("active", "quiet")]["exclusive"] is True
    assert pairs[("active", "quiet")]["flagged"] is False
    assert pairs[("gold", "quiet")]["both"] == 0 and pairs[("gold", "quiet")]["flagged"] is False
    only = json.loads(invoke(segmented, "overlap", "quiet", "openers", "--json", "--as-of", FEB_10))
    assert [(r["a"], r["b"], r["both"]) for r in only] == [("quiet", "openers", 0)]
    table = invoke(segmented, "overlap", "openers", "gold", "--as-of", FEB_10)
    assert "both sent to upload" in table and "100.0%" in table


def test_history_after_two_runs(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    segmented.run(as_of=at(MAR_12))
    # openers: ann at Feb 10; nobody a month later (a run with no member leaves no snapshot
    # rows, its counts still show it evaluated the segment).
    assert json.loads(invoke(segmented, "history", "openers", "--json")) == [
        {"run_id": 1, "as_of": "2024-02-10T00:00:00+00:00", "size": 1, "entries": 1, "exits": 0},
        {"run_id": 2, "as_of": "2024-03-12T00:00:00+00:00", "size": 0, "entries": 0, "exits": 1},
    ]
    assert json.loads(invoke(segmented, "history", "quiet", "--json")) == [
        {"run_id": 1, "as_of": "2024-02-10T00:00:00+00:00", "size": 2, "entries": 2, "exits": 0},
        {"run_id": 2, "as_of": "2024-03-12T00:00:00+00:00", "size": 2, "entries": 0, "exits": 0},
    ]
    assert "│   2 │ 2024-03-12 00:00 │    0 │      +0 │    -1 │" in invoke(segmented, "history", "openers")


def test_report_figures(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    rows = {r["segment"]: r for r in json.loads(
        invoke(segmented, "report", "--window", "30d", "--json", "--as-of", FEB_10))}
    assert rows["gold"] == {
        "segment": "gold", "members": 1, "sends": 4, "opens": 1, "clicks": 1, "orders": 1,
        "unsubscribes": 0, "bounces": 0, "revenue": 120.0, "open_rate": 0.25,
        "click_rate": 0.25, "conversion_rate": 0.25, "unsubscribe_rate": 0.0,
        "bounce_rate": 0.0, "revenue_per_email": 30.0}
    # bo unsubscribed by event and cy in the consent ledger; bo bounced: over 2 sends.
    quiet = rows["quiet"]
    assert (quiet["members"], quiet["sends"], quiet["unsubscribes"], quiet["bounces"]) == (2, 2, 2, 1)
    assert (quiet["unsubscribe_rate"], quiet["bounce_rate"], quiet["open_rate"]) == (1.0, 0.5, 0.0)
    # A 3-day window holds only ann's Feb 8.. nothing: no sends, rates 0.
    short = json.loads(invoke(segmented, "report", "gold", "--window", "24h", "--json", "--as-of", FEB_10))
    assert short == [{"segment": "gold", "members": 1, "sends": 0, "opens": 0, "clicks": 0,
                      "orders": 0, "unsubscribes": 0, "bounces": 0, "revenue": 0.0,
                      "open_rate": 0.0, "click_rate": 0.0, "conversion_rate": 0.0,
                      "unsubscribe_rate": 0.0, "bounce_rate": 0.0, "revenue_per_email": 0.0}]
    table = invoke(segmented, "report", "gold", "--as-of", FEB_10)
    assert "gold" in table and "25%" in table and "30.00" in table


class TinyPack:
    @hookimpl
    def segsync_register_segment_packs(self, register):
        register(SegmentPack(
            name="tiny", description="One segment from an in-process plugin",
            params=(PackParam("window", "duration", "30d", "window"),),
            segments=(PackSegment("tiny-openers", "Opened", "opens({window}) >= 1"),),
        ))


def test_packs_from_plugins_and_the_standard_ones(segmented) -> None:
    segmented.run(as_of=at(FEB_10))
    # The commands take packs from their own plugin host, in-process plugins included.
    segmented.write_config(BASIC_CONFIG + '[packs.tiny]\nwindow = "60d"\n[packs.engagement]\n')
    listed = json.loads(invoke(segmented, "list", "--json", "--as-of", MAR_12, plugins=[TinyPack()]))
    assert [(r["name"], r["group"], r["rule"], r["size"]) for r in listed][:2] == [
        ("tiny-openers", None, "opens(60d) >= 1", 1), ("inactive", "engagement", "opens(90d) == 0", 2)]


def segsync(args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEGSYNC_PLUGINS": "files"}
    return subprocess.run([sys.executable, "-m", "segsync", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_init_declares_the_engagement_pack_and_overlapping_segments(tmp_path: Path) -> None:
    assert segsync(["init", "."], tmp_path).returncode == 0
    synced = segsync(["sync"], tmp_path)
    # 3: the sample's deliberately bad rows are rejected; everything else synced.
    assert synced.returncode == 3, synced.stderr + synced.stdout
    listed = segsync(["segments", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert [(r["name"], r["group"]) for r in json.loads(listed.stdout)] == [
        ("vip", None), ("cart-recovery", None), ("likes-outdoor", None),
        ("inactive", "engagement"), ("engaged-high", "engagement"),
        ("engaged-moderate", "engagement"), ("engaged-low", "engagement"),
        ("engaged-readers", "engagement")]
    # The tiers are exclusive and cover everyone: 40 valid sample contacts.
    sizes = {r["name"]: r["size"] for r in json.loads(listed.stdout)}
    assert sum(sizes[n] for n in sizes if n.startswith(("inactive", "engaged-"))) == 40
    audience = [json.loads(line) for line in (tmp_path / "out/newsletter.jsonl").read_text().splitlines()]
    tiers = {"inactive", "engaged-high", "engaged-moderate", "engaged-low", "engaged-readers"}
    assert all(len(tiers & set(r["tags"])) == 1 for r in audience)


def test_demo_shows_segments_groups_and_overlap(tmp_path: Path) -> None:
    result = segsync(["demo", "--dir", "d", "--contacts", "300"], tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "Segments as of" in out and "engaged-high" in out
    assert "Group engagement (300 contacts, exclusive): inactive" in out
    assert "Overlap (shares of each segment's size)" in out and "cart-recovery" in out


def test_a_store_from_an_older_version_is_named_until_a_sync_upgrades_it(segmented) -> None:
    from segsync.store import Store
    from segsync.store.migrations import MIGRATIONS

    Store(segmented.root / "store.duckdb", migrations=MIGRATIONS[:3]).close()
    host = segmented.host()
    host.add_commands(cli)
    result = CliRunner().invoke(cli, ["--config", str(segmented.root / "segsync.toml"),
                                      "segments", "list"], obj=host)
    assert result.exit_code == 2, result.output  # a usage error, not a traceback
    assert isinstance(result.exception, SystemExit)
    assert (f"has schema version 3, this segsync needs {MIGRATIONS[-1].version}: run `segsync "
            "sync` (or any command that writes) once to upgrade it") in result.output
    segmented.run(as_of=at(FEB_10))
    assert json.loads(invoke(segmented, "list", "--json", "--as-of", FEB_10))[0]["size"] == 1

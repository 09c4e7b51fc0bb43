"""The Spark engine on the segment engine's hand-built store: every rule construct compiled for
Spark SQL gives DuckDB's members, and the engine's tables, writes and checks behave as documented.
"""

from __future__ import annotations

import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from segsync.consent.policies import DEFAULT
from segsync.consent.rules import EffectiveConsent
from segsync.segments import GroupDef, SegmentDef, evaluate
from segsync.segments.builtins import default_registry
from segsync.segments.query import build_query
from segsync.engines.transfer import transfer
from segsync.store import Store

from segsync_spark.engine import SparkEngine, SparkSettings
from segsync_spark.testing import TEST_CONF

sys.path.insert(0, str(Path(__file__).parents[2] / "core" / "tests" / "segments"))
from segtestkit import ALICE, AS_OF, BOB, CAROL, DAVE, EVE, populate  # noqa: E402

# One segment per construct the compiler must render for Spark (docs/scale.md#spark).
SEGMENTS = [
    SegmentDef(name="json-attr", rule='attr.tier == "gold" or attr.score > 5'),
    SegmentDef(name="json-flag", rule="attr.vip"),
    SegmentDef(name="windows", rule="opens(30d) >= 5 and clicks(90d) > 0"),
    SegmentDef(name="filtered", rule='spend(365d) > 500 and visited("/vip-rewards")'),
    SegmentDef(name="unique-rates", rule="open_rate(90d) >= 0.5"),
    SegmentDef(name="property", rule="max(order.completed.items) >= 3"),
    SegmentDef(name="epoch", rule="days_since(email.opened) > 30 or days_since(attr.created_at) < 40"),
    SegmentDef(name="consent", rule='consentable("email")'),
    SegmentDef(name="bucket", rule='bucket("spring") < 0.5'),
    SegmentDef(name="ranks", rule="rfm_monetary() >= 3"),
    SegmentDef(name="buyer-ranks", rule="buyer_recency(365d) >= 3"),
    SegmentDef(name="since-open", rule="sends_since_open() >= 2"),
    SegmentDef(name="quoted", rule='attr.last_name == "\'; DROP TABLE contacts; --"'),
    SegmentDef(name="depends", rule='in_segment("consent") and not in_segment("bucket")'),
    SegmentDef(name="buyers", group="tier", priority=1, rule="orders(365d) >= 1"),
    SegmentDef(name="readers", group="tier", priority=2, rule="opens() >= 1"),
    SegmentDef(name="others", group="tier"),
]
GROUPS = {"tier": GroupDef(catch_all="others")}


@pytest.fixture
def store():
    with Store(":memory:") as store:
        populate(store.con)
        yield store


@pytest.fixture
def loaded(spark_engine: SparkEngine, store: Store) -> SparkEngine:
    assert transfer(store.con, spark_engine) == {"contacts": 5, "events": 32, "consent_ledger": 7}
    return spark_engine


def _duckdb_members(store: Store) -> list[tuple[str, str]]:
    evaluate(store.con, SEGMENTS, GROUPS, AS_OF)
    return sorted(store.con.execute("SELECT segment, contact_key FROM segment_membership").fetchall())


def test_every_rule_construct_gives_duckdbs_members_on_spark(loaded: SparkEngine, store: Store) -> None:
    query = build_query(SEGMENTS, GROUPS, AS_OF, default_registry(), dialect="spark")
    sizes = loaded.evaluate(query)
    expected = _duckdb_members(store)
    assert loaded.members() == expected
    assert sizes == {s.name: sum(1 for seg, _ in expected if seg == s.name) for s in SEGMENTS}
    # The hand-built store's known answers, so equal results cannot both be empty.
    by_segment = {s.name: {k for seg, k in expected if seg == s.name} for s in SEGMENTS}
    assert by_segment["json-attr"] == {ALICE} and by_segment["json-flag"] == {ALICE}
    assert by_segment["filtered"] == {ALICE} and by_segment["property"] == {CAROL}
    assert by_segment["consent"] == {ALICE}
    assert by_segment["quoted"] == {EVE}
    assert by_segment["buyers"] == {ALICE, BOB, CAROL} and by_segment["others"] == {DAVE, EVE}
    assert by_segment["since-open"] == {BOB}


def test_snapshot_and_diff_run_in_spark_and_only_changes_come_back(loaded: SparkEngine) -> None:
    segments = [SegmentDef(name="openers", rule="opens(30d) >= 1"),
                SegmentDef(name="buyers", rule='orders(365d) >= 1 and consentable("email")')]
    query = build_query(segments, {}, AS_OF, default_registry(), dialect="spark")
    assert loaded.evaluate(query) == {"openers": 1, "buyers": 1}
    assert loaded.snapshot(7, AS_OF) == 2
    assert loaded.membership_changes(None) == [("buyers", ALICE, "enter"), ("openers", ALICE, "enter")]
    assert loaded.membership_changes(7) == []
    # Two months later Alice's opens have left the window and Carol's opt-in (recorded on
    # 2024-07-01) makes her a consenting buyer: one exit, one entry, nothing else.
    later = AS_OF + timedelta(days=60)
    assert loaded.evaluate(build_query(segments, {}, later, default_registry(), dialect="spark")) == \
        {"openers": 0, "buyers": 2}
    assert loaded.membership_changes(7) == [("buyers", CAROL, "enter"), ("openers", ALICE, "exit")]
    assert loaded.snapshot(8, later) == 2
    assert loaded.rows("SELECT run_id, count(*) FROM segment_snapshots GROUP BY run_id ORDER BY run_id") \
        == [(7, 2), (8, 2)]


def test_effective_consent_in_spark_is_the_stores(loaded: SparkEngine, store: Store) -> None:
    with EffectiveConsent.build(store.con, {"d": DEFAULT}, {}, as_of=AS_OF) as consent:
        local = store.con.execute(consent.status_sql("d") + " ORDER BY contact_key").fetchall()
    assert [(r[0], r[1]) for r in local] == [
        (ALICE, "subscribed"), (BOB, "unsubscribed"), (CAROL, "subscribed"), (DAVE, "unsubscribed")]
    assert loaded.effective_consent(DEFAULT, as_of=AS_OF) == local
    assert loaded.effective_consent(DEFAULT, as_of=AS_OF, contact_key=BOB) == [local[1]]


def test_upsert_replaces_contacts_by_key_and_appends_the_new(loaded: SparkEngine) -> None:
    columns = ["contact_key", "contact_id", "first_name", "first_seen_at", "updated_at", "updated_by"]
    at = AS_OF
    assert loaded.upsert("contacts", ["contact_key"], columns, [
        (BOB, 2, "Robert", at, at, "test"), ("zoe@example.com", 99, "Zoe", at, at, "test")]) == 2
    assert loaded.rows("SELECT contact_key, first_name FROM contacts ORDER BY contact_key") == [
        (ALICE, "Alice"), (BOB, "Robert"), (CAROL, "Carol"), (DAVE, None),
        (EVE, None), ("zoe@example.com", "Zoe")]


def test_tables_persist_under_the_location_across_engines(spark_session, store: Store, tmp_path: Path) -> None:
    settings = SparkSettings(location="lake", conf=TEST_CONF)
    with SparkEngine(settings, tmp_path) as first:
        # Before the first sync segsync's tables do not exist: check names each (segsync
        # check shows them as notes), and nothing was created by looking.
        assert first.check() == [f"table {t} is missing" for t in (
            "contacts", "events", "consent_ledger", "suppressions", "status_changes")]
        assert not (tmp_path / "lake").exists()
        first.create_tables()
        transfer(store.con, first)
    assert (tmp_path / "lake" / "events").is_dir()
    with SparkEngine(settings, tmp_path) as second:
        assert second.rows("SELECT count(*) FROM events") == [(32,)]
        assert second.check() == []


def test_mapped_tables_are_read_from_the_users_files_and_never_written(
        loaded: SparkEngine, store: Store, tmp_path: Path) -> None:
    # The user's events: Parquet files with the canonical columns (a Delta or catalog table
    # works the same way); their contacts: a folder with a column missing.
    loaded.spark.table("events").write.parquet(str(tmp_path / "user-events"))
    loaded.spark.table("contacts").drop("contact_id").write.parquet(str(tmp_path / "user-contacts"))
    settings = SparkSettings(location="own", tables={
        "events": f"parquet:{tmp_path / 'user-events'}",
        "contacts": f"parquet:{tmp_path / 'user-contacts'}",
        "consent_ledger": f"parquet:{tmp_path / 'nowhere'}"})
    with SparkEngine(settings, tmp_path) as mapped:
        mapped.create_tables()
        assert not (tmp_path / "own" / "events").exists()  # mapped: no copy of the user's table
        problems = mapped.check()
        assert problems[0].startswith(
            f"table consent_ledger (mapped to parquet:{tmp_path / 'nowhere'}) cannot be read: "
            "[PATH_NOT_FOUND] Path does not exist:")
        assert problems[1:] == [
            f"table contacts (mapped to parquet:{tmp_path / 'user-contacts'}) lacks column contact_id"]
        assert mapped.rows("SELECT count(*) FROM events") == [(32,)]
        with pytest.raises(PermissionError) as raised:
            mapped.append("events", ["contact_key"], [("x@example.com",)])
        assert str(raised.value) == (f"table events is mapped to parquet:{tmp_path / 'user-events'}: "
                                     "segsync reads it and never writes it")


def test_settings_refuse_unknown_formats_and_credentials_in_the_file() -> None:
    with pytest.raises(ValueError) as raised:
        SparkSettings(tables={"events": "csv:/data/events"})
    assert ("events: 'csv:/data/events' names format 'csv'; use one of parquet:PATH, "
            "orc:PATH or a catalog table db.name") in str(raised.value)
    with pytest.raises(ValueError) as raised:
        SparkSettings(tables={"events": "delta:s3a://lake/events"})
    assert ("events: 'delta:s3a://lake/events': Delta tables are not supported (segsync's Spark "
            "engine is untested with Delta Lake); map a Parquet or ORC copy, or a catalog table or "
            "view your cluster reads (docs/scale.md#spark)") in str(raised.value)
    with pytest.raises(ValueError) as raised:
        SparkSettings(conf={"spark.hadoop.fs.s3a.secret.key": "x"})
    assert "spark.hadoop.fs.s3a.secret.key: credentials do not belong in segsync.toml" in str(raised.value)


def test_two_engines_never_see_each_others_memberships(spark_session, store: Store, tmp_path: Path) -> None:
    """Two runs or commands on one location (here in one process, each engine with its own Spark
    session): each evaluation is its engine's alone, and none is a file under the location."""
    settings = SparkSettings(location="shared", conf=TEST_CONF)
    with SparkEngine(settings, tmp_path) as first, SparkEngine(settings, tmp_path) as second:
        first.create_tables()
        transfer(store.con, first)
        openers = [SegmentDef(name="openers", rule="opens(30d) >= 1")]
        everyone = [SegmentDef(name="everyone", rule="true")]
        assert first.evaluate(build_query(openers, {}, AS_OF, default_registry(), dialect="spark")) == {"openers": 1}
        assert second.evaluate(build_query(everyone, {}, AS_OF, default_registry(), dialect="spark")) == {"everyone": 5}
        assert first.members() == [("openers", ALICE)]
        assert second.members() == [("everyone", k) for k in sorted((ALICE, BOB, CAROL, DAVE, EVE))]
        first.snapshot(1, AS_OF)
        assert first.membership_changes(1) == [] and second.membership_changes(1) == [
            ("everyone", k, "enter") for k in sorted((ALICE, BOB, CAROL, DAVE, EVE))] + [("openers", ALICE, "exit")]
    assert not (tmp_path / "shared" / "segment_membership").exists()


def _contacts(engine: SparkEngine) -> list[tuple[str, str | None]]:
    return engine.rows("SELECT contact_key, first_name FROM contacts ORDER BY contact_key")


def _contacts_folders(lake: Path) -> list[str]:
    """The contacts table's folders: the table and any ``.new``/``.old`` beside it (not
    ``contacts_seen``, a table of its own)."""
    return sorted(p.name for p in lake.iterdir() if p.name == "contacts" or p.name.startswith("contacts."))


@pytest.mark.parametrize("killed_at", ["writing", "between the renames", "before deleting the old"])
def test_a_replacement_killed_midway_is_resolved_on_the_next_start(
        spark_session, store: Store, tmp_path: Path, killed_at: str) -> None:
    """The contacts upsert writes the new table to ``contacts.new``, moves the old folder to
    ``contacts.old``, renames the new one into place and deletes the old (docs/scale.md#spark).
    The folders a process killed at each step leaves are resolved by the next start: the table
    as before the upsert, or as after it, never half of it."""
    settings = SparkSettings(location="lake", conf=TEST_CONF)
    lake = tmp_path / "lake"
    columns = ["contact_key", "contact_id", "first_name", "first_seen_at", "updated_at", "updated_by"]
    with SparkEngine(settings, tmp_path) as engine:
        engine.create_tables()
        transfer(store.con, engine)
        before = _contacts(engine)
        shutil.copytree(lake / "contacts", tmp_path / "before")
        engine.upsert("contacts", ["contact_key"], columns, [(BOB, 2, "Robert", AS_OF, AS_OF, "test")])
        after = _contacts(engine)
    assert _contacts_folders(lake) == ["contacts"]
    assert after == [(k, "Robert" if k == BOB else n) for k, n in before]
    # Recreate what the kill left.
    if killed_at == "writing":  # the old table in place, a part of the new one beside it
        shutil.move(lake / "contacts", lake / "contacts.new")
        for part in sorted((lake / "contacts.new").glob("part-*"))[1:]:
            part.unlink()
        shutil.copytree(tmp_path / "before", lake / "contacts")
    elif killed_at == "between the renames":  # the old folder aside, the complete new one
        shutil.move(lake / "contacts", lake / "contacts.new")
        shutil.copytree(tmp_path / "before", lake / "contacts.old")
    else:  # the new table in place, the old folder aside
        shutil.copytree(tmp_path / "before", lake / "contacts.old")
    with SparkEngine(settings, tmp_path) as restarted:
        assert _contacts(restarted) == (before if killed_at == "writing" else after)
    assert _contacts_folders(lake) == ["contacts"]


def test_an_append_cut_short_is_sent_again_whole(loaded: SparkEngine, store: Store) -> None:
    """A Spark append that died between two batch writes leaves part of its run on the engine:
    the next transfer finds fewer of that run's rows than the store holds, rewrites the table
    without them and sends the run whole, never twice."""
    store.con.execute("INSERT INTO events (contact_key, contact_id, type, occurred_at, source, source_event_id, "
                      "campaign_key, run_id) SELECT contact_key, contact_id, 'email.opened', ?, 'later', "
                      "contact_key, 'later', 2 FROM contacts", [AS_OF])
    assert transfer(store.con, loaded)["events"] == 5
    assert loaded.delete_rows("events", "source_event_id", BOB) == 1  # the batch that never came
    assert transfer(store.con, loaded)["events"] == 5
    assert loaded.rows("SELECT run_id, count(*) FROM events GROUP BY run_id ORDER BY run_id") == [(None, 32), (2, 5)]
    assert transfer(store.con, loaded)["events"] == 0

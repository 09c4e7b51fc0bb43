"""Evaluation as a whole: groups, dependencies, determinism, snapshots, diffs, explain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from segtestkit import ALICE, AS_OF, BOB, CAROL, DAVE, EVE, EVERYONE, add_event, create_store, members

from segsync.segments import (
    GroupDef,
    RuleError,
    SegmentConfigError,
    SegmentDef,
    diff,
    diff_sql,
    evaluate,
    explain,
    snapshot,
)


def membership(con) -> set[tuple[str, str]]:
    return set(con.execute("SELECT segment, contact_key FROM segment_membership").fetchall())


LIFECYCLE = {"lifecycle": GroupDef(catch_all="other")}
GROUPED = [
    SegmentDef(name="big", group="lifecycle", priority=1, rule="spend(365d) >= 500"),
    SegmentDef(name="buyer", group="lifecycle", priority=2, rule="orders(365d) > 0"),
    SegmentDef(name="hr", group="lifecycle", priority=3, rule='attr.department in ("HR", "People")'),
    SegmentDef(name="other", group="lifecycle"),
    SegmentDef(name="us", rule='attr.country == "US"'),  # ungrouped: overlaps freely
]


def test_exclusive_group_with_catch_all(store):
    sizes = evaluate(store, GROUPED, LIFECYCLE, AS_OF)
    # alice matches big, buyer and hr: big (priority 1) wins. carol: buyer beats hr.
    assert membership(store) == {
        ("big", ALICE), ("buyer", BOB), ("buyer", CAROL), ("other", DAVE), ("other", EVE),
        ("us", ALICE), ("us", CAROL),
    }
    assert sizes == {"big": 1, "buyer": 2, "hr": 0, "other": 2, "us": 2}


def test_group_without_catch_all_leaves_the_unmatched_out(store):
    segs = [s for s in GROUPED if s.name != "other"]
    sizes = evaluate(store, segs, {"lifecycle": GroupDef()}, AS_OF)
    assert sizes == {"big": 1, "buyer": 2, "hr": 0, "us": 2}


def test_priority_order_not_declaration_order_decides(store):
    swapped = [
        SegmentDef(name="hr", group="g", priority=1, rule='attr.department in ("HR", "People")'),
        SegmentDef(name="buyer", group="g", priority=5, rule="orders(365d) > 0"),
    ]
    evaluate(store, list(reversed(swapped)), {"g": GroupDef()}, AS_OF)
    assert membership(store) == {("hr", ALICE), ("hr", CAROL), ("buyer", BOB)}


def test_in_segment_sees_group_resolution(store):
    segs = [*GROUPED, SegmentDef(name="hr-after-group", rule='in_segment("hr")'),
            SegmentDef(name="not-big", rule='not in_segment("big") and in_segment("hr-after-group") == false')]
    sizes = evaluate(store, segs, LIFECYCLE, AS_OF)
    assert sizes["hr-after-group"] == 0  # carol matches hr's rule but landed in buyer
    assert sizes["not-big"] == 4


def test_cycles_are_rejected_with_the_path(store):
    segs = [
        SegmentDef(name="a", rule='in_segment("b")'),
        SegmentDef(name="b", rule='in_segment("c") and opens() > 0'),
        SegmentDef(name="c", rule='in_segment("a")'),
    ]
    with pytest.raises(SegmentConfigError, match="cycle: a -> b -> c -> a"):
        evaluate(store, segs, {}, AS_OF)
    with pytest.raises(SegmentConfigError, match="cycle"):
        evaluate(store, [SegmentDef(name="self", rule='in_segment("self")')], {}, AS_OF)
    # A group member depending on its own group is a cycle too.
    grp = [SegmentDef(name="x", group="g", priority=1, rule='in_segment("y")'),
           SegmentDef(name="y", group="g", priority=2, rule="true")]
    with pytest.raises(SegmentConfigError, match=r"cycle: g \(group\) -> g \(group\)"):
        evaluate(store, grp, {"g": GroupDef()}, AS_OF)


def test_unknown_segment_suggests(store):
    segs = [SegmentDef(name="engaged", rule="opens() > 0"),
            SegmentDef(name="x", rule='in_segment("engagd")')]
    with pytest.raises(RuleError) as info:
        evaluate(store, segs, {}, AS_OF)
    assert "segment 'x': line 1, column 1: unknown segment 'engagd'; did you mean 'engaged'?" in str(info.value)


def test_ranks_are_deterministic_with_ties(store):
    # Everyone except alice has a tie somewhere; ranks must not vary between runs or
    # with the physical order of rows.
    rule = "rfm_frequency() >= 3"
    first = members(store, rule)
    shuffled = create_store()
    shuffled.execute("ATTACH ':memory:' AS src")
    from segtestkit import populate
    populate(shuffled)
    shuffled.execute("CREATE TABLE c2 AS SELECT * FROM contacts ORDER BY md5(contact_key) DESC")
    shuffled.execute("DELETE FROM contacts")
    shuffled.execute("INSERT INTO contacts SELECT * FROM c2")
    for _ in range(3):
        assert members(store, rule) == first
        assert members(shuffled, rule) == first
    assert first == {BOB, CAROL, ALICE}


def test_as_of_reproducibility_despite_new_events(store):
    segs = [SegmentDef(name="engaged", rule="opens(30d) >= 1"),
            SegmentDef(name="recent", rule="days_since(email.opened) < 2")]
    before = evaluate(store, segs, {}, AS_OF), membership(store)
    # Events arriving later (timestamped after as_of) change nothing for that as_of.
    add_event(store, BOB, "email.opened", AS_OF + timedelta(minutes=1))
    add_event(store, DAVE, "email.opened", AS_OF + timedelta(days=3))
    assert (evaluate(store, segs, {}, AS_OF), membership(store)) == before
    later = evaluate(store, segs, {}, AS_OF + timedelta(hours=1))
    assert later == {"engaged": 2, "recent": 2}


def test_snapshot_and_diff(store):
    sizes = evaluate(store, GROUPED, LIFECYCLE, AS_OF)
    assert snapshot(store, 7, AS_OF) == sum(sizes.values())
    rows = store.execute(
        "SELECT run_id, segment, contact_key, as_of FROM segment_snapshots ORDER BY 2, 3"
    ).fetchall()
    assert rows[0][0] == 7 and rows[0][3] == AS_OF and len(rows) == 7

    # The destination acknowledged: alice in big (still true), bob in hr (no longer),
    # and a membership of a segment since deleted from the config.
    store.executemany(
        "INSERT INTO acknowledged_memberships VALUES ('mc', ?, ?, 1, now())",
        [(ALICE, "big"), (BOB, "hr"), (CAROL, "retired-segment")],
    )
    store.execute("INSERT INTO acknowledged_memberships VALUES ('other-dest', ?, 'buyer', 1, now())", [BOB])
    result = diff(store, "mc", ["big", "buyer", "hr"])
    got = set(store.execute("SELECT segment, contact_key, change FROM segment_diff").fetchall())
    assert got == {
        ("buyer", BOB, "enter"), ("buyer", CAROL, "enter"),
        ("hr", BOB, "exit"), ("retired-segment", CAROL, "exit"),
    }
    assert (result.entries, result.exits) == (2, 2)
    # Acknowledge everything: a re-run has nothing to send.
    store.execute("DELETE FROM acknowledged_memberships WHERE destination = 'mc'")
    store.execute("INSERT INTO acknowledged_memberships SELECT 'mc', contact_key, segment, 2, now() "
                  "FROM segment_membership WHERE segment IN ('big', 'buyer', 'hr')")
    assert diff(store, "mc", ["big", "buyer", "hr"]).entries == 0
    assert diff(store, "mc", ["big", "buyer", "hr"]).exits == 0
    # Without a segment list every current membership is a candidate.
    assert diff(store, "mc").entries == 4  # other (2) and us (2)
    assert "'mc'" in diff_sql("mc")


def test_diff_destination_name_is_a_literal(store):
    evaluate(store, GROUPED, LIFECYCLE, AS_OF)
    nasty = "x'); DROP TABLE contacts; --"
    assert diff(store, nasty).exits == 0
    assert store.execute("SELECT count(*) FROM contacts").fetchone()[0] == 5


def test_explain(store):
    segs = [*GROUPED]
    e = explain(store, "hr", CAROL, AS_OF, segments=segs, groups=LIFECYCLE)
    assert e.matched_rule is True and e.member is False
    assert "'buyer' has higher priority" in e.note
    assert [(s.depth, s.text, s.value) for s in e.steps] == [
        (0, 'attr.department in ("HR", "People")', True),
        (1, "attr.department", "People"),
    ]
    vip = SegmentDef(name="vip", rule='opens(30d) >= 5 and (spend(365d) > 500 or visited("/x"))')
    e = explain(store, vip, ALICE, AS_OF)
    assert e.member is True
    assert [(s.depth, s.text, s.value) for s in e.steps] == [
        (0, 'opens(30d) >= 5 and (spend(365d) > 500 or visited("/x"))', True),
        (1, "opens(30d) >= 5", True),
        (2, "opens(30d)", 6),
        (1, 'spend(365d) > 500 or visited("/x")', True),
        (2, "spend(365d) > 500", True),
        (3, "spend(365d)", 550.0),
        (2, 'visited("/x")', False),
    ]
    text = e.format()
    assert text.splitlines()[0].startswith(f"{ALICE} is in 'vip'")
    assert "      spend(365d)  =>  550.0" in text
    other = explain(store, "other", DAVE, AS_OF, segments=segs, groups=LIFECYCLE)
    assert other.member and other.matched_rule is None and "catch-all 'other'" in other.note
    with pytest.raises(SegmentConfigError, match="no contact"):
        explain(store, vip, "nobody@example.com", AS_OF)


def test_empty_segment_list_and_empty_store():
    con = create_store()
    assert evaluate(con, [], {}, AS_OF) == {}
    assert con.execute("SELECT count(*) FROM segment_membership").fetchone()[0] == 0
    assert evaluate(con, GROUPED, LIFECYCLE, AS_OF) == {
        "big": 0, "buyer": 0, "hr": 0, "other": 0, "us": 0
    }


def test_naive_as_of_is_rejected(store):
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(store, GROUPED, LIFECYCLE, AS_OF.replace(tzinfo=None))


def test_many_segments_share_one_feature_scan(store):
    from segsync.segments.builtins import default_registry
    from segsync.segments.query import build_query

    segs = [SegmentDef(name=f"s{i}", rule=f"opens(30d) >= {i} and spend(365d) > {i}") for i in range(20)]
    plan = build_query(segs, {}, AS_OF, default_registry())
    assert len(plan.features) == 2  # deduplicated across all 20 rules
    sql = plan.select().sql("duckdb")
    assert sql.count("FROM events") == 1
    sizes = evaluate(store, segs, {}, AS_OF)
    assert sizes["s1"] == 1 and sizes["s7"] == 0 and set(sizes) == {f"s{i}" for i in range(20)}
    assert EVERYONE

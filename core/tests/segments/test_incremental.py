"""Incremental evaluation equals a full one, and recomputes only the contacts that changed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segsync.consent import suppression
from segsync.segments import GroupDef, SegmentDef, default_registry, evaluate
from segsync.segments.incremental import FEATURES_TABLE, evaluate_incremental

from segtestkit import AS_OF, add_contact, add_event, create_store

RULES = {
    "opener": "opens(3d) >= 2",
    "buyer": "orders(10d) >= 1 and spend(7d) > 50",
    "engaged": "open_rate(5d) >= 0.5",
    "recent": "days_since(email.opened) < 2",
    "new": "days_since(attr.created_at) < 5",
    "mailable": 'consentable("email")',
    "ignoring": "sends_since_open() >= 2",
    "cart": "count(cart.added, 24h) > 0 and count(order.completed, 24h) == 0",
    "top": "rfm_recency() >= 4 and buyer_frequency(10d) >= 3",
    "both": 'in_segment("mailable") and in_segment("opener")',
    "half": 'bucket("x") < 0.5 and attr.country == "US"',
}
GROUP = [("big", 1, "spend(10d) > 100"), ("active", 2, "orders(5d) >= 1"),
         ("reader", 3, "opens(2d) >= 1")]


def _definitions(rules=None):
    """RULES and the group; or only ``rules``."""
    if rules is not None:
        return [SegmentDef(name=n, rule=r) for n, r in rules.items()], {}
    segs = [SegmentDef(name=n, rule=r) for n, r in RULES.items()]
    segs += [SegmentDef(name=n, group="life", priority=p, rule=r) for n, p, r in GROUP]
    segs.append(SegmentDef(name="rest", group="life"))
    return segs, {"life": GroupDef(catch_all="rest")}


REGISTRY = default_registry()
KEYS = [f"p{i}@example.com" for i in range(6)]


def _members(con) -> list[tuple[str, str]]:
    return sorted(con.execute("SELECT segment, contact_key FROM segment_membership").fetchall())


def _incremental(con, at, rules=None, **large):
    segs, groups = _definitions(rules)
    done = evaluate_incremental(con, segs, groups, at, REGISTRY, **large)
    return done, _members(con)


def _full(con, at, rules=None):
    segs, groups = _definitions(rules)
    evaluate(con, segs, groups, at, REGISTRY)
    return _members(con)


def _consent(con, key, status, at, *, method="form", ingested=None, source="test"):
    con.execute(
        "INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source, "
        "method, ingested_at) VALUES (?, 'email', 'marketing', ?, ?, ?, ?, ?)",
        [key, status, at, source, method, ingested or at],
    )


def _store(n: int = 3):
    con = create_store()
    for i in range(n):
        add_contact(con, KEYS[i], country="US" if i % 2 == 0 else "DE",
                    created_at=AS_OF - timedelta(days=3 * i))
    return con


# -- the property: after every step, incremental == full from scratch ----------------------------
_TYPES = ["email.sent", "email.opened", "order.completed", "cart.added"]
_step = st.one_of(
    st.tuples(st.just("event"), st.integers(0, 5), st.sampled_from(_TYPES),
              st.integers(-15 * 24, 3 * 24), st.sampled_from([None, "c1", "c2"]),
              st.sampled_from([20.0, 80.0, 150.0])),
    st.tuples(st.just("contact"), st.integers(0, 5), st.integers(-10 * 24, 24)),
    st.tuples(st.just("consent"), st.integers(0, 5),
              st.sampled_from(["opted_in", "opted_out", "pending", "complained"]),
              st.integers(-5 * 24, 2 * 24), st.sampled_from(["form", "api"]), st.integers(0, 48)),
    st.tuples(st.just("suppress"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("pushed"), st.integers(0, 5), st.sampled_from(["subscribed", "unsubscribed"])),
    st.tuples(st.just("clock"), st.integers(0, 6 * 24)),
    st.tuples(st.just("clock"), st.integers(0, 6 * 24)),
)


def _apply(con, step, now: datetime) -> datetime:
    kind, *args = step
    if kind == "event":
        who, type_, hours, campaign, value = args
        if con.execute("SELECT count(*) FROM contacts WHERE contact_key = ?", [KEYS[who]]).fetchall()[0][0]:
            add_event(con, KEYS[who], type_, now + timedelta(hours=hours), value=value,
                      properties={"campaign_id": campaign} if campaign else None)
    elif kind == "contact":
        who, hours = args
        created = now + timedelta(hours=hours)
        exists = con.execute("SELECT count(*) FROM contacts WHERE contact_key = ?", [KEYS[who]]).fetchall()[0][0]
        if exists:  # an attribute change: the rules read attributes fresh every time
            con.execute("UPDATE contacts SET created_at = ?, country = CASE country WHEN 'US' "
                        "THEN 'DE' ELSE 'US' END WHERE contact_key = ?", [created, KEYS[who]])
        else:
            add_contact(con, KEYS[who], country="US", created_at=created)
    elif kind == "consent":
        who, status, hours, method, late = args
        at = now + timedelta(hours=hours)
        _consent(con, KEYS[who], status, at, method=method, ingested=at + timedelta(hours=late))
    elif kind == "suppress":
        who, add = args
        if add:
            suppression.add(con, KEYS[who], source="test")
        else:
            suppression.remove(con, KEYS[who], removed_by="test")
    elif kind == "pushed":  # segsync told the destination "test" this status: echoes of it are ignored
        who, status = args
        con.execute(
            "INSERT INTO status_changes (destination, contact_key, channel, purpose, after_status, "
            "outcome, changed_at) VALUES ('test', ?, 'email', 'marketing', ?, 'acknowledged', ?)",
            [KEYS[who], status, now],
        )
    else:
        (hours,) = args
        now += timedelta(hours=hours)
    return now


# Each evaluation compiles and runs ~20 rules twice (~0.3 s): few examples, each a few runs of
# one to three changes.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_step, min_size=1, max_size=3), min_size=1, max_size=5))
def test_incremental_equals_full_after_every_step(steps) -> None:
    con = _store()
    now = AS_OF
    first, members = _incremental(con, now)
    assert first.mode == "full" and first.reason == "no previous evaluation"
    assert members == _full(con, now)
    for changes in steps:
        for change in changes:
            now = _apply(con, change, now)
        done, members = _incremental(con, now)
        # Never a fallback here (no erasure, no definition change, the clock never goes back):
        # the incremental path is what is compared.
        assert (done.mode, done.reason) == ("incremental", "")
        assert members == _full(con, now), changes
    con.close()


# -- examples ---------------------------------------------------------------------------------------
def test_a_window_expiring_recomputes_only_the_contacts_it_touches() -> None:
    con = _store()
    add_event(con, KEYS[0], "order.completed", AS_OF - timedelta(days=9), value=30.0)
    add_event(con, KEYS[1], "order.completed", AS_OF - timedelta(days=2), value=30.0)
    done, members = _incremental(con, AS_OF)
    assert done.mode == "full" and done.recomputed == 3
    assert ("buyer", KEYS[0]) not in members  # spend(7d) is 0: the order is 9 days old
    assert ("active", KEYS[1]) in members

    # Two days later, no new event: p0's order (11 days old) leaves orders(10d); p1's (4 days
    # old) crosses no window boundary. Only p0 is recomputed.
    done, members = _incremental(con, AS_OF + timedelta(days=2))
    assert (done.mode, done.recomputed) == ("incremental", 1)
    assert con.execute(f"SELECT count(*) FROM {FEATURES_TABLE}").fetchall()[0][0] == 3
    assert members == _full(con, AS_OF + timedelta(days=2))

    # Two more days: p1's order (now 6 days old) leaves orders(5d); p1 moves from "active" to
    # the catch-all with no new event.
    done, members = _incremental(con, AS_OF + timedelta(days=4))
    assert (done.mode, done.recomputed) == ("incremental", 1)
    assert ("active", KEYS[1]) not in members and ("rest", KEYS[1]) in members
    assert members == _full(con, AS_OF + timedelta(days=4))


def test_an_unchanged_store_at_the_same_instant_recomputes_nobody() -> None:
    con = _store()
    add_event(con, KEYS[0], "email.opened", AS_OF - timedelta(hours=1))
    _, before = _incremental(con, AS_OF)
    done, after = _incremental(con, AS_OF)
    assert (done.mode, done.recomputed) == ("incremental", 0)
    assert after == before


def test_the_clock_alone_moves_a_contact_out_of_a_recency_rule_without_recomputing_it() -> None:
    # days_since(email.opened) < 2 reads the stored latest open against the new as_of: nobody's
    # features change (the open is in no window boundary), yet p0 leaves "recent".
    con = _store()
    add_event(con, KEYS[0], "email.opened", AS_OF - timedelta(days=20))
    add_event(con, KEYS[0], "email.opened", AS_OF - timedelta(days=1))
    _, members = _incremental(con, AS_OF, {"recent": "days_since(email.opened) < 2"})
    assert ("recent", KEYS[0]) in members
    done, members = _incremental(con, AS_OF + timedelta(days=2),
                                 {"recent": "days_since(email.opened) < 2"})
    assert (done.mode, done.recomputed) == ("incremental", 0)
    assert ("recent", KEYS[0]) not in members


def test_new_events_recompute_their_contacts_and_ranks_see_everyone() -> None:
    con = _store(5)  # two never ordered: the first two tiles
    for i, days in enumerate((30, 20, 10)):
        add_event(con, KEYS[i], "order.completed", AS_OF - timedelta(days=days), value=10.0)
    rules = {"latest": "rfm_recency() >= 5"}  # the top fifth: the most recent buyer
    _, members = _incremental(con, AS_OF, rules)
    assert [k for s, k in members if s == "latest"] == [KEYS[2]]
    # p0 orders now: only p0 is recomputed, yet p2 leaves the top tile.
    add_event(con, KEYS[0], "order.completed", AS_OF, value=10.0)
    done, members = _incremental(con, AS_OF, rules)
    assert (done.mode, done.recomputed) == ("incremental", 1)
    assert [k for s, k in members if s == "latest"] == [KEYS[0]]


def test_a_consent_record_recomputes_its_contact_only() -> None:
    con = _store()
    _consent(con, KEYS[1], "opted_in", AS_OF - timedelta(days=1))
    _, members = _incremental(con, AS_OF, {"mailable": 'consentable("email")'})
    assert [k for s, k in members if s == "mailable"] == [KEYS[1]]
    _consent(con, KEYS[1], "opted_out", AS_OF)
    done, members = _incremental(con, AS_OF, {"mailable": 'consentable("email")'})
    assert (done.mode, done.recomputed) == ("incremental", 1)
    assert [k for s, k in members if s == "mailable"] == []
    # A record dated ahead of the last evaluation counts once the clock passes it.
    _consent(con, KEYS[2], "opted_in", AS_OF + timedelta(hours=5))
    done, members = _incremental(con, AS_OF + timedelta(hours=6), {"mailable": 'consentable("email")'})
    assert (done.mode, done.recomputed) == ("incremental", 1)
    assert [k for s, k in members if s == "mailable"] == [KEYS[2]]


@pytest.mark.parametrize("change, reason", [
    ("rule", "the segment definitions changed"),
    ("past", "as_of is before the last evaluation's (2024-06-01T00:00:00+00:00)"),
    ("erasure", "people were erased since the last evaluation"),
    ("deleted", "events were deleted or compacted since the last evaluation"),
    ("many", "3 of 3 contacts changed (more than 25%: one pass over everyone is cheaper)"),
])
def test_what_makes_an_evaluation_full(change, reason) -> None:
    con = _store()
    for key in KEYS[:3]:
        add_event(con, key, "email.opened", AS_OF - timedelta(days=1))
    rules, at = None, AS_OF
    _incremental(con, at, rules)
    if change == "rule":
        rules = {**RULES, "opener": "opens(3d) >= 3"}
    elif change == "past":
        at = AS_OF - timedelta(seconds=1)
    elif change == "erasure":
        con.execute("INSERT INTO erasures (address_hash, requested_at) VALUES ('h', now())")
    elif change == "deleted":
        con.execute("DELETE FROM events WHERE contact_key = ?", [KEYS[0]])
        add_event(con, KEYS[1], "email.opened", AS_OF)  # as many rows as before, one of them new
        add_event(con, KEYS[1], "email.opened", AS_OF)
        con.execute("DELETE FROM events WHERE contact_key = ? AND occurred_at < ?", [KEYS[1], AS_OF])
    else:
        for key in KEYS[:3]:
            add_event(con, key, "email.opened", AS_OF)
    done, members = _incremental(con, at, rules, max_share=0.25, min_large=2)
    assert (done.mode, done.reason, done.recomputed) == ("full", reason, 3)
    assert members == _full(con, at, rules)
    # and the next one is incremental again
    done, _ = _incremental(con, at, rules)
    assert (done.mode, done.recomputed) == ("incremental", 0)


def test_a_joined_feature_that_does_not_say_how_it_moves_makes_every_evaluation_full() -> None:
    from segsync.segments import Built, Feature, FunctionRegistry, SegmentFunction
    from sqlglot import exp

    registry = FunctionRegistry()
    for fn in REGISTRY:
        registry.register(fn)
    plugin_feature = Feature("joined", exp.select(
        "contact_key", exp.Literal.number(1).as_("value")).from_("identities"))
    registry.register(SegmentFunction(
        "known_elsewhere", (), "bool", "Has an identity.",
        lambda ctx, a: Built(exp.EQ(this=plugin_feature.ref(), expression=exp.Literal.number(1)),
                             (plugin_feature,)),
        origin="a-plugin"))
    con = _store()
    segs = [SegmentDef(name="k", rule="known_elsewhere()")]
    for _ in range(2):
        done = evaluate_incremental(con, segs, {}, AS_OF, registry)
        assert (done.mode, done.reason) == (
            "full", "a joined feature does not say how it moves with the clock")


def test_dates_are_compared_in_utc_whatever_the_session_zone() -> None:
    con = _store()
    con.execute("SET TimeZone = 'America/New_York'")
    add_event(con, KEYS[0], "email.opened", AS_OF - timedelta(hours=1))
    _incremental(con, AS_OF)
    done, members = _incremental(con, AS_OF + timedelta(hours=1))
    assert done.mode == "incremental"
    assert members == _full(con, AS_OF + timedelta(hours=1))


def test_a_rewritten_store_file_starts_over_with_a_full_evaluation(tmp_path) -> None:
    # Rewriting the file (after an erasure) renumbers rows: new events could no longer be told
    # from old ones by rowid.
    from segsync.store.store import Store

    with Store(tmp_path / "s.duckdb") as store:
        store.con.execute("SET TimeZone = 'UTC'")
        add_contact(store.con, KEYS[0], country="US", created_at=AS_OF)
        add_event(store.con, KEYS[0], "email.opened", AS_OF - timedelta(hours=1))
        _incremental(store.con, AS_OF)
        assert _incremental(store.con, AS_OF)[0].mode == "incremental"
        store.rewrite()
        done, members = _incremental(store.con, AS_OF)
        assert (done.mode, done.reason, done.recomputed) == ("full", "no previous evaluation", 1)
        assert members == _full(store.con, AS_OF)

"""Each standard function against values computed by hand from the conftest store."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone

import pytest
from segtestkit import ALICE, AS_OF, BOB, CAROL, DAVE, EVE, EVERYONE, members, value_of


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("opens(30d)", {ALICE: 6, BOB: 0, CAROL: 0, DAVE: 0}),
        ("opens()", {ALICE: 7, CAROL: 1}),  # the open after as_of never counts
        ("sends(90d)", {ALICE: 10, BOB: 2, DAVE: 0}),
        ("clicks(90d)", {ALICE: 2, BOB: 0}),
        ("orders(365d)", {ALICE: 2, BOB: 1, CAROL: 1, DAVE: 0}),
        ("orders()", {ALICE: 3}),
        ("spend(365d)", {ALICE: 550, BOB: 80, CAROL: 50, DAVE: 0}),
        ("spend()", {ALICE: 1550}),
        ("count(cart.added, 24h)", {BOB: 1, ALICE: 0}),
        ('count("email.opened", 2w)', {ALICE: 6}),
        ("sum(order.completed.value, 365d)", {ALICE: 550, DAVE: 0}),
        ('sum("order.completed", "value", 365d)', {ALICE: 550}),
        ("sum(order.completed, items, 30d)", {CAROL: 3, ALICE: 0}),
        ("min(order.completed.value, 365d)", {ALICE: 250, DAVE: None}),
        ("max(order.completed.value)", {ALICE: 1000, BOB: 80}),
        ("avg(order.completed.value, 365d)", {ALICE: 275, CAROL: 50, EVE: None}),
        ("days_since(email.opened)", {ALICE: 1.0, CAROL: 100.0, BOB: math.inf}),
        ("days_since(attr.created_at)", {BOB: 31.0, ALICE: 517.0, CAROL: math.inf}),
        ("open_rate(90d)", {ALICE: 0.7, BOB: 0.0, DAVE: 0.0}),
        ("click_rate(90d)", {ALICE: 0.2, BOB: 0.0}),
        ("conversion_rate(90d)", {ALICE: 0.1, BOB: 0.5, CAROL: 0.0}),
        ("rfm_recency()", {DAVE: 1, EVE: 2, BOB: 3, ALICE: 4, CAROL: 5}),
        ("rfm_frequency()", {DAVE: 1, EVE: 2, BOB: 3, CAROL: 4, ALICE: 5}),
        ("rfm_monetary()", {DAVE: 1, EVE: 2, CAROL: 3, BOB: 4, ALICE: 5}),
        ("attr.company_size", {ALICE: 50, BOB: 500, DAVE: None}),
    ],
)
def test_numeric_functions(store, expr, expected):
    for key, want in expected.items():
        got = value_of(store, expr, key)
        if want is None or got is None:
            assert got is want, (expr, key, got)
        else:
            assert got == pytest.approx(want), (expr, key, got)


@pytest.mark.parametrize(
    "rule, expected",
    [
        ('opens(30d) >= 5 and spend(365d) > 500 and visited("/vip-rewards")', {ALICE}),
        ("days_since(email.opened) > 90", {BOB, CAROL, DAVE, EVE}),  # never = infinitely long ago
        ("days_since(email.opened) < 7", {ALICE}),
        ('attr.department in ("HR", "People")', {ALICE, CAROL}),
        ('attr.department not in ("HR", "People")', {BOB, DAVE, EVE}),
        ("open_rate(90d) >= 0.5 and click_rate(90d) >= 0.1", {ALICE}),
        ("count(cart.added, 24h) > 0 and count(order.completed, 24h) == 0", {BOB}),
        ('visited("/vip-rewards")', {ALICE}),
        ('visited("/vip-rewards", 3d)', set()),
        ('visited("/vip-rewards/faq", 5d)', set()),  # exactly 5 days ago: outside (as_of-5d, as_of]
        ('visited("/vip-rewards/faq", 121h)', {ALICE}),
        ('visited("/b")', {BOB}),
        ('viewed_category("shoes", 7d)', {ALICE}),
        ('viewed_category("shoes", 2d)', set()),
        # Dave's opt-in and opt-out share a timestamp: the more restrictive wins.
        ('consentable("email")', {ALICE}),
        ('consentable("sms")', set()),
        ('attr.country == "US"', {ALICE, CAROL}),
        ('not attr.country == "US"', {BOB, DAVE, EVE}),
        ('attr.department != "HR"', {BOB, CAROL, DAVE, EVE}),  # missing satisfies !=
        ("attr.company_size >= 100", {BOB}),
        ('attr.created_at > "2024-01-01"', {BOB}),
        ('attr.created_at <= "2023-06-01T12:00:00+02:00"', {ALICE}),
        ('attr.tier == "gold"', {ALICE}),
        ('attr.custom.tier == "silver"', {BOB}),
        ("attr.score > 5", {ALICE}),
        ("attr.vip", {ALICE}),
        ("attr.vip == true", {ALICE}),
        ("avg(order.completed.value, 365d) > 0", {ALICE, BOB, CAROL}),
        ("not avg(order.completed.value, 365d) > 0", {DAVE, EVE}),
        ("rfm_recency() >= 4", {ALICE, CAROL}),
        ("true", EVERYONE),
        ("false", set()),
    ],
)
def test_conditions(store, rule, expected):
    assert members(store, rule) == expected


def test_consent_is_as_of_the_evaluation_instant(store):
    later = datetime(2024, 8, 1, tzinfo=timezone.utc)
    assert members(store, 'consentable("email")', as_of=later) == {ALICE, CAROL}
    earlier = datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert members(store, 'consentable("email")', as_of=earlier) == {ALICE, BOB}


def test_bucket_matches_python_md5_definition(store):
    for key in EVERYONE:
        want = int(hashlib.md5(f"spring-test:{key}".encode()).hexdigest()[:8], 16) / 2**32
        assert value_of(store, 'bucket("spring-test")', key) == want  # exact, not approx
    assert 0 <= value_of(store, 'bucket("x")', ALICE) < 1


def test_bucket_splits_differ_by_salt_and_are_stable(store):
    a = members(store, 'bucket("a") < 0.5')
    assert a == members(store, 'bucket("a") < 0.5')
    assert members(store, 'bucket("a") >= 0.5') == EVERYONE - a


def test_windows_expire_with_time_alone(store):
    # Same data, later as_of: the 6 recent opens fall out of the 30-day window one by one.
    assert members(store, "opens(30d) >= 5") == {ALICE}
    assert members(store, "opens(30d) >= 5", as_of=AS_OF + timedelta(days=25)) == {ALICE}
    assert members(store, "opens(30d) >= 5", as_of=AS_OF + timedelta(days=27)) == set()
    # The future open (AS_OF + 1d) counts once as_of passes it.
    assert value_of(store, "opens(30d)", ALICE, as_of=AS_OF + timedelta(days=2)) == 7
    # Window bounds (as_of - w, as_of]: opens at day 1 (= as_of here, in) and day 2 (exactly
    # 24h earlier, out). An exclusive upper bound would give 0, an inclusive lower bound 2.
    assert value_of(store, "opens(24h)", ALICE, as_of=AS_OF - timedelta(days=1)) == 1


def test_in_segment(store):
    from segsync.segments import SegmentDef, evaluate

    segs = [
        SegmentDef(name="engaged", rule="opens(30d) > 0"),
        SegmentDef(name="us", rule='attr.country == "US"'),
        SegmentDef(name="engaged-non-us", rule='in_segment("engaged") and not in_segment(us)'),
    ]
    sizes = evaluate(store, segs, {}, AS_OF)
    assert sizes == {"engaged": 1, "us": 2, "engaged-non-us": 0}
    sizes = evaluate(store, [*segs[:2], SegmentDef(name="x", rule='in_segment("us") or in_segment("engaged")')], {}, AS_OF)
    assert sizes["x"] == 2


def test_consentable_is_the_consent_engines_status_not_the_latest_ledger_row() -> None:
    """docs/rules.md: the default policy's `subscribed`, at as_of; suppressions as they are now."""
    from segtestkit import add_contact, create_store

    con = create_store()
    t = lambda days: AS_OF - timedelta(days=days)  # noqa: E731

    def ledger(key: str, status: str, at: datetime, method: str) -> None:
        con.execute(
            "INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source, "
            "method, ingested_at) VALUES (?, 'email', 'marketing', ?, ?, 'crm', ?, ?)",
            [key, status, at, method, at],
        )

    for key in ("ann@x.com", "bea@x.com", "cat@x.com", "dee@x.com", "eva@x.com"):
        add_contact(con, key)
    ledger("ann@x.com", "opted_in", t(30), "form")
    ledger("ann@x.com", "opted_out", t(20), "form")
    ledger("ann@x.com", "opted_in", t(10), "api")  # the latest row, but not the person's own
    ledger("bea@x.com", "pending", t(10), "double_opt_in")
    ledger("cat@x.com", "opted_in", t(10), "form")
    con.execute("INSERT INTO suppressions (contact_key, address_hash, channel, reason, source, created_at) "
                "VALUES ('cat@x.com', 'h', 'all', 'other', 'test', ?)", [AS_OF + timedelta(days=1)])
    ledger("dee@x.com", "opted_in", t(10), "form")
    ledger("eva@x.com", "opted_in", t(30), "form")
    ledger("eva@x.com", "opted_out", t(20), "form")
    ledger("eva@x.com", "opted_in", t(10), "form")  # her own newer opt-in lifts it
    assert members(con, 'consentable("email")') == {"dee@x.com", "eva@x.com"}

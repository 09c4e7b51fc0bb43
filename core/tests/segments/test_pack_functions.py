"""The functions the packs added to the standard set, on the hand-built store."""

from __future__ import annotations

from datetime import timedelta

from segtestkit import ALICE, AS_OF, BOB, CAROL, DAVE, EVE, add_event, day, members, value_of


def test_sends_since_open(store) -> None:
    # alice's latest open (day 1) is no earlier than her latest send; bob never opened his 2.
    assert value_of(store, "sends_since_open()", ALICE) == 0
    assert value_of(store, "sends_since_open()", BOB) == 2
    assert value_of(store, "sends_since_open()", DAVE) == 0
    assert members(store, "sends_since_open() >= 2") == {BOB}
    add_event(store, BOB, "email.opened", day(1.5))  # opened between his two sends
    assert value_of(store, "sends_since_open()", BOB) == 1
    # Sends after as_of are not counted.
    add_event(store, CAROL, "email.sent", AS_OF + timedelta(hours=1))
    assert value_of(store, "sends_since_open()", CAROL) == 0


def test_category_events_counts_views_and_clicks(store) -> None:
    assert value_of(store, 'category_events("shoes")', ALICE) == 1
    add_event(store, ALICE, "email.clicked", day(1), category="shoes")
    add_event(store, ALICE, "page.viewed", day(40), category="shoes")
    assert value_of(store, 'category_events("shoes")', ALICE) == 3
    assert value_of(store, 'category_events("shoes", 30d)', ALICE) == 2
    assert members(store, 'category_events("shoes", 30d) >= 2') == {ALICE}


def test_buyer_ranks_are_among_buyers_only(store) -> None:
    # Buyers: alice (3 orders, 1550, latest day 10), bob (1, 80, day 30), carol (1, 50, day 5).
    ranks = {k: value_of(store, "buyer_recency()", k) for k in (ALICE, BOB, CAROL, DAVE, EVE)}
    assert ranks == {ALICE: 2, BOB: 1, CAROL: 3, DAVE: None, EVE: None}
    assert value_of(store, "buyer_frequency()", CAROL) == 2  # ties with bob, after him by key
    assert value_of(store, "buyer_monetary()", ALICE) == 3
    # In 20 days only alice (day 10) and carol (day 5) bought: two buyers, tiles 1 and 2.
    assert value_of(store, "buyer_recency(20d)", CAROL) == 2
    assert value_of(store, "buyer_recency(20d)", BOB) is None
    assert members(store, "buyer_recency(20d) >= 1") == {ALICE, CAROL}

"""Open and click rates count each email once, so they are shares of sends."""

from __future__ import annotations

from datetime import timedelta

from segtestkit import AS_OF, add_contact, add_event, create_store, value_of

KEY = "reader@example.com"


def test_repeat_opens_of_one_email_count_once() -> None:
    con = create_store()
    add_contact(con, KEY)
    day = lambda n: AS_OF - timedelta(days=n)  # noqa: E731
    for n, campaign in enumerate(["c1", "c2", "c3", "c4"], start=1):
        add_event(con, KEY, "email.sent", day(n * 7), properties={"campaign_id": campaign})
    # c1 opened five times and clicked twice, c2 opened once; c3 and c4 never opened.
    for hours in range(5):
        add_event(con, KEY, "email.opened", day(7) + timedelta(hours=hours), properties={"campaign_id": "c1"})
    add_event(con, KEY, "email.opened", day(14) + timedelta(hours=1), properties={"campaign_id": "c2"})
    add_event(con, KEY, "email.clicked", day(7) + timedelta(hours=1), properties={"campaign_id": "c1"})
    add_event(con, KEY, "email.clicked", day(7) + timedelta(hours=2), properties={"campaign_id": "c1"})
    assert value_of(con, "open_rate(90d)", KEY) == 0.5
    assert value_of(con, "click_rate(90d)", KEY) == 0.25
    assert value_of(con, "opens(90d)", KEY) == 6  # counts stay counts of events


def test_open_rate_can_exceed_one_as_docs_rules_md_says() -> None:
    """docs/rules.md's example: one send, its campaign opened twice, another campaign once and
    two opens without a campaign_id: four emails opened over one send."""
    con = create_store()
    add_contact(con, KEY)
    at = AS_OF - timedelta(days=3)
    add_event(con, KEY, "email.sent", at, properties={"campaign_id": "c1"})
    for campaign in ("c1", "c1", "c2", None, None):
        add_event(con, KEY, "email.opened", at + timedelta(hours=1),
                  properties={"campaign_id": campaign} if campaign else None)
    assert value_of(con, "open_rate()", KEY) == 4
    # Its send before the window: opened inside it, sent outside it.
    add_event(con, KEY, "email.sent", AS_OF - timedelta(days=100), properties={"campaign_id": "old"})
    add_event(con, KEY, "email.opened", at, properties={"campaign_id": "old"})
    assert value_of(con, "open_rate(30d)", KEY) == 5

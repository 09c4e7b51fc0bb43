"""A small hand-built store; expectations in the tests are computed by hand from it.

as_of is 2024-06-01T00:00Z. Per contact (days are before as_of):

alice  HR, US, size 50, created 2023-01-01, custom tier=gold score=7 vip=true
       opens: 6 within 30d (days 1..6), 1 at day 40, 1 AFTER as_of (ignored)
       sends: 10 within 90d (days 1..10); clicks: 2 within 90d (days 2, 3)
       orders: 300 (day 10), 250 (day 100), 1000 (day 400)
       page.viewed /vip-rewards/faq (day 5); product.viewed category shoes (day 3)
       consent email: opted_in 2024-01-01
bob    Engineering, DE, size 500, created 2024-05-01, custom tier=silver
       sends: 2 (days 1, 2); cart.added 2 hours ago; order 80 (day 30); page.viewed /blog (day 1)
       consent email: opted_in 2024-01-01, opted_out 2024-05-01
carol  People, US, no created_at
       opens: 1 at day 100; order 50 (day 5, properties items=3)
       consent email: opted_out 2024-01-01, opted_in 2024-07-01 (after as_of)
dave   nothing but the key; consent email: opted_out and opted_in at the same instant
       (the later id, opted_in, wins)
eve    key with a quote: "o'neil@example.com", last_name "'; DROP TABLE contacts; --"
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
from segsync.segments import SegmentDef, evaluate, explain
from segsync.store.migrations import MIGRATIONS

AS_OF = datetime(2024, 6, 1, tzinfo=timezone.utc)
ALICE, BOB, CAROL, DAVE, EVE = (
    "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com",
    "o'neil@example.com",
)
EVERYONE = {ALICE, BOB, CAROL, DAVE, EVE}


def day(n: float) -> datetime:
    return AS_OF - timedelta(days=n)


def create_store() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    for m in MIGRATIONS:
        for stmt in m.statements:
            con.execute(stmt)
    return con


def add_contact(con, key, **attrs) -> None:
    custom = attrs.pop("custom", {})
    cols = ["contact_key", "custom", "first_seen_at", "updated_at", "updated_by", *attrs]
    vals = [key, json.dumps(custom), AS_OF - timedelta(days=1000), AS_OF, "test", *attrs.values()]
    con.execute(
        f"INSERT INTO contacts ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals
    )


_seq = iter(range(1, 1_000_000))


def add_event(con, key, type_, at, value=None, url=None, category=None, properties=None):
    con.execute(
        "INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, value, "
        "url, category, properties, campaign_key, contact_id) "
        # The typed columns as ingestion writes them (store migrations 4 and 5).
        "SELECT v.*, coalesce(properties ->> '$.campaign_id', source || source_event_id), "
        "(SELECT contact_id FROM contacts c WHERE c.contact_key = v.contact_key) "
        "FROM (VALUES (?, ?, ?::TIMESTAMPTZ, 'test', ?, ?, ?, ?, ?::JSON)) "
        "v(contact_key, type, occurred_at, source, source_event_id, value, url, category, properties)",
        [key, type_, at, str(next(_seq)), value, url, category, json.dumps(properties or {})],
    )


def add_consent(con, key, status, at, channel="email", purpose="marketing"):
    con.execute(
        "INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source, "
        "method, ingested_at) VALUES (?, ?, ?, ?, ?, 'test', 'form', ?)",
        [key, channel, purpose, status, at, at],
    )


def populate(con) -> None:
    add_contact(con, ALICE, first_name="Alice", department="HR", country="US", company_size=50,
                created_at=datetime(2023, 1, 1, tzinfo=timezone.utc),
                custom={"tier": "gold", "score": "7", "vip": True})
    add_contact(con, BOB, first_name="Bob", department="Engineering", country="DE",
                company_size=500, created_at=datetime(2024, 5, 1, tzinfo=timezone.utc),
                custom={"tier": "silver"})
    add_contact(con, CAROL, first_name="Carol", department="People", country="US")
    add_contact(con, DAVE)
    add_contact(con, EVE, last_name="'; DROP TABLE contacts; --")

    for d in range(1, 7):
        add_event(con, ALICE, "email.opened", day(d))
    add_event(con, ALICE, "email.opened", day(40))
    add_event(con, ALICE, "email.opened", AS_OF + timedelta(days=1))
    for d in range(1, 11):
        add_event(con, ALICE, "email.sent", day(d))
    add_event(con, ALICE, "email.clicked", day(2))
    add_event(con, ALICE, "email.clicked", day(3))
    add_event(con, ALICE, "order.completed", day(10), value=300)
    add_event(con, ALICE, "order.completed", day(100), value=250)
    add_event(con, ALICE, "order.completed", day(400), value=1000)
    add_event(con, ALICE, "page.viewed", day(5), url="/vip-rewards/faq")
    add_event(con, ALICE, "product.viewed", day(3), category="shoes")

    add_event(con, BOB, "email.sent", day(1))
    add_event(con, BOB, "email.sent", day(2))
    add_event(con, BOB, "cart.added", AS_OF - timedelta(hours=2))
    add_event(con, BOB, "order.completed", day(30), value=80)
    add_event(con, BOB, "page.viewed", day(1), url="/blog")

    add_event(con, CAROL, "email.opened", day(100))
    add_event(con, CAROL, "order.completed", day(5), value=50, properties={"items": 3})

    add_consent(con, ALICE, "opted_in", datetime(2024, 1, 1, tzinfo=timezone.utc))
    add_consent(con, BOB, "opted_in", datetime(2024, 1, 1, tzinfo=timezone.utc))
    add_consent(con, BOB, "opted_out", datetime(2024, 5, 1, tzinfo=timezone.utc))
    add_consent(con, CAROL, "opted_out", datetime(2024, 1, 1, tzinfo=timezone.utc))
    add_consent(con, CAROL, "opted_in", datetime(2024, 7, 1, tzinfo=timezone.utc))
    add_consent(con, DAVE, "opted_out", datetime(2024, 2, 1, tzinfo=timezone.utc))
    add_consent(con, DAVE, "opted_in", datetime(2024, 2, 1, tzinfo=timezone.utc))



def members(con, rule: str, as_of=AS_OF) -> set[str]:
    evaluate(con, [SegmentDef(name="t", rule=rule)], {}, as_of)
    return {k for (k,) in con.execute("SELECT contact_key FROM segment_membership").fetchall()}


def value_of(con, expr: str, key: str, as_of=AS_OF):
    """The value of a numeric expression for one contact (via explain)."""
    seg = SegmentDef(name="probe", rule=f"{expr} >= 0 or {expr} < 0")
    steps = explain(con, seg, key, as_of).steps
    assert steps[2].text == expr
    return steps[2].value

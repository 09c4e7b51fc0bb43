"""A generated business for the equivalence suite: the same rows loaded into every engine.

Deterministic (seeded): contacts with typed and custom attributes (custom values that cast and
values that do not), two years of events of every standard type, consent timelines (opt-ins by
every method, opt-outs, bounces, complaints, pending, ties at one instant, records whose clocks
run ahead), segsync's own pushes (so some records are echoes), and suppressions.
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

AS_OF = datetime(2025, 6, 1, tzinfo=timezone.utc)
LATER = AS_OF + timedelta(days=9)  # the second evaluation
TYPES = ("email.sent", "email.opened", "email.clicked", "order.completed", "page.viewed",
         "product.viewed", "cart.added", "email.bounced")
COUNTRIES = ("US", "DE", "CA", "FR", None)
METHODS = ("form", "double_opt_in", "import", "api", "purchase", "inquiry", "admin")
LEDGER = ("opted_in", "opted_in", "opted_in", "opted_out", "pending", "bounced", "complained")
CUSTOM_SCORES = ("7", "12.5", "abc", "", " 3 ", "-1", None)
CUSTOM_FLAGS = (True, False, "true", "false", "1", "0", "yes", None)
CUSTOM_DATES = ("2024-01-31", "2023-06-01T10:00:00Z", "not a date", None)


def _key(i: int) -> str:
    # A few keys with quotes and non-ASCII letters: quoting and sort order (NTILE ties).
    return {3: "o'neil@example.com", 5: "zoë@example.com", 8: "Émile@example.com"}.get(
        i, f"p{i:04d}@example.com")


def _load(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], rows: list[tuple],
          select: str = "*", extra: Sequence[str] = ()) -> None:
    """Bulk-load ``rows`` through a CSV file (DuckDB's executemany runs a statement per row)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{table}.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(
                ["" if v is None else v.isoformat() if isinstance(v, datetime) else v for v in row]
                for row in rows)
        types = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
        con.execute(f"INSERT INTO {table} ({', '.join((*columns, *extra))}) SELECT {select} FROM read_csv("
                    f"'{path}', header = false, columns = {{{types}}}, nullstr = '') AS e")


def populate(con: duckdb.DuckDBPyConnection, contacts: int = 400, seed: int = 13) -> None:
    rnd = random.Random(seed)
    people = []
    for i in range(contacts):
        custom = {k: v for k, v in (("score", rnd.choice(CUSTOM_SCORES)), ("vip", rnd.choice(CUSTOM_FLAGS)),
                                    ("signup", rnd.choice(CUSTOM_DATES)), ("tier", rnd.choice(("gold", "silver", None))))
                  if v is not None}
        people.append((_key(i), f"N{i}", rnd.choice(COUNTRIES), rnd.choice((None, 10, 50, 500)),
                       None if i % 7 == 0 else AS_OF - timedelta(days=rnd.randint(1, 900)),
                       json.dumps(custom), AS_OF - timedelta(days=1000), AS_OF, "gen"))
    _load(con, "contacts", ("contact_key", "first_name", "country", "company_size", "created_at", "custom",
                            "first_seen_at", "updated_at", "updated_by"), people)
    events = []
    for i in range(contacts):
        for n in range(rnd.randint(0, 40)):
            kind = rnd.choice(TYPES)
            at = AS_OF - timedelta(seconds=rnd.randint(-20 * 86400, 730 * 86400))
            props = {}
            if kind in ("email.opened", "email.clicked", "email.sent") and rnd.random() < 0.8:
                props["campaign_id"] = f"c{rnd.randint(1, 12)}"
            value = round(rnd.uniform(5, 400), 2) if kind == "order.completed" else None
            if value is not None and rnd.random() < 0.3:
                props["items"] = rnd.randint(1, 5)
            url = rnd.choice(("/vip-rewards/faq", "/blog", "/shoes/x", None)) if kind == "page.viewed" else None
            category = rnd.choice(("shoes", "bags", None)) if kind in ("page.viewed", "product.viewed", "email.clicked") else None
            events.append((_key(i), kind, at, "gen", f"{i}-{n}", value, url, category, json.dumps(props)))
    columns = ("contact_key", "type", "occurred_at", "source", "source_event_id", "value", "url",
               "category", "properties")
    # The typed columns as ingestion writes them (store migrations 4 and 5).
    _load(con, "events", columns, events,
          "*, coalesce(properties::JSON ->> '$.campaign_id', source || source_event_id), "
          "(SELECT contact_id FROM contacts c WHERE c.contact_key = e.contact_key)",
          extra=("campaign_key", "contact_id"))
    ledger = []
    for i in range(contacts):
        t = AS_OF - timedelta(days=rnd.randint(30, 800))
        for _ in range(rnd.randint(0, 5)):
            t += timedelta(seconds=rnd.choice((0, 1, 60, 86400 * rnd.randint(1, 90))))
            ingested = t + timedelta(seconds=rnd.choice((0, 5, 3600)))
            recorded = t + timedelta(hours=2) if rnd.random() < 0.05 else t  # a clock ahead
            channel = "email" if rnd.random() < 0.9 else "sms"
            ledger.append((_key(i), channel, "marketing", rnd.choice(LEDGER), recorded,
                           rnd.choice(("gen", "mailchimp", "brevo")), rnd.choice(METHODS), ingested))
    _load(con, "consent_ledger", ("contact_key", "channel", "purpose", "status", "recorded_at", "source",
                                  "method", "ingested_at"), ledger)
    # segsync's own pushes: a record a system reports right after one of them is an echo.
    for key, _, _, status, recorded, source, _, ingested in ledger[::6]:
        con.execute(
            "INSERT INTO status_changes (destination, contact_key, channel, purpose, after_status, "
            "outcome, changed_at) VALUES (?, ?, 'email', 'marketing', ?, 'acknowledged', ?)",
            [source, key, "subscribed" if status in ("opted_in", "pending") else "unsubscribed",
             ingested - timedelta(seconds=30)])
    for i in range(0, contacts, 37):
        con.execute(
            "INSERT INTO suppressions (contact_key, address_hash, channel, reason, source, created_at, "
            "removed_at) VALUES (?, 'h', ?, ?, 'cli', ?, ?)",
            [_key(i), rnd.choice(("email", "all", "sms")), rnd.choice(("bounce", "complaint", "manual")),
             AS_OF - timedelta(days=10), None if i % 2 else AS_OF - timedelta(days=1)])


def more_events(con: duckdb.DuckDBPyConnection, run_id: int, seed: int = 29) -> None:
    """What a second pull brings (run ``run_id``): new opens, orders and opt-outs."""
    rnd = random.Random(seed)
    keys = [k for (k,) in con.execute("SELECT contact_key FROM contacts ORDER BY contact_key").fetchall()]
    for n, key in enumerate(rnd.sample(keys, 60)):
        kind = rnd.choice(("email.opened", "order.completed", "email.sent"))
        con.execute(
            "INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, value, "
            "properties, campaign_key, contact_id, run_id) SELECT ?, ?, ?, 'gen2', ?, ?, '{}', ?, "
            "(SELECT contact_id FROM contacts WHERE contact_key = ?), ?",
            [key, kind, LATER - timedelta(days=rnd.randint(0, 8)), str(n),
             100.0 if kind == "order.completed" else None, f"gen2{n}", key, run_id])
    for key in rnd.sample(keys, 15):
        con.execute(
            "INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source, "
            "method, ingested_at, run_id) VALUES (?, 'email', 'marketing', 'opted_out', ?, 'gen2', "
            "'form', ?, ?)", [key, LATER - timedelta(days=1), LATER - timedelta(days=1), run_id])

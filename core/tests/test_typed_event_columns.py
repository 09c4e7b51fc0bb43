"""Typed event columns (store migrations 4 and 5) hold exactly what the JSON and the contact say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync import Batch, Stream
from segsync.default_plugins.event_types import EVENT_TYPES
from segsync.store import Store
from segsync.store.ingest import Ingestor
from segsync.store.migrations import MIGRATIONS

from .conftest import rows

_campaign = st.one_of(
    st.none(),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
    st.integers(-(2**40), 2**40),
)
_event = st.fixed_dictionaries(
    {
        "email": st.sampled_from(["ann@example.com", "bo@example.com", "cy@example.org"]),
        "type": st.sampled_from(["email.sent", "email.opened", "email.clicked", "page.viewed"]),
        "timestamp": st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-02T11:30:00+02:00"]),
        "id": st.text("abcdef0123456789", min_size=1, max_size=6),
    },
    optional={"properties": st.fixed_dictionaries({}, optional={"campaign_id": _campaign,
                                                                 "other": st.integers()})},
)


def _expected_campaign_key(source: str, record: dict) -> str:
    # ->> of a JSON string is the string, of a number its digits; absent or null: the event.
    value = record.get("properties", {}).get("campaign_id")
    return source + record["id"].strip() if value is None else str(value)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_event, min_size=1, max_size=12))
def test_typed_columns_equal_the_json_and_the_contact(tmp_path: Path, records) -> None:
    with Store(":memory:") as store:
        Ingestor(store.con, connection="src", run_id=1, event_types=EVENT_TYPES).ingest(
            Batch(Stream.EVENTS, None, rows=records)
        )
        stored = {
            event_id: (campaign_key, contact_id, contact_key, key_of_id)
            for event_id, campaign_key, contact_id, contact_key, key_of_id in rows(store, """
                SELECT e.source_event_id, e.campaign_key, e.contact_id, e.contact_key, c.contact_key
                FROM events e LEFT JOIN contacts c ON c.contact_id = e.contact_id""")
        }
        first = {}
        for r in records:  # a repeated source event id is stored once: the first
            first.setdefault(r["id"].strip(), r)
        assert {i: v[0] for i, v in stored.items()} == {
            i: _expected_campaign_key("src", r) for i, r in first.items()
        }
        # contact_id names the event's own contact, and each contact has its own id.
        assert all(contact_key == key_of_id for _, _, contact_key, key_of_id in stored.values())
        ids = rows(store, "SELECT count(DISTINCT contact_id), count(*) FROM contacts")[0]
        assert ids[0] == ids[1] == len({r["email"] for r in records})


def test_migration_backfills_an_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with Store(path, migrations=MIGRATIONS[:3]) as old:
        for key in ("ann@example.com", "bo@example.com"):
            old.con.execute("INSERT INTO contacts (contact_key, first_seen_at, updated_at, updated_by) "
                            "VALUES (?, now(), now(), 'test')", [key])
        for key, event_id, props in [
            ("ann@example.com", "e1", {"campaign_id": "spring"}),
            ("ann@example.com", "e2", {"campaign_id": 42}),
            ("bo@example.com", "e3", {}),
            ("gone@example.com", "e4", {"campaign_id": "x"}),  # no contact row
        ]:
            old.con.execute(
                "INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, "
                "properties) VALUES (?, 'email.opened', now(), 'crm', ?, ?)",
                [key, event_id, json.dumps(props)],
            )
    with Store(path) as store:
        assert store.schema_version() >= 4
        assert rows(store, """
            SELECT e.source_event_id, e.campaign_key, c.contact_key
            FROM events e LEFT JOIN contacts c USING (contact_id) ORDER BY 1""") == [
            ("e1", "spring", "ann@example.com"),
            ("e2", "42", "ann@example.com"),
            ("e3", "crme3", "bo@example.com"),
            ("e4", "x", None),
        ]
        assert rows(store, "SELECT count(DISTINCT contact_id) FROM contacts") == [(2,)]
        # New contacts continue the sequence; a writer that leaves campaign_key out fails.
        store.con.execute("INSERT INTO contacts (contact_key, first_seen_at, updated_at, updated_by) "
                          "VALUES ('cy@example.org', now(), now(), 'test')")
        assert rows(store, "SELECT count(DISTINCT contact_id) FROM contacts") == [(3,)]
        with pytest.raises(Exception, match="NOT NULL constraint failed: events.campaign_key"):
            store.con.execute("INSERT INTO events (contact_key, type, occurred_at, source, "
                              "source_event_id) VALUES ('cy@example.org', 'email.sent', now(), "
                              "'crm', 'e5')")

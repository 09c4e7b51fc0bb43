"""Remembered rejections: who refused, and the destination fingerprint they hold under."""

from __future__ import annotations

from pathlib import Path

from segsync.store import Store
from segsync.store.migrations import MIGRATIONS
from segsync.sync import rejections


def _rejected(store: Store) -> list[tuple[str, str, str]]:
    return store.con.execute(
        "SELECT destination, contact_key, refused_by FROM rejected ORDER BY destination, contact_key"
    ).fetchall()


def _reject(store: Store, destination: str, key: str, reason: str) -> None:
    store.con.execute("INSERT INTO rejected (destination, contact_key, state_hash, reason, run_id, rejected_at) "
                      "VALUES (?, ?, 'h', ?, 1, now())", [destination, key, reason])


def test_migration_3_tells_gate_refusals_from_destination_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Store(path, migrations=MIGRATIONS[:2]) as old:
        _reject(old, "brevo", "a@example.com", "Brevo has no contact attribute COMPANY")
        _reject(old, "brevo", "b@example.com", "consent gate: no valid opt-in")
    with Store(path) as store:
        assert _rejected(store) == [("brevo", "a@example.com", "destination"), ("brevo", "b@example.com", "gate")]
        assert rejections.remembered_rejections(store.con, "brevo") == 1


def test_a_new_fingerprint_forgets_the_destinations_refusals_only(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        _reject(store, "brevo", "a@example.com", "missing attribute")
        _reject(store, "mc", "c@example.com", "Invalid Resource")
        store.con.execute("INSERT INTO rejected VALUES ('brevo', 'b@example.com', 'h', 'consent gate: x', 1, now(), 'gate')")
        # A store from before fingerprints: the refusals are planned again once.
        assert rejections.renew_rejections(store.con, "brevo", "fp1") == 1
        assert _rejected(store) == [("brevo", "b@example.com", "gate"), ("mc", "c@example.com", "destination")]
        _reject(store, "brevo", "a@example.com", "missing attribute")
        assert rejections.renew_rejections(store.con, "brevo", "fp1") == 0  # nothing changed: kept
        assert rejections.remembered_rejections(store.con, "brevo") == 1
        assert rejections.renew_rejections(store.con, "brevo", "fp2") == 1
        assert rejections.remembered_rejections(store.con, "brevo") == 0
        assert store.scalar("SELECT fingerprint FROM rejection_fingerprints WHERE destination = 'brevo'") == "fp2"
        assert rejections.forget_rejections(store.con, "mc") == 1
        assert _rejected(store) == [("brevo", "b@example.com", "gate")]


def test_the_fingerprint_hides_secret_values_and_follows_each_input() -> None:
    base = rejections.destination_fingerprint({"host": "h", "api_key": "**********"}, [["vip", None]], "attributes:A")
    assert base == rejections.destination_fingerprint({"api_key": "**********", "host": "h"}, [["vip", None]], "attributes:A")
    assert len({
        base,
        rejections.destination_fingerprint({"host": "h2", "api_key": "**********"}, [["vip", None]], "attributes:A"),
        rejections.destination_fingerprint({"host": "h", "api_key": "**********"}, [["vip", {"list": "VIP"}]], "attributes:A"),
        rejections.destination_fingerprint({"host": "h", "api_key": "**********"}, [["vip", None]], "attributes:A,B"),
    }) == 4

"""The consent gate and the policies: plugins cannot push an opted-out contact; policies apply
per connection and per contact country; plugins register their own policies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from segsync import ContactChange, hookimpl
from segsync.config import ConfigError
from segsync.consent import ConsentPolicy
from segsync.plugins import DuplicateRegistration
from segsync.store import Store
from segsync.store.migrations import MIGRATIONS
from segsync.sync.diff import DestinationDiff, PlannedChange

from .consent_systems import ANN, BO, CONFIG, CY, SYSTEMS, SystemPlugin, reset_systems  # noqa: F401


@pytest.fixture
def shop(project):
    project.write_config(CONFIG)
    project.write("consent.csv", """
        email,status,timestamp,method
        ann@example.com,opted_in,2024-01-01T00:00:00Z,form
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in
        bo@example.com,opted_out,2024-02-01T00:00:00Z,email_link
    """)
    return project


def _store(project) -> Store:
    return Store(project.root / "store.duckdb", read_only=True)


def test_a_plugin_writing_an_opted_out_contact_through_the_connector_is_blocked_and_recorded(shop) -> None:
    class Sneaky:
        """Adds Bo (opted out) as subscribed to every push it sees."""

        @hookimpl(tryfirst=True)
        def segsync_push(self, connector, changes, run_id):
            return connector.write([*changes, ContactChange(BO, "upsert", "subscribed", {"first_name": "Bo"})])

    summary = shop.run(SystemPlugin(), Sneaky())
    for name in "abc":
        assert SYSTEMS[name].contacts == {ANN: {"status": "subscribed", "attributes": {"first_name": "Ann", "tier": "gold"}}}
        assert all(w[1] != BO for w in SYSTEMS[name].writes)
    assert {d.name: d.records_blocked for d in summary.destinations} == {"a": 1, "b": 1, "c": 1}
    with _store(shop) as store:
        errors = store.con.execute("SELECT connection, phase, record, field, reason FROM record_errors "
                                   "ORDER BY connection").fetchall()
        audit = store.con.execute("SELECT destination, after_status, outcome FROM status_changes "
                                  "WHERE contact_key = ? ORDER BY destination", [BO]).fetchall()
    assert errors == [(n, "gate", "b***@e***.com", "status",
                       "blocked by the consent gate (plugin 'Sneaky' wrote it through the connector): "
                       "no consent to subscribe (effective status: unsubscribed)") for n in "abc"]
    assert audit == [(n, "subscribed", "blocked") for n in "abc"]


def test_a_planned_change_without_consent_never_reaches_any_hook(shop, monkeypatch) -> None:
    real = DestinationDiff.batches

    def buggy(diff, batch_size):
        # A planner bug: Bo (opted out) and Cy (no record at all) planned as subscribed adds.
        for batch in real(diff, batch_size):
            yield batch
        yield [PlannedChange(ContactChange(key, "upsert", "subscribed"), "add", "h") for key in (BO, CY)]

    monkeypatch.setattr(DestinationDiff, "batches", buggy)
    seen: list[str] = []

    class Observer:
        @hookimpl(wrapper=True)
        def segsync_push(self, connector, changes, run_id):
            seen.extend(c.contact_key for c in changes)
            return (yield)

    summary = shop.run(SystemPlugin(), Observer())
    assert set(seen) == {ANN}
    assert {d.name: (d.records_blocked, d.records_rejected) for d in summary.destinations} == {n: (2, 2) for n in "abc"}
    with _store(shop) as store:
        reasons = sorted({r[0] for r in store.con.execute(
            "SELECT reason FROM record_errors WHERE phase = 'gate'").fetchall()})
    assert reasons == [
        "blocked by the consent gate (planned change): no consent to subscribe (effective status: none)",
        "blocked by the consent gate (planned change): no consent to subscribe (effective status: unsubscribed)",
    ]


def test_pending_is_not_consent_and_nobody_is_added_while_pending(shop) -> None:
    shop.append("consent.csv", "cy@example.com,pending,2024-03-01T00:00:00Z,form\n")
    shop.run(SystemPlugin())
    assert set(SYSTEMS["a"].contacts) == {ANN}
    shop.append("consent.csv", "cy@example.com,opted_in,2024-03-02T00:00:00Z,double_opt_in\n")
    shop.run(SystemPlugin())
    assert set(SYSTEMS["a"].contacts) == {ANN, CY}


def test_strict_double_opt_in_for_one_connection(shop) -> None:
    shop.append("consent.csv", "cy@example.com,opted_in,2024-03-02T00:00:00Z,double_opt_in\n")
    shop.write_config(CONFIG + '\n[consent.connections]\nb = "strict_double_opt_in"\n')
    shop.run(SystemPlugin())
    assert set(SYSTEMS["a"].contacts) == {ANN, CY}
    assert set(SYSTEMS["b"].contacts) == {CY}  # Ann's form opt-in was never confirmed


def test_casl_implied_consent_by_country_expires(shop) -> None:
    now = datetime.now(timezone.utc)

    def ago(days: int) -> str:
        return (now - timedelta(days=days)).isoformat().replace("+00:00", "Z")

    shop.write("contacts.csv", """
        email,first_name,country
        ann@example.com,Ann,CA
        cy@example.com,Cy,CA
        dee@example.com,Dee,CA
        eve@example.com,Eve,DE
    """)
    shop.write("consent.csv", f"""
        email,status,timestamp,method
        ann@example.com,opted_in,{ago(400)},purchase
        cy@example.com,opted_in,{ago(800)},purchase
        dee@example.com,opted_in,{ago(200)},inquiry
        eve@example.com,opted_in,{ago(800)},purchase
    """)
    shop.write_config(CONFIG + '\n[consent.countries]\nCA = "casl"\n')
    shop.run(SystemPlugin())
    # Ann's purchase is within 2 years; Cy's is older and Dee's inquiry older than 6 months.
    # Eve is not in Canada: the project's default policy does not expire a purchase.
    assert set(SYSTEMS["a"].contacts) == {ANN, "eve@example.com"}


def test_consent_settings_are_checked(shop) -> None:
    shop.write_config(CONFIG + '\n[consent]\npolicy = "strictest"\n')
    with pytest.raises(ConfigError, match=r"no consent policy 'strictest' \(installed: casl, default, strict_double_opt_in\)"):
        shop.run(SystemPlugin())
    shop.write_config(CONFIG + '\n[consent.connections]\nzz = "default"\n')
    with pytest.raises(ConfigError, match="'zz' is not a connection"):
        shop.run(SystemPlugin())


class ConfirmedOrAdmin:
    @hookimpl
    def segsync_register_consent_policies(self, register):
        register(ConsentPolicy("admin_ok", "admins may lift opt-outs",
                               explicit_methods=frozenset({"form", "double_opt_in", "admin"})))


def test_a_plugin_registers_a_consent_policy(shop) -> None:
    shop.append("consent.csv", "bo@example.com,opted_in,2024-03-01T00:00:00Z,admin\n")
    shop.run(SystemPlugin())
    assert BO not in SYSTEMS["a"].contacts
    shop.write_config(CONFIG + '\n[consent]\npolicy = "admin_ok"\n')
    shop.run(SystemPlugin(), ConfirmedOrAdmin())
    assert SYSTEMS["a"].contacts[BO]["status"] == "subscribed"


def test_a_duplicate_policy_name_names_both_plugins(shop) -> None:
    class Again:
        @hookimpl
        def segsync_register_consent_policies(self, register):
            register(ConsentPolicy("default", "mine"))

    with pytest.raises(DuplicateRegistration, match="consent policy 'default' is registered by both plugin"):
        shop.host(Again()).consent_policies()


def test_migration_2_backfills_the_audit_from_existing_acknowledgements(tmp_path) -> None:
    path = tmp_path / "old.duckdb"
    with Store(path, migrations=MIGRATIONS[:1]) as old:
        old.con.execute("INSERT INTO acknowledged VALUES ('mc', ?, 'h', 'subscribed', 1, now())", [ANN])
    with Store(path, migrations=MIGRATIONS[:2]) as store:
        assert store.schema_version() == 2
        assert store.con.execute("SELECT destination, contact_key, after_status, outcome FROM status_changes"
                                 ).fetchall() == [("mc", ANN, "subscribed", "acknowledged")]
        assert len(store.scalar("SELECT salt FROM consent_salt")) == 64

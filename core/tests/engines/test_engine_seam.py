"""The engine seam (docs/scale.md): registration, [store] settings, dialect rendering and the
embedded engine driven through the Engine methods."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlglot
from pydantic import SecretStr

from segsync import hookimpl
from segsync.config import ConfigError, load_config, open_engine
from segsync.consent.policies import DEFAULT
from segsync.consent.rules import EffectiveConsent, combined_status_sql
from segsync.engines import Engine, EngineSettings
from segsync.engines.duckdb import DuckDBEngine
from segsync.plugins import DuplicateRegistration, PluginHost
from segsync.segments import SegmentDef, evaluate
from segsync.segments.builtins import default_registry
from segsync.segments.dialects import render, transpile
from segsync.segments.query import build_query
from segsync.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "segments"))
from segtestkit import ALICE, AS_OF, BOB, CAROL, DAVE, add_consent, populate  # noqa: E402


class FakeSettings(EngineSettings):
    url: str
    password: SecretStr | None = None


class FakeEngine(Engine):
    name = "fake"
    dialect = "postgres"
    Settings = FakeSettings

    def open(self): ...
    def close(self): ...
    def execute(self, sql): ...
    def rows(self, sql): return []
    def table_columns(self): return {"contacts": {"contact_key"}}
    def create_tables(self): ...
    def append(self, table, columns, rows): return 0
    def upsert(self, table, key, columns, rows): return 0


class FakeEnginePlugin:
    @hookimpl
    def segsync_register_engines(self, register):
        register(FakeEngine)


def test_engines_are_registered_through_the_hook_and_duplicates_name_both_plugins() -> None:
    host = PluginHost(load_entry_points=False, extra_plugins=[FakeEnginePlugin()])
    assert host.engines() == {"duckdb": DuckDBEngine, "fake": FakeEngine}

    class Clash:
        @hookimpl
        def segsync_register_engines(self, register):
            register(DuckDBEngine)

    clashing = PluginHost(load_entry_points=False, extra_plugins=[Clash()])
    with pytest.raises(DuplicateRegistration) as raised:
        clashing.engines()
    assert str(raised.value).startswith(
        "engine 'duckdb' is registered by both plugin 'Clash' and plugin 'segsync.default_plugins.engines'")


def _project(tmp_path: Path, store: str) -> Path:
    (tmp_path / "segsync.toml").write_text(store, encoding="utf-8")
    return tmp_path / "segsync.toml"


def test_store_engine_settings_come_from_the_file_and_secrets_from_the_environment(tmp_path, monkeypatch) -> None:
    host = PluginHost(load_entry_points=False, extra_plugins=[FakeEnginePlugin()])
    path = _project(tmp_path, '[store]\nengine = "fake"\nurl = "fake://127.0.0.1/db"\n'
                              '[store.tables]\nevents = "analytics.events_v"\n')
    monkeypatch.setenv("SEGSYNC_STORE_PASSWORD", "s3cret-value")
    config = load_config(path, host)
    assert (config.store_engine, config.store_options) == (
        "fake", {"url": "fake://127.0.0.1/db", "tables": {"events": "analytics.events_v"}})
    engine = open_engine(config, host)
    assert isinstance(engine, FakeEngine)
    assert engine.settings.url == "fake://127.0.0.1/db"
    assert engine.settings.password.get_secret_value() == "s3cret-value"
    assert dict(engine.tables) == {"events": "analytics.events_v"}


def test_store_engine_errors_name_the_key(tmp_path) -> None:
    host = PluginHost(load_entry_points=False, extra_plugins=[FakeEnginePlugin()])
    with pytest.raises(ConfigError) as raised:
        load_config(_project(tmp_path, '[store]\nengine = "oracle"\n'), host)
    assert raised.value.problems == [
        "store.engine: no engine 'oracle' (installed: duckdb, fake; "
        "`segsync install segsync-oracle` adds a packaged one)"]
    with pytest.raises(ConfigError) as raised:
        load_config(_project(tmp_path, '[store]\nurl = "postgresql://127.0.0.1/x"\n'), host)
    assert raised.value.problems == [
        "store.url: unknown key (known: engine, memory_limit, path) (an external engine's "
        "setting: set store.engine, docs/scale.md)"]
    config = load_config(_project(tmp_path, '[store]\nengine = "fake"\nurl = "x"\npassword = "p"\n'), host)
    with pytest.raises(ConfigError) as raised:
        open_engine(config, host)
    assert str(raised.value) == (
        f"{tmp_path / 'segsync.toml'}: store (engine fake): password is a secret and is not read "
        f"from the config file; set SEGSYNC_STORE_PASSWORD in the environment or in {tmp_path / '.env'}")
    config = load_config(_project(tmp_path, '[store]\nengine = "fake"\nurl = "x"\n'
                                             '[store.tables]\nsuppressions = "mine"\n'), host)
    with pytest.raises(ConfigError) as raised:
        open_engine(config, host)
    assert "tables: Value error, suppressions cannot be mapped; only contacts, events, " \
           "consent_ledger can (the others are segsync's own)" in str(raised.value)


def test_dialects_rewrite_what_sqlglot_does_not_translate() -> None:
    duck = ("SELECT TRY_CAST(custom ->> '$.score' AS DOUBLE) AS s, l.t + to_microseconds(300) AS u, "
            "NTILE(5) OVER (ORDER BY v, contact_key) AS r FROM events AS e JOIN contacts AS c ON true")
    assert transpile(duck, "postgres", {"events": "analytics.events_v"}) == (
        "SELECT SEGSYNC_TRY_DOUBLE(CAST(custom ->> 'score' AS TEXT)) AS s, "
        "l.t + (INTERVAL '300 MICROSECOND') AS u, "
        "NTILE(5) OVER (ORDER BY v, contact_key COLLATE \"C\") AS r "
        "FROM analytics.events_v AS e JOIN contacts AS c ON TRUE")
    # A mapped table keeps its canonical name as alias; a CTE of that name is left alone.
    assert transpile("WITH events AS (SELECT 1 AS x) SELECT x FROM events", "postgres",
                     {"events": "a.b"}) == "WITH events AS (SELECT 1 AS x) SELECT x FROM events"
    assert transpile("SELECT type FROM events", "postgres", {"events": "a.b"}) == \
        "SELECT type FROM a.b AS events"
    # PostgreSQL 15 names every subquery in FROM (the combined consent rule has an unnamed one).
    assert transpile("SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2) ORDER BY x", "postgres") == \
        "SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2) AS _subquery_0 ORDER BY x"
    # DuckDB without a mapping: the text as segsync wrote it.
    assert transpile(duck, "duckdb") == duck
    tree = sqlglot.parse_one("SELECT 1 FROM events", read="duckdb")
    assert render(tree, "duckdb", {"events": "main.ev"}) == "SELECT 1 FROM main.ev AS events"


def test_the_portable_consent_rule_decides_like_the_asof_one() -> None:
    """Echo detection without ASOF JOIN (for other engines) gives DuckDB's decisions, echoes
    included: a late opt-in that only repeats segsync's own push is ignored."""
    store = Store(":memory:")
    con = store.con
    populate(con)
    pushed = datetime(2024, 3, 1, tzinfo=timezone.utc)
    for status, at in (("subscribed", pushed), ("unsubscribed", pushed + timedelta(days=5))):
        con.execute("INSERT INTO status_changes (destination, contact_key, channel, purpose, "
                    "after_status, outcome, changed_at) VALUES ('test', ?, 'email', 'marketing', ?, "
                    "'acknowledged', ?)", [BOB, status, at])
    # Alice's echo: the system reports segsync's own subscription back (not new information).
    con.execute("INSERT INTO status_changes (destination, contact_key, channel, purpose, after_status, "
                "outcome, changed_at) VALUES ('test', ?, 'email', 'marketing', 'subscribed', "
                "'acknowledged', ?)", [ALICE, pushed])
    add_consent(con, ALICE, "opted_in", pushed + timedelta(seconds=1))
    asof = con.execute(combined_status_sql(DEFAULT, {}, as_of=AS_OF) + " ORDER BY contact_key").fetchall()
    portable = con.execute(combined_status_sql(DEFAULT, {}, as_of=AS_OF, portable=True)
                           + " ORDER BY contact_key").fetchall()
    assert portable == asof
    assert [(r[0], r[1]) for r in asof] == [
        (ALICE, "subscribed"), (BOB, "unsubscribed"), (CAROL, "subscribed"), (DAVE, "unsubscribed")]
    # The echo was not what decided Alice: her original form opt-in (ledger id 1) was.
    assert asof[0][2] == 1
    store.close()


def test_the_embedded_engine_evaluates_like_the_store(tmp_path) -> None:
    store = Store(":memory:")
    populate(store.con)
    segments = [SegmentDef(name="openers", rule="opens(30d) >= 1"),
                SegmentDef(name="buyers", rule="orders(365d) >= 1 and consentable(\"email\")")]
    engine = DuckDBEngine(DuckDBEngine.Settings(), tmp_path, store=store)
    with engine:
        query = build_query(segments, {}, AS_OF, default_registry(), dialect=engine.dialect)
        assert engine.evaluate(query) == {"openers": 1, "buyers": 1}
        assert engine.members() == [("buyers", ALICE), ("openers", ALICE)]
        assert engine.snapshot(7, AS_OF) == 2
        assert engine.membership_changes(None) == [("buyers", ALICE, "enter"), ("openers", ALICE, "enter")]
        assert engine.membership_changes(7) == []
        expected = evaluate(store.con, segments, {}, AS_OF)
        assert expected == {"openers": 1, "buyers": 1}
        with EffectiveConsent.build(store.con, {"d": DEFAULT}, {}, as_of=AS_OF) as consent:
            local = store.con.execute(consent.status_sql("d") + " ORDER BY contact_key").fetchall()
        assert engine.effective_consent(DEFAULT, as_of=AS_OF) == local
        assert engine.effective_consent(DEFAULT, as_of=AS_OF, contact_key=BOB) == \
            [r for r in local if r[0] == BOB]
    assert store.con is not None  # a store handed in is the caller's to close
    store.close()

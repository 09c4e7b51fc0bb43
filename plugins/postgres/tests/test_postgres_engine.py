"""The PostgreSQL engine against a real server (the session's throwaway cluster)."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql

from segsync.engines import CANONICAL_TABLES, EngineError, EngineUnavailable
from segsync_postgres.engine import PostgresEngine, PostgresSettings

_schemas = itertools.count(1)
AT = datetime(2025, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def engine(cluster, tmp_path):
    """An engine on its own schema of the cluster (tests do not see each other's tables)."""
    schema = f"t{os.getpid()}_{next(_schemas)}"
    eng = PostgresEngine(PostgresSettings(url=cluster.url, schema_name=schema), tmp_path)
    eng.open()
    yield eng
    eng.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(schema)).as_string(eng.con))
    eng.close()


def test_the_cluster_listens_on_loopback_and_never_runs_as_root(cluster) -> None:
    assert cluster.url.startswith("postgresql://segsync@127.0.0.1:")
    pid = int((cluster.data / "postmaster.pid").read_text().splitlines()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0
    with psycopg.connect(cluster.url) as con:
        assert con.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert con.execute("SHOW server_version_num").fetchone()[0].startswith("15")


def test_check_names_every_missing_table_then_column(engine) -> None:
    assert engine.check() == [f"table {t} is missing" for t in CANONICAL_TABLES]
    engine.create_tables()
    assert engine.check() == []
    engine.execute("ALTER TABLE events DROP COLUMN campaign_key")
    engine.execute("ALTER TABLE contacts DROP COLUMN custom")
    engine.execute("ALTER TABLE contacts DROP COLUMN country")
    assert engine.check() == ["table contacts lacks columns country, custom",
                              "table events lacks column campaign_key"]


def test_check_reads_mapped_tables_and_views(cluster, tmp_path) -> None:
    schema = f"m{os.getpid()}"
    with psycopg.connect(cluster.url, autocommit=True) as con:
        con.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
        con.execute(pgsql.SQL("CREATE VIEW {}.my_events AS SELECT 'a@example.com'::text AS contact_key")
                    .format(pgsql.Identifier(schema)))
    settings = PostgresSettings(url=cluster.url, schema_name=f"{schema}_segsync",
                                tables={"events": f"{schema}.my_events", "contacts": f"{schema}.nothing"})
    with PostgresEngine(settings, tmp_path) as engine:
        engine.create_tables()
        missing = sorted(set(CANONICAL_TABLES["events"]) - {"contact_key"},
                         key=list(CANONICAL_TABLES["events"]).index)
        assert engine.check() == [
            f"table contacts (mapped to {schema}.nothing) is missing",
            f"table events (mapped to {schema}.my_events) lacks columns {', '.join(missing)}",
        ]
        # segsync never writes a table it reads from the user.
        with pytest.raises(EngineError) as raised:
            engine.append("events", ["contact_key"], [("b@example.com",)])
        assert str(raised.value).endswith(
            f"events is mapped to {schema}.my_events ([store.tables]), which segsync reads but never writes")
        # create_tables() made none of the mapped ones in segsync's schema.
        assert "events" not in engine.table_columns() and "consent_ledger" in engine.table_columns()


def test_an_unreachable_server_is_named_without_its_password(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    url = f"postgresql://segsync@127.0.0.1:{port}/crm"
    with pytest.raises(EngineUnavailable) as raised:
        PostgresEngine(PostgresSettings(url=url, connect_timeout=3), tmp_path).open()
    assert str(raised.value).startswith(f"PostgreSQL at {url} cannot be reached: ")
    with pytest.raises(EngineUnavailable) as raised:
        PostgresEngine(PostgresSettings(url=f"postgresql://segsync:hunter2@127.0.0.1:{port}/crm"),
                       tmp_path).open()
    assert str(raised.value) == (f"postgresql://segsync:***@127.0.0.1:{port}/crm: a password does not "
                                 "belong in [store] url; set SEGSYNC_STORE_PASSWORD")
    assert "hunter2" not in str(raised.value)
    # libpq also reads a password from the query string: refused the same way, never shown.
    with pytest.raises(EngineUnavailable) as raised:
        PostgresEngine(PostgresSettings(url=f"postgresql://segsync@127.0.0.1:{port}/crm?password=hunter2"),
                       tmp_path).open()
    assert str(raised.value) == (f"postgresql://segsync@127.0.0.1:{port}/crm?password=***: a password does "
                                 "not belong in [store] url; set SEGSYNC_STORE_PASSWORD")


def test_append_and_upsert_write_in_bulk(engine) -> None:
    engine.create_tables()
    columns = ["contact_key", "contact_id", "custom", "first_seen_at", "updated_at", "updated_by",
               "country"]
    rows = [(f"p{i}@example.com", i, '{"tier": "gold"}', AT, AT, "test", "US") for i in range(1000)]
    assert engine.upsert("contacts", ["contact_key"], columns, rows) == 1000
    changed = [("p1@example.com", 1, '{"tier": "silver"}', AT, AT, "test", "CA"),
               ("new@example.com", 5000, "{}", AT, AT, "test", None)]
    assert engine.upsert("contacts", ["contact_key"], columns, changed) == 2
    assert engine.rows("SELECT count(*) FROM contacts") == [(1001,)]
    assert engine.rows("SELECT country, custom ->> 'tier' FROM contacts WHERE contact_key = 'p1@example.com'") \
        == [("CA", "silver")]
    events = [("p2@example.com", 2, "email.opened", AT, "test", f"e{i}", None, "{}", f"teste{i}")
              for i in range(5)]
    assert engine.append("events", ["contact_key", "contact_id", "type", "occurred_at", "source",
                                    "source_event_id", "value", "properties", "campaign_key"], events) == 5
    assert engine.rows("SELECT count(*), min(occurred_at) FROM events") == [(5, AT)]


def test_each_connection_evaluates_into_its_own_memberships(engine, cluster, tmp_path) -> None:
    """A command evaluating while a sync runs must not replace the sync's memberships."""
    engine.create_tables()
    engine.execute("INSERT INTO segment_membership VALUES ('vip', 'a@example.com')")
    other = PostgresEngine(engine.settings, tmp_path)
    with other:
        assert other.rows("SELECT count(*) FROM segment_membership") == [(0,)]
        other.execute("INSERT INTO segment_membership VALUES ('vip', 'b@example.com')")
    assert engine.rows("SELECT contact_key FROM segment_membership") == [("a@example.com",)]
    assert "segment_membership" not in engine.table_columns()  # not a table of the schema


def test_a_failing_statement_names_the_engine(engine) -> None:
    with pytest.raises(EngineError) as raised:
        engine.rows("SELECT * FROM no_such_table")
    assert str(raised.value).startswith(f"PostgreSQL at {engine.settings.url}: relation ")
    assert "no_such_table" in str(raised.value)


def test_without_a_url_a_local_cluster_lives_in_the_project_folder(request) -> None:
    # A folder the server's own user can reach (under root it runs as postgres; pytest's tmp_path
    # is private to root).
    project = Path(tempfile.mkdtemp(prefix="segsync-project-"))
    project.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(project))
    settings = PostgresSettings()
    with PostgresEngine(settings, project) as engine:
        engine.create_tables()
        engine.append("events", ["contact_key", "type", "occurred_at", "source", "source_event_id",
                                 "properties", "campaign_key"],
                      [("a@example.com", "email.sent", AT, "t", "1", "{}", "t1")])
        assert engine.where == f"the local PostgreSQL cluster in {project / 'segsync-postgres'}"
    assert (project / "segsync-postgres" / "data" / "PG_VERSION").is_file()
    assert not (project / "segsync-postgres" / "data" / "postmaster.pid").exists()  # stopped
    with PostgresEngine(settings, project) as engine:  # the next command finds the data again
        assert engine.rows("SELECT contact_key FROM events") == [("a@example.com",)]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_under_root_a_project_folder_the_server_cannot_reach_moves_to_the_temp_folder(tmp_path) -> None:
    project = tmp_path / "private"
    project.mkdir(mode=0o700)
    tmp_path.chmod(0o700)
    with PostgresEngine(PostgresSettings(), project) as engine:
        assert engine.where.startswith("the local PostgreSQL cluster in /tmp/segsync-postgres-")
        where = Path(engine.where.rpartition(" in ")[2])
        assert engine.rows("SELECT 1") == [(1,)]
    assert (where / "data" / "PG_VERSION").is_file()
    shutil.rmtree(where)

"""What crosses the wire from an external engine is the diff, and nothing is missed
(docs/scale.md#what-crosses-the-wire): effective consent comes back as the decisions that
changed, and contacts that exist only in the user's mapped tables are planned for every
destination exactly like contacts a connector brought."""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from segsync.config import load_config
from segsync.engines.layout import CANONICAL_TABLES
from segsync.store import Store
from segsync.sync.runner import RunOptions, Runner
from segsync.testing import Project

from .test_sync_on_engines import _engine_table

AS_OF = datetime(2024, 3, 1, tzinfo=timezone.utc)
PEOPLE = 60
ENGINES = ("postgres", "spark")
_schemas = itertools.count(1)

DESTINATION = """
[connections.upload]
type = "files"
output = "out/audience"

[[segments]]
name = "openers"
rule = "opens(90d) >= 1"
destinations = {{ upload = {{ tag = "openers" }} }}

[[segments]]
name = "gold"
rule = 'attr.tier == "gold"'
destinations = {{ upload = {{ tag = "gold" }} }}
"""
SOURCE = """
[connections.shop]
type = "files"
contacts = "data/contacts.csv"
consent = "data/consent.csv"
events = "data/events.jsonl"
push = false
"""


def _files(people: int = PEOPLE) -> dict[str, str]:
    """``people`` contacts, every one with consent (a few opted out), a third of them openers."""
    contacts = ["email,first_name,country,tier"] + [
        f"p{i:03d}@example.com,P{i},{'DE' if i % 4 else 'US'},{'gold' if i % 5 == 0 else 'silver'}"
        for i in range(people)]
    consent = ["email,status,timestamp,method"] + [
        f"p{i:03d}@example.com,{'opted_out' if i % 9 == 0 else 'opted_in'},2024-01-01T00:00:00Z,form"
        for i in range(people)]
    events = [f'{{"email": "p{i:03d}@example.com", "type": "email.opened", '
              f'"timestamp": "2024-02-01T00:00:00Z", "id": "e{i}"}}' for i in range(0, people, 3)]
    return {"contacts.csv": "\n".join(contacts) + "\n", "consent.csv": "\n".join(consent) + "\n",
            "events.jsonl": "\n".join(events) + "\n"}


def _run(project: Project) -> tuple[object, Runner]:
    runner = Runner(load_config(project.root / "segsync.toml"), project.host())
    summary = runner.run(RunOptions(as_of=AS_OF))
    return summary, runner


def _plans(summary) -> list:
    return [(d.name, d.status, d.planned) for d in summary.destinations]


@pytest.mark.parametrize("name", ENGINES)
def test_one_consent_change_brings_back_that_contacts_row_only(name, tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres,spark")
    project = Project(tmp_path)
    project.write_config(f'[store]\npath = "store.duckdb"\n{_engine_table(name, request)}'
                         + SOURCE + DESTINATION.format())
    for file, text in _files().items():
        project.write(file, text)

    first, runner = _run(project)
    subscribed = PEOPLE - len(range(0, PEOPLE, 9))
    assert _plans(first) == [("upload", "ok", {"add": subscribed})]
    # Nothing was mirrored yet: every contact's decision comes back once.
    assert runner.engine.received.rows["consent"] == PEOPLE
    assert [why.split(": ", 1)[1] for why in runner.engine.received.rebuilt] == ["never mirrored"]

    project.append("consent.csv", "p007@example.com,opted_out,2024-02-20T00:00:00Z,form\n")
    second, runner = _run(project)
    assert _plans(second) == [("upload", "ok", {"unsubscribe": 1})]
    # One consent change: that one contact's row crossed the wire, nobody else's.
    assert runner.engine.received.rows["consent"] == 1
    assert runner.engine.received.rebuilt == []
    with Store(tmp_path / "store.duckdb") as store:
        assert store.con.execute("SELECT status FROM engine_consent WHERE contact_key = 'p007@example.com'"
                                 ).fetchall() == [("unsubscribed",)]
        assert store.scalar("SELECT count(*) FROM engine_consent") == PEOPLE

    third, runner = _run(project)
    assert (_plans(third), runner.engine.received.rows["consent"]) == ([("upload", "ok", {})], 0)

    # The mirror and the engine disagree (a store restored from an older copy, a crash between
    # the two writes): the mirror is rebuilt whole and nothing is planned twice or missed.
    with Store(tmp_path / "store.duckdb") as store:
        store.con.execute("UPDATE engine_seen SET run_id = run_id - 1 WHERE what LIKE 'consent:%'")
        store.con.execute("UPDATE engine_consent SET status = 'subscribed' WHERE contact_key = 'p007@example.com'")
    fourth, runner = _run(project)
    assert _plans(fourth) == [("upload", "ok", {})]
    assert runner.engine.received.rows["consent"] == PEOPLE
    assert [why.split(": ", 1)[1] for why in runner.engine.received.rebuilt] == [
        "the mirror and the engine disagree"]
    with Store(tmp_path / "store.duckdb") as store:
        assert store.con.execute("SELECT status FROM engine_consent WHERE contact_key = 'p007@example.com'"
                                 ).fetchall() == [("unsubscribed",)]


def _export(store_path: Path, name: str, request, where: dict) -> dict[str, str]:
    """The user's own tables on ``name``: contacts, events and the consent ledger of the DuckDB
    project's store, written there (PostgreSQL: a schema; Spark: Parquet folders); returns
    ``[store.tables]``."""
    with Store(store_path) as store:
        if name == "postgres":
            from segsync.engines.transfer import transfer
            from segsync_postgres.engine import PostgresEngine, PostgresSettings

            cluster = request.getfixturevalue("postgres_cluster")
            schema = where.setdefault("schema", f"user{os.getpid()}_{next(_schemas)}")
            with PostgresEngine(PostgresSettings(url=cluster.url, schema_name=schema), Path(".")) as engine:
                engine.execute(f"DROP SCHEMA {schema} CASCADE")
                engine.execute(f"CREATE SCHEMA {schema}")
                engine.execute(f"SET search_path TO {schema}")
                engine.create_tables()
                transfer(store.con, engine)
            return {t: f"{schema}.{t}" for t in ("contacts", "events", "consent_ledger")}
        folder = where.setdefault("folder", store_path.parent.parent / "lake")
        generation = where["generation"] = where.get("generation", 0) + 1
        tables = {}
        for table in ("contacts", "events", "consent_ledger"):
            shutil.rmtree(folder / table, ignore_errors=True)
            (folder / table).mkdir(parents=True)
            columns = ", ".join(f"{c}::VARCHAR AS {c}" if CANONICAL_TABLES[table][c] == "jsonb" else c
                                for c in CANONICAL_TABLES[table])
            store.con.execute(f"COPY (SELECT {columns} FROM {table}) TO "
                              f"'{folder / table / f'part-{generation}.parquet'}' (FORMAT parquet)")
            tables[table] = f"parquet:{folder / table}"
        return tables


@pytest.mark.parametrize("name", ENGINES)
def test_contacts_only_in_mapped_tables_are_planned_like_ingested_ones(name, tmp_path, request, monkeypatch) -> None:
    """DuckDB with the data ingested through a connector against the engine with the same data
    in the user's own (mapped) tables and no source connection at all: the same plans, the
    same audience, run after run."""
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres,spark")
    ingested, mapped = Project(tmp_path / "duckdb"), Project(tmp_path / name)
    ingested.write_config('[store]\npath = "store.duckdb"\n' + SOURCE + DESTINATION.format())
    for file, text in _files().items():
        ingested.write(file, text)
    where: dict = {}
    engine_table = _engine_table(name, request)  # one segsync schema for every run

    def both() -> tuple[list, list, Runner]:
        reference, _ = _run(ingested)
        tables = _export(ingested.root / "store.duckdb", name, request, where)
        mapping = "".join(f'{t} = "{source}"\n' for t, source in tables.items())
        mapped.write_config(f'[store]\npath = "store.duckdb"\n{engine_table}'
                            f"[store.tables]\n{mapping}" + DESTINATION.format())
        summary, runner = _run(mapped)
        assert mapped.audience() == ingested.audience()
        return _plans(reference), _plans(summary), runner

    want, got, runner = both()
    assert got == want == [("upload", "ok", {"add": PEOPLE - len(range(0, PEOPLE, 9))})]
    assert runner.engine.received.rows["contacts"] == PEOPLE
    assert "gold" in mapped.audience()["p005@example.com"]["tags"]

    # A new contact who opts in, one attribute changed (p010 leaves gold), one opt-out.
    ingested.append("contacts.csv", "new@example.com,New,US,gold\np010@example.com,P10,DE,silver\n")
    ingested.append("consent.csv", "new@example.com,opted_in,2024-02-01T00:00:00Z,form\n"
                                   "p007@example.com,opted_out,2024-02-20T00:00:00Z,form\n")
    want, got, runner = both()
    assert got == want == [("upload", "ok", {"add": 1, "unsubscribe": 1, "update": 1})]
    # Only the two contacts whose rows changed in the user's table came back.
    assert runner.engine.received.rows["contacts"] == 2
    assert runner.engine.received.rows["consent"] == 2
    assert mapped.audience()["new@example.com"]["tags"] == ["gold"]

    want, got, runner = both()
    assert got == want == [("upload", "ok", {})]
    assert (runner.engine.received.rows["contacts"], runner.engine.received.rows["consent"]) == (0, 0)

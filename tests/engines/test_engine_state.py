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
from click.testing import CliRunner

from segsync import hookimpl
from segsync.cli import cli
from segsync.config import load_config
from segsync.engines.layout import CANONICAL_TABLES
from segsync.scores import score_feature
from segsync.segments.functions import BuildContext, Built, SegmentFunction
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

    if name == "postgres":  # (Spark: a third run costs a minute of CI; the consent test covers it)
        want, got, runner = both()
        assert got == want == [("upload", "ok", {})]
        assert (runner.engine.received.rows["contacts"], runner.engine.received.rows["consent"]) == (0, 0)


class LuckyScores:
    """A scoring plugin: model ``lucky`` scores each contact by the last digit of its key
    (p005 → 0.5) from the store's contacts; ``lucky()`` reads it in rules."""

    @hookimpl
    def segsync_register_segment_functions(self, register) -> None:  # noqa: ANN001
        def build(ctx: BuildContext, args) -> Built:  # noqa: ANN001
            feature = score_feature(ctx, "lucky")
            return Built(feature.ref(), (feature,))

        register(SegmentFunction("lucky", (), "number", "a test score", build,
                                 example="lucky() >= 0.5", origin="test"))

    @hookimpl
    def segsync_score_contacts(self, scores) -> None:  # noqa: ANN001
        if "lucky" in scores.wanted:
            scores.write_sql("lucky", "SELECT contact_key, TRY_CAST(substr(contact_key, 4, 1) AS DOUBLE) / 10 "
                                      "AS score FROM contacts")


LUCKY = """
[[segments]]
name = "lucky"
rule = "lucky() >= 0.5 and not attr.tier == 'gold'"
destinations = { upload = { tag = "lucky" } }
"""


@pytest.mark.parametrize("name", ENGINES)
def test_consent_changes_and_scores_cross_as_diffs(name, tmp_path, request, monkeypatch) -> None:
    """The same project on DuckDB and on the engine, with a rule reading scores: the same plans
    and audience; one consent change brings back that one contact's row; a mirror that
    disagrees with the engine is rebuilt, planning nothing twice."""
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres,spark")
    outcomes, received = {}, []
    for engine in ("duckdb", name):
        project = Project(tmp_path / engine)
        project.write_config(f'[store]\npath = "store.duckdb"\n{_engine_table(engine, request)}'
                             + SOURCE + DESTINATION.format() + LUCKY)
        for file, text in _files().items():
            project.write(file, text)
        runs = []
        for change in ("", "p007@example.com,opted_out,2024-02-20T00:00:00Z,form\n"):
            project.append("consent.csv", change)
            runner = Runner(load_config(project.root / "segsync.toml"), project.host(LuckyScores()))
            summary = runner.run(RunOptions(as_of=AS_OF))
            runs.append((summary.segments, summary.segment_errors, _plans(summary)))
            if runner.engine is not None:
                received.append((runner.engine.received.rows["consent"],
                                 [why.split(": ", 1)[1] for why in runner.engine.received.rebuilt]))
        outcomes[engine] = runs, project.audience()
    assert outcomes[name] == outcomes["duckdb"]
    runs, audience = outcomes[name]
    subscribed = PEOPLE - len(range(0, PEOPLE, 9))
    assert [plans for _, _, plans in runs] == [[("upload", "ok", {"add": subscribed})],
                                               [("upload", "ok", {"unsubscribe": 1})]]
    # Scores computed in the store and read in the engine: last digit 5-9, not gold (every fifth).
    assert runs[0][1] == {}
    assert sorted(k for k, r in audience.items() if "lucky" in r["tags"]) == sorted(
        f"p{i:03d}@example.com" for i in range(PEOPLE) if i % 10 >= 5 and i % 5 != 0 and i % 9 != 0)
    # Nothing was mirrored at first: every decision came back once; then the one that changed.
    assert received == [(PEOPLE, ["never mirrored"]), (1, [])]

    engine_project = Project(tmp_path / name)
    with Store(engine_project.root / "store.duckdb") as store:
        assert store.con.execute("SELECT status FROM engine_consent WHERE contact_key = 'p007@example.com'"
                                 ).fetchall() == [("unsubscribed",)]
        assert store.scalar("SELECT count(*) FROM engine_consent") == PEOPLE
        # The mirror and the engine disagree (a store restored from an older copy, a crash
        # between the two writes): the next run rebuilds the mirror whole.
        store.con.execute("UPDATE engine_seen SET run_id = run_id - 1 WHERE what LIKE 'consent:%'")
        store.con.execute("UPDATE engine_consent SET status = 'subscribed' WHERE contact_key = 'p007@example.com'")
    runner = Runner(load_config(engine_project.root / "segsync.toml"), engine_project.host(LuckyScores()))
    assert _plans(runner.run(RunOptions(as_of=AS_OF))) == [("upload", "ok", {})]
    assert runner.engine.received.rows["consent"] == PEOPLE
    assert [why.split(": ", 1)[1] for why in runner.engine.received.rebuilt] == [
        "the mirror and the engine disagree"]
    with Store(engine_project.root / "store.duckdb") as store:
        assert store.con.execute("SELECT status FROM engine_consent WHERE contact_key = 'p007@example.com'"
                                 ).fetchall() == [("unsubscribed",)]


def test_check_names_rules_reading_scores_on_an_engine_reading_your_events(tmp_path, request, monkeypatch) -> None:
    """Scores come from the rows segsync ingested: with events mapped onto the user's table on
    an engine, `segsync check` names each rule reading scores and the engine."""
    monkeypatch.setenv("SEGSYNC_PLUGINS", "postgres,predict")
    cluster = request.getfixturevalue("postgres_cluster")
    project = Project(tmp_path)
    project.write_config(f'[store]\nengine = "postgres"\nurl = "{cluster.url}"\n'
                         f'schema_name = "scores{os.getpid()}"\n[store.tables]\nevents = "lake.events"\n'
                         '[[segments]]\nname = "at_risk"\nrule = "churn_risk() > 0.7"\n'
                         '[[segments]]\nname = "openers"\nrule = "opens(30d) >= 1"\n')
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "segsync.toml"), "check"])
    assert result.exit_code == 1
    assert ("✗ segments (2)\n    segment 'at_risk': scores are computed from the contacts and events "
            "segsync ingested, and on the postgres engine events is mapped onto your own table "
            "([store.tables]), whose rows segsync never sees: rules reading scores cannot be "
            "evaluated there\n") in result.output
    assert "openers" not in result.output

"""`segsync forget` on an external engine (docs/scale.md#erasure): the person leaves every table
segsync writes there, other people stay, a table mapped onto the user's own is reported for
removal by hand, and an engine that cannot be reached keeps the erasure pending until a sync
reaches it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from segsync.config import load_config, open_engine
from segsync.statuses import RunStatus
from segsync.store import Store
from segsync.sync.runner import RunOptions, Runner
from segsync.testing import Project

from .test_engine_state import AS_OF, DESTINATION, ENGINES, LUCKY, PEOPLE, SOURCE, LuckyScores, _export, _files
from .test_sync_on_engines import _engine_table

GONE = "p000@example.com"  # gold, an opener, opted out: in every table segsync writes
KEPT = "p001@example.com"


def _cli(project: Project, *args: str):
    return CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), *args])


def _rows(project: Project, *keys: str) -> list[dict[str, int]]:
    """Per table segsync writes on the project's engine: the rows about each of ``keys``, then
    all rows (one engine session)."""
    config = load_config(project.root / "segsync.toml")
    with open_engine(config, project.host()) as engine:
        found: list[dict[str, int]] = [{} for _ in range(len(keys) + 1)]
        for table in engine.written_tables():
            if table == "segment_membership":
                continue  # the engine session's own evaluation: empty in a fresh one
            about = ", ".join(f"count(CASE WHEN contact_key = '{key}' THEN 1 END)" for key in keys)
            for counts, n in zip(found, engine.rows(f"SELECT {about}, count(*) FROM {table}")[0]):
                counts[table] = int(n)
        return found


def _synced(project: Project, config: str) -> None:
    """``config`` synced once (a rule reading scores: the score tables hold rows), then the
    scored segment dropped, so the CLI needs no scoring plugin."""
    project.write_config(config + LUCKY)
    for file, text in _files().items():
        project.write(file, text)
    assert _cli(project, "suppress", "add", GONE, KEPT, "--reason", "complaint").exit_code == 0
    Runner(load_config(project.root / "segsync.toml"), project.host(LuckyScores())).run(RunOptions(as_of=AS_OF))
    project.write_config(config)


@pytest.mark.parametrize("name", ENGINES)
def test_forget_deletes_the_person_from_every_table_segsync_writes_on_the_engine(
        name, tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres,spark")
    project = Project(tmp_path)
    _synced(project, f'[store]\npath = "store.duckdb"\n{_engine_table(name, request)}' + SOURCE + DESTINATION.format())
    before, kept_before, totals = _rows(project, GONE, KEPT)
    assert before == {"contacts": 1, "events": 1, "consent_ledger": 1, "suppressions": 1, "status_changes": 0,
                      "segment_snapshots": 2, "consent_current": 1, "consent_seen": 1, "contacts_seen": 0,
                      "contact_scores": 1}

    result = _cli(project, "forget", "--yes", "--json", GONE)
    assert result.exit_code == 1, result.output  # the source connection still holds the person
    report = json.loads(result.output)[0]
    held = {table: n for table, n in before.items() if n}
    assert report["systems"] == sorted([
        {"connection": f"{name} engine", "method": "engine", "status": "done", "error": None,
         "action": "deleted from segsync's tables there ("
                   + ", ".join(f"{t} {n}" for t, n in sorted(held.items())) + ")"},
        {"connection": "shop", "method": "manual", "status": "left", "action": None,
         "error": "segsync cannot write to this connection; its contacts, consent records and events still "
                  "hold the person: remove them there by hand (a re-import is dropped)"},
        {"connection": "upload", "method": "delete", "status": "done", "action": "deleted", "error": None},
    ], key=lambda s: s["connection"])  # reported by name
    assert report["left"] == ["shop"]

    after, kept_after, totals_after = _rows(project, GONE, KEPT)
    assert after == dict.fromkeys(before, 0)
    assert totals_after == {t: totals[t] - before[t] for t in totals}
    assert kept_after == kept_before  # everyone else untouched
    with Store(project.root / "store.duckdb") as store:
        assert store.scalar("SELECT count(*) FROM erasure_targets WHERE status = 'pending'") == 0

    if name == "spark":
        return  # (a third Spark session and sync cost a minute of CI; the engine-agnostic part is below)
    # The next sync pulls the person again from the source, drops them and sends nothing of
    # them to the engine.
    summary = Runner(load_config(project.root / "segsync.toml"), project.host()).run(RunOptions(as_of=AS_OF))
    assert summary.status == RunStatus.SUCCEEDED, summary.errors
    assert _rows(project, GONE)[0] == dict.fromkeys(before, 0)


@pytest.mark.parametrize("name", ENGINES)
def test_forget_names_tables_mapped_onto_the_users_own_as_left_by_hand(name, tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres,spark")
    ingested, mapped = Project(tmp_path / "duckdb"), Project(tmp_path / name)
    ingested.write_config('[store]\npath = "store.duckdb"\n' + SOURCE + DESTINATION.format())
    for file, text in _files().items():
        ingested.write(file, text)
    Runner(load_config(ingested.root / "segsync.toml"), ingested.host()).run(RunOptions(as_of=AS_OF))
    tables = _export(ingested.root / "store.duckdb", name, request, {})
    mapping = "".join(f'{t} = "{source}"\n' for t, source in tables.items())
    mapped.write_config(f'[store]\npath = "store.duckdb"\n{_engine_table(name, request)}'
                        f"[store.tables]\n{mapping}" + DESTINATION.format())
    Runner(load_config(mapped.root / "segsync.toml"), mapped.host()).run(RunOptions(as_of=AS_OF))
    before, _ = _rows(mapped, GONE)
    assert before == {"suppressions": 0, "status_changes": 0, "segment_snapshots": 2, "consent_current": 1,
                      "consent_seen": 1, "contacts_seen": 1, "contact_scores": 0}

    result = _cli(mapped, "forget", "--yes", "--json", GONE)
    assert result.exit_code == 1
    report = json.loads(result.output)[0]
    by_hand = ("manual", "left", "segsync reads this table and never writes it ([store.tables]): "
                                 "remove the person there by hand")
    assert [(s["connection"], s["method"], s["status"], s["error"]) for s in report["systems"]] == [
        (f"consent_ledger (mapped to {tables['consent_ledger']})", *by_hand),
        (f"contacts (mapped to {tables['contacts']})", *by_hand),
        (f"events (mapped to {tables['events']})", *by_hand),
        (f"{name} engine", "engine", "done", None),
        ("upload", "delete", "done", None),
    ]
    assert report["left"] == [f"{t} (mapped to {tables[t]})" for t in ("consent_ledger", "contacts", "events")]
    assert _rows(mapped, GONE)[0] == dict.fromkeys(before, 0)
    # The user's own tables are never written.
    config = load_config(mapped.root / "segsync.toml")
    with open_engine(config, mapped.host()) as engine:
        assert [engine.rows(engine.transpile(f"SELECT count(*) FROM {t} WHERE contact_key = '{GONE}'"))[0][0]
                for t in ("contacts", "events", "consent_ledger")] == [1, 1, 1]


def test_an_unreachable_engine_keeps_the_erasure_pending_until_a_sync_reaches_it(tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres")
    project = Project(tmp_path)
    reachable = f'[store]\npath = "store.duckdb"\n{_engine_table("postgres", request)}'
    _synced(project, reachable + SOURCE + DESTINATION.format())
    before, _ = _rows(project, GONE)
    assert before["contacts"] == 1

    unreachable = reachable.replace(request.getfixturevalue("postgres_cluster").url,
                                    "postgresql://segsync@127.0.0.1:9/segsync") + "connect_timeout = 2\n"
    project.write_config(unreachable + SOURCE + DESTINATION.format())
    result = _cli(project, "forget", "--yes", "--json", GONE)
    assert result.exit_code == 1
    report = json.loads(result.output)[0]
    engine = next(s for s in report["systems"] if s["connection"] == "postgres engine")
    assert (engine["status"], engine["action"]) == ("pending", None)
    assert engine["error"].startswith("PostgreSQL at postgresql://segsync@127.0.0.1:9/segsync cannot be reached: ")
    assert report["done"] is False and "postgres engine" in report["left"]
    with Store(project.root / "store.duckdb") as store:
        assert store.scalar("SELECT address FROM erasures") == GONE  # kept for the retry

    project.write_config(reachable + SOURCE + DESTINATION.format())
    assert _rows(project, GONE)[0] == before  # still there until a command reaches the engine
    summary = Runner(load_config(project.root / "segsync.toml"), project.host()).run(RunOptions(as_of=AS_OF))
    assert [(e["connection"], e["status"]) for e in summary.erasures] == [
        ("postgres engine", "done"), ("shop", "left"), ("upload", "done")]
    assert _rows(project, GONE)[0] == dict.fromkeys(before, 0)
    with Store(project.root / "store.duckdb") as store:
        assert store.con.execute("SELECT address, completed_at IS NOT NULL FROM erasures").fetchall() == [(None, True)]


def test_the_next_forget_that_reaches_the_engine_retries_an_erasure_left_pending(tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres")
    project = Project(tmp_path)
    reachable = f'[store]\npath = "store.duckdb"\n{_engine_table("postgres", request)}'
    _synced(project, reachable + SOURCE + DESTINATION.format())
    project.write_config(reachable.replace(request.getfixturevalue("postgres_cluster").url,
                                           "postgresql://segsync@127.0.0.1:9/segsync")
                         + "connect_timeout = 2\n" + SOURCE + DESTINATION.format())
    assert _cli(project, "forget", "--yes", GONE).exit_code == 1

    project.write_config(reachable + SOURCE + DESTINATION.format())
    result = _cli(project, "forget", "--yes", "--json", KEPT)
    assert [(s["connection"], s["status"]) for s in json.loads(result.output)[0]["systems"]] == [
        ("postgres engine", "done"), ("shop", "left"), ("upload", "done")]
    gone, kept, _ = _rows(project, GONE, KEPT)
    assert (set(gone.values()), set(kept.values())) == ({0}, {0})
    with Store(project.root / "store.duckdb") as store:
        assert store.con.execute("SELECT erasure_id, connection, status FROM erasure_targets "
                                 "WHERE connection = 'postgres engine' ORDER BY erasure_id").fetchall() == [
            (1, "postgres engine", "done"), (2, "postgres engine", "done")]
        assert store.con.execute("SELECT address FROM erasures ORDER BY id").fetchall() == [(None,), (None,)]

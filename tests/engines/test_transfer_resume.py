"""Rows the store committed reach the engine even when the run that pulled them died before
sending them (docs/scale.md#a-sync-on-an-external-engine): the transfer compares a high-water
mark per table on the engine with the store, never only the current run's rows."""

from __future__ import annotations

import pytest

from segsync.config import load_config, open_engine
from segsync.statuses import RunStatus
from segsync.store import Store
from segsync.sync import runner as runner_module
from segsync.sync.runner import RunOptions, Runner
from segsync.testing import Project

from .test_engine_state import AS_OF, DESTINATION, PEOPLE, SOURCE, _files
from .test_sync_on_engines import _engine_table

NEW = ("new@example.com,New,US,gold\n", "new@example.com,opted_in,2024-02-01T00:00:00Z,form\n",
       '{"email": "new@example.com", "type": "email.opened", "timestamp": "2024-02-02T00:00:00Z", "id": "n1"}\n'
       '{"email": "p001@example.com", "type": "email.opened", "timestamp": "2024-02-02T00:00:00Z", "id": "n2"}\n')


def _sync(project: Project):
    return Runner(load_config(project.root / "segsync.toml"), project.host()).run(RunOptions(as_of=AS_OF))


def _counts(project: Project) -> dict[str, list[tuple[int, int]]]:
    """Rows per run of events and the ledger, and the contacts, on the engine and in the store."""
    sql = {"events": "SELECT run_id, count(*) FROM events GROUP BY run_id ORDER BY run_id",
           "consent_ledger": "SELECT run_id, count(*) FROM consent_ledger GROUP BY run_id ORDER BY run_id",
           "contacts": "SELECT count(*), count(DISTINCT contact_key) FROM contacts"}
    with open_engine(load_config(project.root / "segsync.toml"), project.host()) as engine:
        found = {f"engine {t}": [tuple(map(int, r)) for r in engine.rows(q)] for t, q in sql.items()}
    with Store(project.root / "store.duckdb") as store:
        found.update({f"store {t}": [tuple(map(int, r)) for r in store.con.execute(q).fetchall()]
                      for t, q in sql.items()})
    return found


def _project(tmp_path, request, monkeypatch) -> Project:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres")
    project = Project(tmp_path)
    project.write_config(f'[store]\npath = "store.duckdb"\n{_engine_table("postgres", request)}'
                         + SOURCE + DESTINATION.format())
    for file, text in _files().items():
        project.write(file, text)
    assert _sync(project).destinations[0].planned == {"add": PEOPLE - len(range(0, PEOPLE, 9))}
    for file, text in zip(("contacts.csv", "consent.csv", "events.jsonl"), NEW):
        project.append(file, text)
    return project


def test_a_run_killed_between_the_store_and_the_engine_is_sent_by_the_next(tmp_path, request, monkeypatch) -> None:
    project = _project(tmp_path, request, monkeypatch)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the pull committed, before the engine

    with monkeypatch.context() as patch:
        patch.setattr(runner_module, "transfer", killed)
        with pytest.raises(KeyboardInterrupt):
            _sync(project)
    lacking = _counts(project)
    assert lacking["store events"] == [(1, 20), (2, 2)] and lacking["engine events"] == [(1, 20)]
    assert lacking["store consent_ledger"] == [(1, PEOPLE), (2, 1)]
    assert lacking["engine consent_ledger"] == [(1, PEOPLE)]
    assert (lacking["store contacts"], lacking["engine contacts"]) == ([(PEOPLE + 1, PEOPLE + 1)], [(PEOPLE, PEOPLE)])

    summary = _sync(project)  # pulls nothing new; sends what run 2 left
    assert summary.status == RunStatus.SUCCEEDED, summary.errors
    assert summary.destinations[0].planned == {"add": 1, "update": 1}  # p001 opened: now an opener
    audience = project.audience()
    assert (audience["new@example.com"]["tags"], audience["p001@example.com"]["tags"]) == (["gold", "openers"], ["openers"])
    resumed = _counts(project)
    for table in ("events", "consent_ledger", "contacts"):
        assert resumed[f"engine {table}"] == resumed[f"store {table}"] == lacking[f"store {table}"]

    # Nothing is sent twice afterwards.
    assert _sync(project).destinations[0].planned == {}
    assert _counts(project) == resumed


def test_an_append_cut_short_is_sent_again_whole(tmp_path, request, monkeypatch) -> None:
    """The engine holds part of its latest run's rows (a Spark append dies between two batch
    writes): that run's rows are replaced, not duplicated."""
    project = _project(tmp_path, request, monkeypatch)
    _sync(project)
    with open_engine(load_config(project.root / "segsync.toml"), project.host()) as engine:
        engine.execute("DELETE FROM events WHERE run_id = 2 AND source_event_id = 'n2'")
    assert _counts(project)["engine events"] == [(1, 20), (2, 1)]
    _sync(project)
    counts = _counts(project)
    assert counts["engine events"] == counts["store events"] == [(1, 20), (2, 2)]

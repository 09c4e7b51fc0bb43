"""``sync --json`` and ``runs --json`` print the same run object (keys, values, status words)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from segsync.cli import cli
from segsync.cli.output import DESTINATION_KEYS, RUN_KEYS


def _cli(project, *args):
    host = project.host()
    return CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), *args], obj=host)


def _run_object(run: dict) -> dict:
    return {**{k: run[k] for k in RUN_KEYS},
            "destinations": [{k: d[k] for k in DESTINATION_KEYS} for d in run["destinations"]]}


def test_sync_json_holds_the_run_object_runs_json_shows(project) -> None:
    for _ in range(2):  # the second run writes nothing
        synced = _cli(project, "sync", "--json")
        assert synced.exit_code == 0, synced.output
    run = json.loads(synced.stdout)
    history = json.loads(_cli(project, "runs", "--json").stdout)
    assert [list(r) for r in history] == [list(RUN_KEYS)] * 2
    assert [list(d) for d in history[0]["destinations"]] == [list(DESTINATION_KEYS)]
    assert _run_object(run) == history[0]
    assert (run["id"], run["run_id"], run["status"]) == (2, 2, "succeeded")
    assert run["options"] == {"full_refresh": False, "dry_run": False}
    assert run["started_at"] <= run["finished_at"]
    # The run's report follows: per destination what was planned, and the sources.
    assert [(d["destination"], d["name"], d["status"], d["planned"], d["write_calls"])
            for d in run["destinations"]] == [("upload", "upload", "ok", {}, 0)]
    assert [s["name"] for s in run["sources"]] == ["shop"]


def test_a_dry_run_has_the_run_object_without_id_times_or_counts(project) -> None:
    result = _cli(project, "sync", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert {k: run[k] for k in RUN_KEYS if k != "destinations"} == {
        "id": None, "started_at": None, "finished_at": None, "status": "dry-run",
        "as_of": run["as_of"], "options": {"full_refresh": False, "dry_run": True}, "counts": None,
    }
    assert [{k: d[k] for k in DESTINATION_KEYS} for d in run["destinations"]] == [{
        "destination": "upload", "status": "ok", "write_calls": 0, "records_written": 0,
        "records_rejected": 0, "records_retrying": 0, "error": None}]
    assert run["destinations"][0]["planned"] == {"add": 2}


def test_sync_json_opens_the_store_once(project, monkeypatch) -> None:
    """It used to open the store a second time after the run to read the run back: slow on a
    big store, and refused if another sync took the store meanwhile."""
    from segsync.store import store as store_module

    opened = []
    real_init = store_module.Store.__init__

    def counting_init(self, path, *args, **kwargs):
        opened.append(kwargs.get("read_only", False))
        real_init(self, path, *args, **kwargs)

    monkeypatch.setattr(store_module.Store, "__init__", counting_init)
    synced = _cli(project, "sync", "--json")
    assert synced.exit_code == 0, synced.output
    assert opened == [False]
    monkeypatch.undo()
    run = json.loads(synced.stdout)
    assert _run_object(run) == json.loads(_cli(project, "runs", "--json").stdout)[0]
    assert (run["id"], run["status"], run["counts"]["push"]["upload"]["written"]) == (1, "succeeded", 2)

"""Opening, migrating and locking the store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from segsync.store import Store, StoreLocked
from segsync.store.migrations import MIGRATIONS, Migration

TABLES = {
    "contacts", "identities", "events", "consent_ledger", "cursors", "runs", "run_destinations",
    "record_errors", "acknowledged", "acknowledged_memberships", "rejected", "segment_snapshots",
    "schema_migrations",
    # migration 2 (consent)
    "consent_salt", "suppressions", "status_changes", "erasures", "erasure_targets",
    # migration 3 (remembered rejections)
    "rejection_fingerprints",
    # migration 6 (incremental segment evaluation)
    "segment_evaluation",
    # migration 7 (per-contact scores, segsync.scores)
    "score_runs", "contact_scores",
    # migration 8 (the embedded mirror of an external engine's memberships, docs/scale.md)
    "engine_memberships",
    # migration 9 (segment-entry triggers)
    "trigger_baseline", "trigger_segments", "trigger_outbox",
    # migration 10 (the diff's planning state, segsync.sync.planning)
    "planned_states", "planning_marks",
    # migration 11 (the embedded mirror of an external engine's effective consent)
    "engine_consent", "engine_seen",
}


def _tables(store: Store) -> set[str]:
    return {r[0] for r in store.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def test_new_store_has_every_table_and_records_its_version(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        assert _tables(store) == TABLES
        assert store.schema_version() == MIGRATIONS[-1].version
        applied = store.con.execute("SELECT version, description FROM schema_migrations").fetchall()
        assert [v for v, _ in applied] == [m.version for m in MIGRATIONS]


def test_reopening_applies_nothing_twice_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        store.set_cursor(connection="crm", stream="contacts", cursor={"since": "2024-01-01"}, run_id=None)
    with Store(path) as store:
        assert store.migrate() == []
        assert store.get_cursor("crm", "contacts") == {"since": "2024-01-01"}


def test_a_new_migration_is_applied_on_open_and_only_once(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    extra = Migration(MIGRATIONS[-1].version + 1, "add a column", ("ALTER TABLE contacts ADD COLUMN nickname VARCHAR",))
    with Store(path, migrations=(*MIGRATIONS, extra)) as store:
        assert store.schema_version() == extra.version
        assert "nickname" in [r[0] for r in store.con.execute("DESCRIBE contacts").fetchall()]
    with Store(path, migrations=(*MIGRATIONS, extra)) as store:
        assert store.migrate((*MIGRATIONS, extra)) == []


def test_a_failing_migration_leaves_the_previous_version_intact(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    broken = Migration(MIGRATIONS[-1].version + 1, "broken", (
        "ALTER TABLE contacts ADD COLUMN half_done VARCHAR", "THIS IS NOT SQL",
    ))
    with pytest.raises(Exception):
        Store(path, migrations=(*MIGRATIONS, broken))
    with Store(path) as store:
        assert store.schema_version() == MIGRATIONS[-1].version
        assert "half_done" not in [r[0] for r in store.con.execute("DESCRIBE contacts").fetchall()]


def test_a_second_writer_is_refused_at_once_with_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from segsync.store import Store
            s = Store({str(path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked) as info:
            Store(path)
        assert f"pid {holder.pid}" in str(info.value)
        assert "in use by another segsync process" in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # Once the holder is gone the lock is free again (no stale lock file problem).
    Store(path).close()


def test_read_only_open_of_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="segsync sync"):
        Store(tmp_path / "nothing.duckdb", read_only=True)


def test_a_run_left_running_by_a_crash_is_marked_crashed(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        crashed = store.start_run(datetime.now(timezone.utc), {})
    with Store(path) as store:
        store.start_run(datetime.now(timezone.utc), {})
        assert store.scalar("SELECT status FROM runs WHERE id = ?", [crashed]) == "crashed"


def test_rewrite_keeps_every_row_sequence_and_constraint_and_drops_deleted_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        run_id = store.start_run(datetime.now(timezone.utc), {})
        store.record_error(run_id=run_id, connection="crm", phase="pull", record="row 1", field=None, reason="bad")
        store.con.execute("INSERT INTO contacts (contact_key, first_seen_at, updated_at, updated_by) "
                          "SELECT 'p' || i || '@example.com', now(), now(), 'crm' FROM range(500) r(i)")
        store.con.execute("INSERT INTO contacts (contact_key, first_seen_at, updated_at, updated_by) "
                          "VALUES ('gone.person@example.com', now(), now(), 'crm')")
        store.con.execute("CHECKPOINT")
        store.con.execute("DELETE FROM contacts WHERE contact_key = 'gone.person@example.com'")
        store.con.execute("CHECKPOINT")
        assert b"gone.person@example.com" in path.read_bytes()  # DuckDB keeps freed blocks
        store.require_rewrite()
        store.rewrite()
        assert not store.rewrite_pending()
        assert b"gone.person@example.com" not in path.read_bytes()
        assert _tables(store) == TABLES
        assert store.scalar("SELECT count(*) FROM contacts") == 500
        assert store.scalar("SELECT count(*) FROM record_errors") == 1
        # Sequences continue and constraints still hold in the new file.
        assert store.start_run(datetime.now(timezone.utc), {}) == run_id + 1
        with pytest.raises(duckdb.ConstraintException):
            store.con.execute("INSERT INTO contacts (contact_key, first_seen_at, updated_at, updated_by) "
                              "VALUES ('p1@example.com', now(), now(), 'crm')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.duckdb", "s.duckdb.lock"]


def test_store_methods_with_more_than_two_parameters_take_keywords_only() -> None:
    """Calls such as ``record_error(run_id, name, "push", key, None, reason)`` read wrong silently
    when two strings swap; every store API with more than two parameters names them."""
    import inspect

    from segsync.store.ingest import Ingestor
    from segsync.store.status import RunStatusFile

    positional = {
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
    }
    owners = [Store, Ingestor, RunStatusFile]
    # Called positionally by segsync.progress.Reporter, like every progress listener.
    listeners = {"RunStatusFile.progress"}
    offenders = []
    for owner in owners:
        for name, function in inspect.getmembers(owner, inspect.isfunction):
            if (name.startswith("_") and name != "__init__") or f"{owner.__name__}.{name}" in listeners:
                continue
            params = list(inspect.signature(function).parameters.values())[1:]  # self
            if len(params) <= 2:
                continue
            # A leading positional is fine (``Ingestor(con, *, ...)``); the rest are keywords.
            loose = [p.name for p in params[1:] if p.kind in positional]
            if loose:
                offenders.append(f"{owner.__name__}.{name}: {', '.join(loose)}")
    assert offenders == []


def test_dicts_returns_every_row_keyed_by_column(tmp_path: Path) -> None:
    from segsync.store import dicts

    with Store(tmp_path / "s.duckdb") as store:
        assert dicts(store.con, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, NULL ORDER BY a") == [
            {"a": 1, "b": "x"}, {"a": 2, "b": None},
        ]
        assert dicts(store.con, "SELECT * FROM cursors WHERE connection = ?", ["none"]) == []

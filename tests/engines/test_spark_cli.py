"""`segsync check` on the Spark engine: Spark's reason when a mapped table cannot be read, notes
for segsync's own tables before the first sync, and a clear line when Spark cannot start."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from segsync.cli import cli
from segsync.testing import Project


def _check(tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "segsync.toml"), "check"])
    return result.exit_code, result.output


def test_check_names_an_unreadable_mapped_table_and_notes_segsyncs_own(spark_session, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "spark")
    lake = tmp_path / "lake" / "events"
    Project(tmp_path).write_config(f'[store]\nengine = "spark"\n[store.tables]\nevents = "parquet:{lake}"\n')
    code, output = _check(tmp_path)
    assert code == 1
    assert "✗ engine spark\n" in output
    assert (f"    table events (mapped to parquet:{lake}) cannot be read: [PATH_NOT_FOUND] Path does "
            f"not exist: file:{lake}.\n") in output
    assert "    note: table contacts is missing (segsync creates it on the first sync)\n" in output
    assert not (tmp_path / "spark-tables").exists()  # checking created nothing


def test_check_says_why_spark_cannot_start(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "spark")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    Project(tmp_path).write_config('[store]\nengine = "spark"\nmaster = "local[1]"\n')
    code, output = _check(tmp_path)
    assert code == 1
    assert "✗ engine spark\n" in output
    assert (f"    spark: no Java runtime found (looked in JAVA_HOME={tmp_path / 'no-jdk'}); Spark needs "
            "Java 17 or newer, e.g. apt-get install openjdk-17-jre-headless\n") in output
    assert "Traceback" not in output


def test_the_demo_runs_end_to_end_on_spark(spark_session, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,spark")
    folder = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--dir", str(folder), "--contacts", "120", "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert ("  segments and consent evaluated on the spark engine (Spark in local mode, its tables "
            "in the demo folder)\n") in result.output
    assert "Running the same sync again: nothing changed, so nothing is written." in result.output
    assert 'engine = "spark"\n' in (folder / "segsync.toml").read_text(encoding="utf-8")
    # Both runs' memberships were snapshotted in Spark, under the demo folder; the latest
    # evaluation was each run's own session's view, not a folder.
    assert sorted(p.name for p in (folder / "spark-tables").iterdir()) == [
        "consent_current", "consent_ledger", "consent_seen", "contact_scores", "contacts",
        "contacts_seen", "events", "score_runs", "segment_snapshots", "status_changes", "suppressions"]


def test_check_refuses_a_delta_mapping_with_the_reason(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "spark")
    Project(tmp_path).write_config('[store]\nengine = "spark"\n[store.tables]\nevents = "delta:/lake/events"\n')
    code, output = _check(tmp_path)
    assert code == 1
    assert ("✗ engine spark\n    " f"{tmp_path / 'segsync.toml'}: store (engine spark): tables: Value error, "
            "events: 'delta:/lake/events': Delta tables are not supported (segsync's Spark engine is "
            "untested with Delta Lake); map a Parquet or ORC copy, or a catalog table or view your "
            "cluster reads (docs/scale.md#spark)\n") in output
    assert "Traceback" not in output

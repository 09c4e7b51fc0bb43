"""A third-party connector whose plugin fails to import: its connection fails, named; the
others sync. The plugin is a real distribution (a dist-info on sys.path) with a real entry
point, as pip would install it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from segsync.store import Store

from .conftest import BASIC_CONFIG

REASON = "ModuleNotFoundError: No module named 'acme_sdk'"


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    dist = site / "segsync_acme-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: segsync-acme\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[segsync]\nacme = segsync_acme\n")
    (site / "segsync_acme.py").write_text("import acme_sdk  # the vendor SDK, not installed\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,acme")
    sys.modules.pop("segsync_acme", None)
    return site


def test_a_connection_whose_plugin_fails_to_load_fails_alone(project, broken_plugin, monkeypatch) -> None:
    project.write_config(BASIC_CONFIG + '[connections.crm]\ntype = "acme"\nlist = "x"\n')
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(cli, ["sync", "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "partial"
    assert [(s["name"], s["status"]) for s in summary["sources"]] == [("shop", "ok")]
    destinations = {d["name"]: d for d in summary["destinations"]}
    assert destinations["upload"]["status"] == "ok" and destinations["upload"]["records_written"] == 2
    assert destinations["crm"]["status"] == "failed"
    assert destinations["crm"]["error"] == (
        f"connection 'crm' (type acme): plugin 'acme' failed to load: {REASON}")
    assert set(project.audience()) == {"ann@example.com", "bo@example.com"}
    with Store(project.root / "store.duckdb", read_only=True) as store:
        assert store.con.execute("SELECT status FROM runs").fetchall() == [("partial",)]
        assert store.con.execute(
            "SELECT destination, status, error FROM run_destinations ORDER BY destination"
        ).fetchall() == [("crm", "failed", destinations["crm"]["error"]), ("upload", "ok", None)]


def test_plugins_and_check_show_the_failure(project, broken_plugin, monkeypatch) -> None:
    project.write_config(BASIC_CONFIG + '[connections.crm]\ntype = "acme"\n')
    monkeypatch.chdir(project.root)
    listed = CliRunner().invoke(cli, ["plugins", "--json"])
    assert listed.exit_code == 0
    # Shown as broken, with its error and what is known of its distribution: not as missing.
    assert [p for p in json.loads(listed.stdout) if p["name"] == "acme"] == [{
        "name": "acme", "status": "broken", "distribution": "segsync-acme", "version": "0.3",
        "installed_from": {"kind": "index", "url": None}, "hooks": [], "connector_types": [],
        "capabilities": {}, "error": REASON,
    }]
    checked = CliRunner().invoke(cli, ["check"])
    assert checked.exit_code == 1
    assert f"✗ crm (acme)\n    plugin 'acme' failed to load: {REASON}\n" in checked.output
    assert "✓ shop (files)" in checked.output and "✓ upload (files)" in checked.output


def test_an_unused_broken_plugin_is_only_a_warning(project, broken_plugin, monkeypatch) -> None:
    monkeypatch.chdir(project.root)
    checked = CliRunner().invoke(cli, ["check"])
    assert checked.exit_code == 0, checked.output
    assert (f'warning: Error loading plugin "acme" (distribution segsync-acme): {REASON} '
            "(no connection uses it)") in checked.output
    synced = CliRunner().invoke(cli, ["sync", "--json"])
    assert synced.exit_code == 0 and json.loads(synced.stdout)["status"] == "succeeded"


def test_a_type_no_plugin_provides_still_stops_the_run(project, broken_plugin, monkeypatch) -> None:
    project.write_config(BASIC_CONFIG + '[connections.crm]\ntype = "acmee"\n')
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(cli, ["sync"])
    assert result.exit_code == 2
    assert "error: connection 'crm': no connector of type 'acmee' (installed: files)" in result.output

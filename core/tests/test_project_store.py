"""segsync.project.read_store: how a plugin's command reads the project's store."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from segsync.cli.main import cli
from segsync.project import read_store
from segsync.testing import SAMPLE_CONFIG, Project


@pytest.fixture
def project(tmp_path) -> Project:
    project = Project.sample(tmp_path / "shop")
    project.run()
    return project


def test_a_plugin_command_reads_the_store_of_the_commands_config(project, tmp_path, monkeypatch) -> None:
    @click.command("count-contacts")
    def count_contacts() -> None:
        with read_store() as con:
            click.echo(con.execute("SELECT count(*) FROM contacts").fetchall()[0][0])
            con.execute("SELECT 1")  # read-only: a write would raise
            with pytest.raises(Exception, match="read-only"):
                con.execute("DELETE FROM contacts")

    monkeypatch.setitem(cli.commands, "count-contacts", count_contacts)
    monkeypatch.chdir(tmp_path)  # no segsync.toml here: only --config finds the project
    done = CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), "count-contacts"])
    assert (done.exit_code, done.output) == (0, "3\n")
    missing = CliRunner().invoke(cli, ["count-contacts"])
    assert missing.exit_code == 2 and "segsync.toml" in missing.output


def test_a_command_may_name_another_project_and_outside_a_command_it_refuses(project, tmp_path, monkeypatch) -> None:
    other = Project(tmp_path / "other")
    other.write_config(SAMPLE_CONFIG)
    other.write("contacts.csv", "email\nzed@example.com\n")
    other.write("consent.csv", "email,status,timestamp,method\n")
    other.write("events.jsonl", "")
    other.run()

    @click.command("count-other")
    def count_other() -> None:
        with read_store(other.root / "segsync.toml") as con:
            click.echo(con.execute("SELECT contact_key FROM contacts").fetchall())

    monkeypatch.setitem(cli.commands, "count-other", count_other)
    done = CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), "count-other"])
    assert (done.exit_code, done.output) == (0, "[('zed@example.com',)]\n")
    with pytest.raises(RuntimeError, match=r"^read_store\(\) reads the store of the segsync command that is running"):
        with read_store(project.root):
            pass

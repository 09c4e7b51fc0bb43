"""`segsync demo --serve` calls the plugin that shows the live loop, or says which to install."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from segsync import hookimpl
from segsync.cli.main import cli
from segsync.plugins import PluginHost


class LiveShow:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def segsync_demo_serve(self, project, emulated, forever):  # noqa: ANN001, ANN201
        self.calls.append((project.directory, sorted(project.connections().items()), emulated, forever))
        return True


def test_demo_serve_hands_the_demo_project_and_its_emulated_connections_to_the_plugin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,mailchimp")
    show = LiveShow()
    host = PluginHost(extra_plugins=[show])
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--contacts", "30", "--with",
                                      "mailchimp", "--serve-forever"], obj=host)
    assert result.exit_code == 0, result.output
    assert show.calls == [(tmp_path / "d", [("mailchimp", "mailchimp"), ("newsletter", "files"), ("shop", "files")],
                           ["mailchimp"], True)]


def test_demo_serve_without_the_plugin_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--serve"], obj=PluginHost())
    assert result.exit_code == 2
    assert "--serve needs the segsync-serve plugin: segsync install -e plugins/serve" in result.output
    assert not (tmp_path / "d").exists()

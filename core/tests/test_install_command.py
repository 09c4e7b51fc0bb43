"""``segsync install`` / ``uninstall``: the pip command they run and how they report.

pip is replaced by a recorder here; tests/test_new_and_install.py runs the real one.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from segsync.cli import install as install_module

PIP = [sys.executable, "-m", "pip"]


def row(name: str, version: str = "0.1.0", **changes: Any) -> dict[str, Any]:
    return {"name": name, "status": "loaded", "distribution": f"segsync-{name}", "version": version,
            "installed_from": {"kind": "index", "url": None}, "hooks": ["segsync_register_connectors"],
            "connector_types": [name], "capabilities": {name: ["write_contacts"]}, **changes}


@pytest.fixture
def pip(monkeypatch: pytest.MonkeyPatch):
    """Records pip's command lines; ``pip.exit_code`` is what pip returns, ``pip.after`` what
    the fresh `segsync plugins --json` lists afterwards."""

    class Pip:
        commands: list[list[str]] = []
        exit_code = 0
        after: list[dict[str, Any]] = []
        listed = 0

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        Pip.commands.append(command)
        return subprocess.CompletedProcess(command, Pip.exit_code)

    def plugins_after() -> list[dict[str, Any]]:
        Pip.listed += 1
        return Pip.after

    monkeypatch.setattr(install_module.subprocess, "run", run)
    monkeypatch.setattr(install_module, "_plugins_in_a_new_process", plugins_after)
    monkeypatch.setattr(install_module, "plugin_rows", lambda host: [row("files")])
    return Pip


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_install_runs_pip_in_segsyncs_own_environment(pip) -> None:
    pip.after = [row("files"), row("hubspot")]
    result = invoke("install", "segsync-hubspot", "./wheels/segsync_x-1.0-py3-none-any.whl",
                    "-e", "../segsync-acme", "-U", "--no-index", "--no-build-isolation")
    assert result.exit_code == 0, result.output
    assert pip.commands == [[*PIP, "install", "--upgrade", "--no-index", "--no-build-isolation",
                             "-e", "../segsync-acme", "segsync-hubspot",
                             "./wheels/segsync_x-1.0-py3-none-any.whl"]]
    assert result.stdout == "+ plugin hubspot (segsync-hubspot 0.1.0): connector type hubspot (write_contacts)\n"


def test_an_upgrade_and_a_reinstall_are_told_apart(pip) -> None:
    pip.after = [row("files", "0.2.0")]
    assert invoke("install", "-U", "segsync-files").stdout == (
        "~ plugin files (segsync-files 0.1.0 -> segsync-files 0.2.0): connector type files (write_contacts)\n")
    pip.after = [row("files")]
    assert invoke("install", "segsync-files").stdout == "No segsync plugin was added or changed.\n"


def test_install_needs_something_to_install(pip) -> None:
    result = invoke("install")
    assert result.exit_code == 2
    assert "Error: name a distribution, a folder or a wheel to install (or -e PATH)" in result.output
    assert pip.commands == []


def test_a_failing_pip_fails_the_command_and_lists_nothing(pip) -> None:
    pip.exit_code = 1
    result = invoke("install", "segsync-nope")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: pip install failed (exit code 1); see its output above"
    assert "Traceback" not in result.output
    assert pip.listed == 0


def test_uninstall_runs_pip_and_names_what_left(pip, monkeypatch) -> None:
    monkeypatch.setattr(install_module, "_installed", lambda name: True)
    pip.after = []
    result = invoke("uninstall", "-y", "segsync-files")
    assert result.exit_code == 0, result.output
    assert pip.commands == [[*PIP, "uninstall", "--yes", "segsync-files"]]
    assert result.stdout == "- plugin files (segsync-files 0.1.0): connector type files (write_contacts)\n"


def test_uninstall_refuses_what_is_not_installed_and_segsync_itself(pip) -> None:
    result = invoke("uninstall", "-y", "segsync-not-here")
    assert result.exit_code == 1
    assert result.stderr == "error: not installed: segsync-not-here (segsync plugins lists what is)\n"
    result = invoke("uninstall", "Segsync")
    assert result.exit_code == 2
    assert "Error: segsync cannot uninstall itself; use pip uninstall segsync" in result.output
    assert pip.commands == []


def test_a_plugin_that_broke_fails_the_install(pip) -> None:
    pip.after = [row("files", status="broken", hooks=[], connector_types=[], capabilities={},
                     error="ImportError: no module named acme_sdk")]
    result = invoke("install", "-U", "segsync-files")
    assert result.exit_code == 1
    assert result.stdout == (
        "! plugin files (segsync-files 0.1.0) is installed but broken: ImportError: no module named acme_sdk\n")


def test_credentials_in_a_package_url_are_not_printed(pip) -> None:
    url = "git+https://ann:ghp_s3cretToken42@git.example.com/acme/segsync-acme.git"
    pip.after = [row("files")]
    result = invoke("install", url)
    assert pip.commands == [[*PIP, "install", url]]  # pip gets it as given ...
    assert "ghp_s3cretToken42" not in result.output  # ... but it is never shown
    assert result.stderr == f"Running: {' '.join(PIP)} install git+https://***@git.example.com/acme/segsync-acme.git\n"

"""Plugin discovery, isolation of broken plugins, registration rules and off switches."""

from __future__ import annotations

import json
import sys
import textwrap
from importlib import metadata
from importlib.metadata import EntryPoint
from pathlib import Path

import pluggy
import pytest

from segsync import Connector, hookimpl
from segsync.plugins import DuplicateRegistration, PluginError, PluginHost

GOOD = """
from segsync import Connector, hookimpl

class EchoConnector(Connector):
    type_name = "echo"

@hookimpl
def segsync_register_connectors(register):
    register(EchoConnector)

@hookimpl
def segsync_register_event_types(register):
    register("webinar.attended", "Attended a webinar")
"""
BROKEN = "raise ImportError('the vendor SDK is not installed')\n"
CLASHING = """
from segsync import Connector, hookimpl

class OtherEcho(Connector):
    type_name = "echo"

@hookimpl
def segsync_register_connectors(register):
    register(OtherEcho)
"""
MISSPELLED = """
from segsync import hookimpl

@hookimpl
def segsync_register_conectors(register):
    pass
"""


@pytest.fixture
def entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install fake plugin modules and expose them as ``segsync`` entry points."""
    monkeypatch.syspath_prepend(str(tmp_path))
    installed: list[EntryPoint] = []

    def install(name: str, source: str) -> None:
        module = f"fake_plugin_{name}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        sys.modules.pop(module, None)
        installed.append(EntryPoint(name=name, value=module, group="segsync"))

    monkeypatch.setattr(
        "segsync.plugins.metadata.entry_points", lambda group: [e for e in installed if e.group == group]
    )
    monkeypatch.delenv("SEGSYNC_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("SEGSYNC_PLUGINS", raising=False)
    return install


def test_a_plugin_that_fails_to_import_is_named_and_others_still_load(entry_points, caplog) -> None:
    entry_points("broken", BROKEN)
    entry_points("good", GOOD)
    host = PluginHost()
    assert [f.name for f in host.failures] == ["broken"]
    assert host.failures[0].message() == (
        'Error loading plugin "broken": ImportError: the vendor SDK is not installed'
    )
    assert 'Error loading plugin "broken"' in caplog.text
    assert set(host.connector_types()) == {"echo"}
    assert "webinar.attended" in host.event_types()


def test_duplicate_connector_names_are_rejected_naming_both_plugins(entry_points) -> None:
    entry_points("good", GOOD)
    entry_points("clash", CLASHING)
    host = PluginHost()
    with pytest.raises(DuplicateRegistration) as info:
        host.connector_types()
    message = str(info.value)
    assert "connector type 'echo'" in message
    assert "'good'" in message and "'clash'" in message


def test_duplicate_event_types_are_rejected(entry_points) -> None:
    entry_points("good", GOOD)
    entry_points("again", GOOD.replace("EchoConnector", "Echo2").replace('"echo"', '"echo2"'))
    with pytest.raises(DuplicateRegistration, match="event type 'webinar.attended'"):
        PluginHost().event_types()


def test_misspelled_hook_names_are_caught_by_check_pending(entry_points) -> None:
    entry_points("typo", MISSPELLED)
    with pytest.raises(pluggy.PluginValidationError, match="segsync_register_conectors"):
        PluginHost()


@pytest.mark.parametrize("value", ["1", "all"])
def test_disable_all_plugins(entry_points, monkeypatch, value) -> None:
    entry_points("good", GOOD)
    monkeypatch.setenv("SEGSYNC_DISABLE_PLUGINS", value)
    host = PluginHost()
    assert host.connector_types() == {}
    # Built-ins are not entry-point plugins: they always load.
    assert "email.opened" in host.event_types()


def test_disable_named_plugins_and_allow_list(entry_points, monkeypatch) -> None:
    entry_points("good", GOOD)
    entry_points("broken", BROKEN)
    monkeypatch.setenv("SEGSYNC_DISABLE_PLUGINS", "broken")
    host = PluginHost()
    assert host.failures == [] and set(host.connector_types()) == {"echo"}
    monkeypatch.delenv("SEGSYNC_DISABLE_PLUGINS")
    monkeypatch.setenv("SEGSYNC_PLUGINS", "good")
    host = PluginHost()
    assert host.failures == [] and set(host.connector_types()) == {"echo"}


def test_a_hook_that_raises_is_reported_with_the_plugin_name(entry_points) -> None:
    entry_points("angry", """
from segsync import hookimpl

@hookimpl
def segsync_register_connectors(register):
    raise RuntimeError("boom")
""")
    with pytest.raises(PluginError, match="plugin 'angry' failed in segsync_register_connectors: RuntimeError: boom"):
        PluginHost().connector_types()


def test_registering_a_class_without_type_name_is_an_error() -> None:
    class Nameless(Connector):
        pass

    class Plugin:
        @hookimpl
        def segsync_register_connectors(self, register):
            register(Nameless)

    host = PluginHost(load_entry_points=False, extra_plugins=[Plugin()])
    with pytest.raises(PluginError, match="has no type_name"):
        host.connector_types()


def test_segment_functions_are_collected_through_the_hook() -> None:
    class Fn:
        name = "webinars"

    class Plugin:
        @hookimpl
        def segsync_register_segment_functions(self, register):
            register(Fn())

    host = PluginHost(load_entry_points=False, extra_plugins=[Plugin()])
    assert isinstance(host.segment_functions()["webinars"], Fn)


def test_plugins_lists_builtins_with_their_hooks(entry_points) -> None:
    entry_points("good", GOOD)
    infos = {p.name: p for p in PluginHost().plugins()}
    assert infos["good"].connector_types == ["echo"]
    assert infos["good"].hooks == ["segsync_register_connectors", "segsync_register_event_types"]
    assert infos["segsync.default_plugins.push"].distribution == "segsync"
    assert infos["segsync.default_plugins.push"].hooks == ["segsync_push"]


def test_plugins_json_command_shape(entry_points) -> None:
    from click.testing import CliRunner

    from segsync.cli import cli

    entry_points("good", GOOD)
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    good = next(p for p in data if p["name"] == "good")
    assert set(good) == {"name", "status", "distribution", "version", "installed_from", "hooks",
                         "connector_types", "capabilities"}
    assert good["connector_types"] == ["echo"]
    # An entry point without a distribution (as here) has no install source to show.
    assert (good["status"], good["installed_from"], good["capabilities"]) == ("loaded", None, {"echo": []})
    assert good["version"] == "unknown"
    push = next(p for p in data if p["name"] == "segsync.default_plugins.push")
    assert (push["distribution"], push["version"]) == ("segsync", metadata.version("segsync"))


def test_versions_are_read_from_metadata_only_when_plugins_are_listed(entry_points, monkeypatch) -> None:
    # Every command loads the plugins; only `segsync plugins` shows versions, so loading them
    # must not parse each distribution's metadata (it costs start-up time).
    import segsync.plugins as plugins_module

    entry_points("good", GOOD)
    asked: list[str] = []
    real_version = metadata.version
    plugins_module._version.cache_clear()
    monkeypatch.setattr(plugins_module.metadata, "version", lambda dist: asked.append(dist) or real_version(dist))
    host = PluginHost()
    assert asked == []
    infos = {p.name: p for p in host.plugins()}
    assert asked == ["segsync"]  # once for the built-in plugins, however many there are
    assert infos["segsync.cli.runs"].version == real_version("segsync")


def test_register_commands_hook_adds_a_cli_command() -> None:
    import click
    from click.testing import CliRunner

    class Plugin:
        @hookimpl
        def segsync_register_commands(self, cli):
            @cli.command()
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

    @click.group()
    def root():
        pass

    PluginHost(load_entry_points=False, extra_plugins=[Plugin()]).add_commands(root)
    assert CliRunner().invoke(root, ["hello"]).output == "hello from a plugin\n"


def test_the_cores_own_hook_implementations_live_in_default_plugins() -> None:
    """Built-in behaviour is registered like a third party's, from segsync.default_plugins; the
    CLI's command registrations are the CLI's own (issue 10 moves them into segsync/cli/)."""
    import ast
    from pathlib import Path

    from segsync.plugins import DEFAULT_PLUGINS

    core = Path(__file__).resolve().parents[1] / "segsync"
    command_modules = {"segments/commands.py", "consent/commands.py"}
    implementing = set()
    for path in core.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                "hookimpl" in ast.unparse(d) for d in node.decorator_list
            ):
                implementing.add(path.relative_to(core).as_posix())
    # The test kit's in-memory destination is a plugin of tests, registered like a third party's.
    test_kit = {"testing/memory.py"}
    assert implementing & {p for p in implementing if p.startswith("testing/")} == test_kit
    outside = sorted(
        p for p in implementing
        if not p.startswith(("default_plugins/", "cli/")) and p not in command_modules | test_kit
    )
    assert outside == []
    assert sorted(m for m in DEFAULT_PLUGINS if not m.startswith("segsync.default_plugins.")
                  and not m.endswith(".commands") and not m.startswith("segsync.cli")) == []
    assert {"default_plugins/segment_functions.py", "default_plugins/segment_packs.py",
            "default_plugins/consent_policies.py", "default_plugins/event_types.py"} <= implementing

"""``segsync new connector`` / ``segsync new plugin``: names, files, capabilities, no overwriting.

Installing a generated project and running its tests is tests/test_new_and_install.py's job.
"""

from __future__ import annotations

import ast
import re
from itertools import combinations
from pathlib import Path

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from segsync.generator import DEFAULT_CAPABILITIES, READS, WRITES

CONNECTOR_FILES = [
    "README.md",
    "pyproject.toml",
    "segsync_acme/__init__.py",
    "segsync_acme/connector.py",
    "segsync_acme/emulator.py",
    "segsync_acme/settings.py",
    "segsync_acme/stubs.py",
    "tests/conftest.py",
    "tests/test_conformance.py",
    "tests/test_connector.py",
]
PLUGIN_FILES = ["README.md", "pyproject.toml", "segsync_webinars/__init__.py", "tests/test_plugin.py"]


def new(*args: str):
    return CliRunner().invoke(cli, ["new", *args])


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def declared_capabilities(connector_py: Path) -> list[str]:
    source = connector_py.read_text(encoding="utf-8")
    block = re.search(r"capabilities = frozenset\(\{(.*?)\}\)", source, re.S)
    assert block, "no capabilities declaration"
    return re.findall(r"Capability\.([A-Z_]+)", block.group(1))


def test_a_connector_project_has_every_part(tmp_path: Path) -> None:
    target = tmp_path / "segsync-acme"
    result = new("connector", "acme", "--dir", str(target))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f"Created {target}/ (10 files): connector type 'acme', distribution segsync-acme.")
    assert files_under(target) == CONNECTOR_FILES
    pyproject = (target / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "segsync-acme"' in pyproject
    assert '[project.entry-points.segsync]\nacme = "segsync_acme"' in pyproject
    assert declared_capabilities(target / "segsync_acme/connector.py") == [c.upper() for c in DEFAULT_CAPABILITIES]
    settings = (target / "segsync_acme/settings.py").read_text(encoding="utf-8")
    assert "api_key: SecretStr" in settings
    # The test key looks like a real one: long, and fixed for a name (reproducible projects).
    key = re.search(r'API_KEY = "([^"]+)"', (target / "tests/conftest.py").read_text(encoding="utf-8")).group(1)
    assert re.fullmatch(r"acme-test-[0-9a-f]{32}", key)
    readme = (target / "README.md").read_text(encoding="utf-8")
    assert "SEGSYNC_ACME_API_KEY" in readme and "segsync install -e ." in readme


def test_the_default_folder_is_named_after_the_distribution(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = new("connector", "constant_contact")
    assert result.exit_code == 0, result.output
    target = tmp_path / "segsync-constant-contact"
    connector = (target / "segsync_constant_contact/connector.py").read_text(encoding="utf-8")
    assert "class ConstantContactConnector(Connector):" in connector
    assert 'type_name = "constant_contact"' in connector
    assert "Constant Contact" in (target / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name, reason", [
    ("Acme", "use lower-case letters, digits and underscores, starting with a letter"),
    ("1acme", "use lower-case letters, digits and underscores, starting with a letter"),
    ("ac-me", "use lower-case letters, digits and underscores, starting with a letter"),
    ("_acme", "use lower-case letters, digits and underscores, starting with a letter"),
    ("acme_", "no trailing or double underscores"),
    ("ac__me", "no trailing or double underscores"),
    ("segsync_acme", "leave out the segsync prefix"),
    ("class", "a Python keyword cannot name a package's parts"),
    ("a" * 41, "at most 40 characters, not 41"),
])
def test_a_bad_name_is_refused_with_the_reason(tmp_path: Path, name: str, reason: str) -> None:
    for kind in ("connector", "plugin"):
        result = new(kind, name, "--dir", str(tmp_path / kind))
        assert result.exit_code == 2
        assert result.output.startswith(f"error: name {name!r}: {reason}"), result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / kind).exists()


def test_a_type_an_installed_plugin_provides_is_refused(tmp_path: Path) -> None:
    result = new("connector", "files", "--dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.output == (
        "error: name 'files': plugin 'files' already provides connector type 'files'; pick "
        "another name (two plugins cannot register one type)\n")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kind, name", [("connector", "acme"), ("plugin", "webinars")])
def test_nothing_is_overwritten(tmp_path: Path, kind: str, name: str) -> None:
    target = tmp_path / "project"
    target.mkdir()
    (target / "README.md").write_text("mine\n", encoding="utf-8")
    result = new(kind, name, "--dir", str(target))
    assert result.exit_code == 2
    assert result.output == f"error: {target}: {target / 'README.md'} already exists; not overwriting anything (pick an empty or new folder)\n"
    assert files_under(target) == ["README.md"]
    assert (target / "README.md").read_text(encoding="utf-8") == "mine\n"

    (target / "README.md").unlink()
    (target / "notes.txt").write_text("mine\n", encoding="utf-8")
    result = new(kind, name, "--dir", str(target))
    assert result.exit_code == 2
    assert result.output == f"error: {target}: it is not empty; not overwriting anything (pick an empty or new folder)\n"
    assert files_under(target) == ["notes.txt"]


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = new("plugin", "webinars", "--dir", str(tmp_path / "empty"))
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "empty") == PLUGIN_FILES


def test_an_unknown_capability_is_a_usage_error(tmp_path: Path) -> None:
    result = new("connector", "acme", "--capability", "write_everything", "--dir", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "Invalid value for '--capability': 'write_everything' is not one of" in result.output
    assert not (tmp_path / "x").exists()


# Every non-empty set of capabilities, by size: one of each size and the reads/writes-only sets.
CAPABILITY_SETS = [("read_events",), ("delete_contacts",), READS, WRITES, (*READS, *WRITES),
                   *combinations(("read_contacts", "write_memberships", "write_consent"), 2)]


@pytest.mark.parametrize("capabilities", CAPABILITY_SETS, ids="+".join)
def test_declared_capabilities_get_their_stubs_and_only_their_imports(tmp_path: Path, capabilities) -> None:
    args = [arg for c in capabilities for arg in ("--capability", c)]
    result = new("connector", "acme", *args, "--dir", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    connector_py = tmp_path / "p/segsync_acme/connector.py"
    order = [*READS, *WRITES]
    assert declared_capabilities(connector_py) == [c.upper() for c in sorted(capabilities, key=order.index)]
    source = connector_py.read_text(encoding="utf-8")
    tree = ast.parse(source)
    methods = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert ("read" in methods) == bool(set(capabilities) & set(READS))
    assert ("write" in methods) == bool(set(capabilities) & set(WRITES))
    # Every name imported is used (no dead imports in what authors start from).
    imported = {alias.asname or alias.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                for alias in n.names if n.module != "__future__"}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert imported - used == set()
    for path in (tmp_path / "p").rglob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")  # every file is valid Python


def test_stubs_name_the_capability_they_stand_for(tmp_path: Path) -> None:
    result = new("connector", "acme", "--capability", "read_consent", "--capability", "write_consent",
                 "--dir", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    source = (tmp_path / "p/segsync_acme/connector.py").read_text(encoding="utf-8")
    assert 'raise not_implemented(f"read_{stream.value}", "AcmeConnector.read")' in source
    assert 'raise not_implemented("write_consent", "AcmeConnector.write")' in source
    assert "# write_consent: `change.status` unsubscribed/cleaned/complained" in source
    assert "write_memberships" not in source


def test_the_generated_emulator_is_built_on_the_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    import requests

    from segsync.testing.emulator import Emulator

    assert new("connector", "acme", "--dir", str(tmp_path / "p")).exit_code == 0
    monkeypatch.syspath_prepend(str(tmp_path / "p"))
    try:
        emulator_cls = importlib.import_module("segsync_acme.emulator").AcmeEmulator
    finally:  # the generated package is forgotten with its temp folder
        for name in [n for n in sys.modules if n == "segsync_acme" or n.startswith("segsync_acme.")]:
            del sys.modules[name]
    assert issubclass(emulator_cls, Emulator)
    key = "acme-test-0123456789abcdef0123456789abcdef"
    with emulator_cls(api_key=key) as emulator:
        emulator.inject("status", status=503)  # the kit's faults ...
        auth = {"Authorization": f"Bearer {key}"}
        statuses = [requests.get(f"{emulator.url}/v1/account", headers=auth, timeout=5).status_code
                    for _ in range(2)]
        refused = requests.get(f"{emulator.url}/v1/account", timeout=5)
        assert statuses == [503, 200]
        assert (refused.status_code, refused.json()) == (401, {"error": "unauthorized", "message": "missing or invalid API key"})
        # ... and its request log.
        assert [(c.method, c.path, c.status) for c in emulator.calls()] == [
            ("GET", "/v1/account", 503), ("GET", "/v1/account", 200), ("GET", "/v1/account", 401)]

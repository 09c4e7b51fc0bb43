"""A generated connector and a generated plugin, installed the way users install plugins.

Each test works in a scratch environment layered over the test one (tests/scratch_env.py): pip
installs there, offline (``--no-index --no-build-isolation``), and the test environment never
changes. The generated projects' own tests run there too, as their authors would run them.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .scratch_env import ScratchEnv, make_scratch_env

OFFLINE = ("--no-index", "--no-build-isolation")
DEFAULT_CAPABILITIES = ["read_contacts", "read_consent", "write_contacts", "write_memberships", "write_consent"]


@pytest.fixture
def env(tmp_path: Path) -> ScratchEnv:
    return make_scratch_env(tmp_path / "env")


def ok(done) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def plugin_row(env: ScratchEnv, name: str) -> list[dict]:
    return [p for p in json.loads(ok(env.segsync("plugins", "--json"))) if p["name"] == name]


def test_generated_connector_installs_passes_its_tests_and_uninstalls(env: ScratchEnv, tmp_path: Path) -> None:
    project = tmp_path / "segsync-acme"
    ok(env.segsync("new", "connector", "acme", "--dir", str(project)))

    installed = ok(env.segsync("install", *OFFLINE, "-e", str(project)))
    assert installed.splitlines()[-1] == (
        f"+ plugin acme (segsync-acme 0.1.0, editable {project}): connector type acme "
        f"({', '.join(DEFAULT_CAPABILITIES)})")
    assert plugin_row(env, "acme") == [{
        "name": "acme", "status": "loaded", "distribution": "segsync-acme", "version": "0.1.0",
        "installed_from": {"kind": "editable", "url": str(project)},
        "hooks": ["segsync_register_connectors"], "connector_types": ["acme"],
        "capabilities": {"acme": DEFAULT_CAPABILITIES},
    }]

    # Its tests, as its author runs them: green, each stub reached reported as xfail naming it.
    report = tmp_path / "report.xml"
    ran = env.run("-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    outcomes = junit_outcomes(report)
    own = {name: outcome for name, outcome in outcomes.items() if name.startswith("test_connector.")}
    assert own == {f"test_connector.{t}": ("passed", "") for t in (
        "test_check_accepts_the_key_the_emulator_expects",
        "test_check_names_a_refused_key_without_showing_it",
        "test_check_names_a_host_it_cannot_reach",
        "test_the_emulator_refuses_a_request_without_the_key",
        "test_start_emulator_gives_settings_that_reach_it",
        "test_the_api_key_is_a_secret",
    )}
    kit = {name: outcome for name, outcome in outcomes.items() if name.startswith("test_conformance.")}
    # What does not touch a stub passes for real ...
    for test in ("test_declares_a_type_name_capabilities_and_settings",
                 "test_secrets_are_secretstr_and_masked_everywhere",
                 "test_check_returns_a_list_of_problems", "test_writing_nothing_makes_no_call"):
        assert kit[f"test_conformance.TestAcmeConformance.{test}"] == ("passed", ""), test
    # ... and what does is an expected failure naming the stub, never a failure or an error.
    expected = {"acme: read_contacts is not implemented yet (AcmeConnector.read in segsync_acme.connector)",
                "acme: write_contacts, write_memberships, write_consent is not implemented yet "
                "(AcmeConnector.write in segsync_acme.connector)"}
    stubbed = {name: message for name, (outcome, message) in kit.items() if outcome == "xfailed"}
    assert stubbed and set(stubbed.values()) <= expected, stubbed
    assert {outcome for outcome, _ in kit.values()} <= {"passed", "xfailed", "skipped"}
    assert "test_conformance.TestAcmeConformance.test_write_answers_exactly_once_per_change" in stubbed

    removed = ok(env.segsync("uninstall", "-y", "segsync-acme"))
    assert removed.splitlines()[-1] == installed.splitlines()[-1].replace("+ plugin", "- plugin")
    assert plugin_row(env, "acme") == []
    # A project still using the type is told what to install.
    (tmp_path / "p").mkdir()
    (tmp_path / "p/segsync.toml").write_text('[connections.crm]\ntype = "acme"\n', encoding="utf-8")
    checked = env.segsync("check", cwd=tmp_path / "p")
    assert checked.returncode == 1
    installed_types = sorted(t for p in json.loads(ok(env.segsync("plugins", "--json"))) for t in p["connector_types"])
    assert (f"    no connector of type 'acme' (installed: {', '.join(installed_types)}); by the naming "
            "convention its distribution is segsync-acme: segsync install segsync-acme\n") in checked.stdout


def test_generated_plugin_installs_from_a_wheel_and_uninstalls(env: ScratchEnv, tmp_path: Path) -> None:
    project = tmp_path / "segsync-webinars"
    ok(env.segsync("new", "plugin", "webinars", "--dir", str(project)))
    ok(env.run("-m", "pip", "wheel", "--no-deps", *OFFLINE, "-w", str(tmp_path / "dist"), str(project)))
    wheel = tmp_path / "dist/segsync_webinars-0.1.0-py3-none-any.whl"
    assert wheel.is_file()

    installed = ok(env.segsync("install", "--no-index", str(wheel)))
    assert installed.splitlines()[-1] == (
        f"+ plugin webinars (segsync-webinars 0.1.0, archive {wheel}): hooks "
        "segsync_register_event_types, segsync_run_finished")
    [row] = plugin_row(env, "webinars")
    assert (row["status"], row["installed_from"]) == ("loaded", {"kind": "archive", "url": str(wheel)})
    ran = env.run("-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("3 passed")

    removed = ok(env.segsync("uninstall", "-y", "segsync-webinars"))
    assert removed.splitlines()[-1] == installed.splitlines()[-1].replace("+ plugin", "- plugin")
    assert plugin_row(env, "webinars") == []


def test_a_plugin_broken_on_arrival_is_shown_with_its_error(env: ScratchEnv, tmp_path: Path) -> None:
    project = tmp_path / "segsync-webinars"
    ok(env.segsync("new", "plugin", "webinars", "--dir", str(project)))
    init = project / "segsync_webinars/__init__.py"
    init.write_text(init.read_text(encoding="utf-8") + "\nimport webinar_sdk  # not installed\n", encoding="utf-8")

    installed = env.segsync("install", *OFFLINE, "-e", str(project))
    assert installed.returncode == 1
    assert installed.stdout.splitlines()[-1] == (
        f"! plugin webinars (segsync-webinars 0.1.0, editable {project}) is installed but broken: "
        "ModuleNotFoundError: No module named 'webinar_sdk'")
    assert plugin_row(env, "webinars") == [{
        "name": "webinars", "status": "broken", "distribution": "segsync-webinars", "version": "0.1.0",
        "installed_from": {"kind": "editable", "url": str(project)}, "hooks": [], "connector_types": [],
        "capabilities": {}, "error": "ModuleNotFoundError: No module named 'webinar_sdk'",
    }]


def junit_outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """``module.Class.test`` → (passed | failed | error | skipped | xfailed, message)."""
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname').rpartition('tests.')[2]}.{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = ("failed" if child.tag == "failure" else "error"), child.get("message", "")
            elif child.tag == "skipped":
                xfail = child.get("type") == "pytest.xfail"
                outcome, message = ("xfailed" if xfail else "skipped"), child.get("message", "")
        outcomes[name] = (outcome, message)
    return outcomes

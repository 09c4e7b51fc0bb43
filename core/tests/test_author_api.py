"""The public author API: exactly what ``segsync`` exports, and nothing else used by plugins.

A connector or plugin distribution (everything under ``connectors/`` and ``plugins/``) may import
from the core only:

* names in ``segsync.__all__`` (``from segsync import Connector``),
* the public modules :data:`PUBLIC_MODULES` (``segsync.payload``, ``segsync.filesource``,
  ``segsync.http``, ``segsync.segments.functions`` for segment functions, ``segsync.scores``
  for per-contact scores, ``segsync.project`` for plugins' commands,
  ``segsync.insights`` for a project's figures, ``segsync.live`` for runs started by a schedule
  or a webhook, ``segsync.collector`` to pause the garbage collector while planning a large
  write) and ``segsync.testing`` with its submodules.

The check walks the AST of every ``.py`` file of those distributions outside their ``tests/``
folders, every import at every level (inside functions and ``if TYPE_CHECKING:`` too: a type
named there still ties the distribution to a private module). Their tests are held to the same
rule: they reach the core through the public API and ``segsync.testing`` (a scratch store to
ingest into, a project to sync, what the installed plugins register), as a third party's tests
must, so both break only when the public API does. See docs/architecture.md, "The public API".
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import segsync

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION_GROUPS = ("connectors", "plugins")
PUBLIC_MODULES = frozenset({"segsync", "segsync.payload", "segsync.filesource", "segsync.http",
                            "segsync.segments.functions", "segsync.scores", "segsync.project",
                            "segsync.insights", "segsync.live", "segsync.collector"})
# The whole of segsync.testing is public (the conformance kit, emulator and test helpers), and
# segsync.engines (the seam engine plugins implement, docs/scale.md).
PUBLIC_PACKAGES = ("segsync.testing", "segsync.engines")

EXPECTED_ALL = [
    "Attributes", "Batch", "CONFIRMED_METHODS", "CONSENT_METHODS", "Capability", "ConnectorSettings",
    "Connector", "ConsentRecord", "ConsentStatus", "Contact", "ContactChange", "EXPLICIT_METHODS",
    "Event", "FileSlice", "InvalidEmail", "KNOWN_ATTRIBUTES", "MAILABLE_STATUSES",
    "OPT_OUT_STATUSES", "Outcome", "OutcomeReport", "OutcomeStatus", "PartStatus", "READ_CAPABILITIES",
    "RecordProblem", "RegisterConnector", "RegisterEventType", "RunStatus", "SegmentChange", "SegmentChanges",
    "Stream", "SubscriptionStatus", "TriggerMessage", "WRITE_CAPABILITIES", "WriteResult", "WriteSession",
    "hookimpl", "lazy_exports",
    "lazy_settings",
    "mask_email", "normalize_email",
]


def is_public_module(name: str) -> bool:
    return name in PUBLIC_MODULES or any(name == p or name.startswith(p + ".") for p in PUBLIC_PACKAGES)


def private_imports(source: str, filename: str = "<source>") -> list[str]:
    """Each import of a non-public part of the core in ``source``, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names
                      if (a.name == "segsync" or a.name.startswith("segsync.")) and not is_public_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module == "segsync":
                found += [f"{node.lineno}: from segsync import {a.name}" for a in node.names
                          if a.name not in segsync.__all__ and not is_public_module(f"segsync.{a.name}")]
            elif module.startswith("segsync.") and not is_public_module(module):
                found.append(f"{node.lineno}: from {module} import {', '.join(a.name for a in node.names)}")
    return sorted(found, key=lambda text: int(text.partition(":")[0]))


def distribution_files(*, tests: bool) -> list[Path]:
    """The ``.py`` files of every distribution under connectors/ and plugins/: those in a
    ``tests`` folder (``tests=True``) or all the others."""
    files = []
    for group in DISTRIBUTION_GROUPS:
        for path in sorted((ROOT / group).rglob("*.py")) if (ROOT / group).is_dir() else []:
            if ".venv" in path.parts or "build" in path.relative_to(ROOT).parts:
                continue
            if ("tests" in path.relative_to(ROOT / group).parts) == tests:
                files.append(path)
    return files


def violations(paths: list[Path]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{problem}"
            for path in paths for problem in private_imports(path.read_text(encoding="utf-8"), str(path))]


def test_the_check_finds_private_imports_wherever_they_are() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import segsync\n"
        "import segsync.store.ingest\n"                     # 3
        "from segsync import Connector, payload, plugins\n"  # 4: plugins is not public
        "from segsync.testing.conformance import Kit\n"
        "from segsync.http import session\n"
        "import segsync_files.connector\n"                  # another distribution: not the core
        "if TYPE_CHECKING:\n"
        "    from segsync.sync.summary import RunSummary\n"  # 9
        "def later():\n"
        "    from segsync.model import KNOWN_ATTRIBUTES\n"   # 11
        "class C:\n"
        "    from segsync.lazy import lazy_exports\n"        # 13
    )
    assert private_imports(source) == [
        "3: import segsync.store.ingest",
        "4: from segsync import plugins",
        "9: from segsync.sync.summary import RunSummary",
        "11: from segsync.model import KNOWN_ATTRIBUTES",
        "13: from segsync.lazy import lazy_exports",
    ]


def test_connectors_and_plugins_import_only_the_public_api() -> None:
    files = distribution_files(tests=False)
    # The walk sees every connector in the tree (a wrong root would pass vacuously).
    assert {p.relative_to(ROOT).parts[1] for p in files} >= {"files", "mailchimp", "brevo"}
    assert violations(files) == []


def test_connector_tests_use_only_the_public_api_and_segsync_testing() -> None:
    files = distribution_files(tests=True)
    assert {p.relative_to(ROOT).parts[1] for p in files} >= {"files", "mailchimp", "brevo"}
    assert violations(files) == []


# -- the public surface ------------------------------------------------------------------------


def test_all_is_exactly_the_public_api_and_every_name_resolves() -> None:
    assert sorted(segsync.__all__) == sorted(EXPECTED_ALL)
    assert len(segsync.__all__) == len(set(segsync.__all__))
    for name in segsync.__all__:
        assert getattr(segsync, name) is not None, name
    assert set(segsync.__all__) <= set(dir(segsync))
    with pytest.raises(AttributeError, match="module 'segsync' has no attribute 'Store'"):
        segsync.Store  # noqa: B018 - internal names are not re-exported


def test_public_names_are_the_objects_the_core_uses() -> None:
    from segsync import connector, consent, model, statuses

    assert segsync.Outcome is connector.Outcome
    assert segsync.OutcomeStatus is statuses.OutcomeStatus is connector.OutcomeStatus
    assert segsync.KNOWN_ATTRIBUTES is model.KNOWN_ATTRIBUTES
    assert segsync.CONFIRMED_METHODS is consent.policies.CONFIRMED_METHODS
    assert segsync.hookimpl is segsync.hookspecs.hookimpl


def test_importing_segsync_imports_none_of_what_the_public_names_need() -> None:
    program = (
        "import json, sys, segsync\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_settings', 'duckdb', 'sqlglot', 'requests', 'segsync'))))"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    # Only the package, its lazy-export helper and the hook markers (pluggy): the names come later.
    assert json.loads(done.stdout) == ["segsync", "segsync.hookspecs", "segsync.lazy"]


def test_statuses_serialise_as_the_words_they_replaced() -> None:
    from segsync import OutcomeStatus, PartStatus, RunStatus, SubscriptionStatus

    assert [s.value for s in OutcomeStatus] == ["ok", "rejected", "retryable"]
    assert [s.value for s in RunStatus] == [
        "succeeded", "with-rejections", "partial", "failed", "dry-run", "running", "crashed"]
    assert [s.value for s in PartStatus] == ["ok", "with-rejections", "partial", "failed", "skipped"]
    assert [s.value for s in SubscriptionStatus] == [
        "subscribed", "unsubscribed", "pending", "cleaned", "complained", "none"]
    status = RunStatus.WITH_REJECTIONS
    assert (str(status), f"{status}", json.dumps({"status": status})) == (
        "with-rejections", "with-rejections", '{"status": "with-rejections"}')
    assert segsync.Outcome.ok("a@example.com").status is OutcomeStatus.OK
    assert segsync.Outcome.rejected("a@example.com", "no").status == "rejected"
    assert segsync.OPT_OUT_STATUSES == ("unsubscribed", "cleaned", "complained")
    assert segsync.MAILABLE_STATUSES == ("subscribed", "pending")


def test_the_core_ships_py_typed_as_package_data() -> None:
    marker = ROOT / "core" / "segsync" / "py.typed"
    assert marker.is_file() and marker.read_bytes() == b""
    # hatch puts every file of the package directory in the wheel (pyproject: packages).
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'packages = ["core/segsync"]' in pyproject


def test_register_callbacks_are_typed() -> None:
    import inspect

    from segsync import hookspecs

    annotations = {name: inspect.signature(getattr(hookspecs, name)).parameters["register"].annotation
                   for name in dir(hookspecs) if name.startswith("segsync_register_") and name != "segsync_register_commands"}
    assert annotations == {
        "segsync_register_connectors": "RegisterConnector",
        "segsync_register_consent_policies": "RegisterConsentPolicy",
        "segsync_register_engines": "RegisterEngine",
        "segsync_register_event_types": "RegisterEventType",
        "segsync_register_segment_functions": "RegisterSegmentFunction",
        "segsync_register_segment_packs": "RegisterSegmentPack",
    }
    for protocol in annotations.values():
        assert "__call__" in vars(getattr(hookspecs, protocol)), protocol

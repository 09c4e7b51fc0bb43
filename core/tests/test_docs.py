"""Every hook is documented (docs/hooks.md is current) and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from segsync import hookdocs, hookspecs

ROOT = Path(__file__).resolve().parents[2]
TEST_FILES = [
    p for p in (*ROOT.glob("core/tests/**/*.py"), *ROOT.glob("tests/**/*.py"),
                *ROOT.glob("connectors/*/tests/**/*.py"), *ROOT.glob("plugins/*/tests/**/*.py"))
    if p.name != "test_docs.py"
]


def test_hooks_md_is_generated_from_the_hookspecs() -> None:
    committed = (ROOT / "docs/hooks.md").read_text(encoding="utf-8")
    assert committed == hookdocs.render(), "docs/hooks.md is stale: python -m segsync.hookdocs > docs/hooks.md"


@pytest.mark.parametrize("name", hookdocs.hook_names())
def test_hook_documents_every_parameter_and_has_an_example(name: str) -> None:
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name} does not document {param}"
    assert "Called " in doc, f"{name} does not say when it is called"
    assert "Example::" in doc, f"{name} has no example"


@pytest.mark.parametrize("name", hookdocs.hook_names())
def test_hook_has_a_test_implementing_it(name: str) -> None:
    pattern = re.compile(rf"def {name}\(")
    assert any(pattern.search(p.read_text(encoding="utf-8")) for p in TEST_FILES), f"no test implements {name}"

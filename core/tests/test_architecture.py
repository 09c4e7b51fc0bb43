"""The import structure of the product code: no import circles in ``segsync``, and nothing but
the CLI itself (and its entry points) imports the CLI.

Every module is parsed with ``ast``: imports at module level and inside functions, classes and
``try`` blocks all count (an import inside a function only hides a circle until that function
runs). Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they cannot close a
circle at run time.
"""

from __future__ import annotations

import ast
import graphlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
PACKAGE = CORE / "segsync"

# The entry points: ``python -m segsync`` runs the CLI (the console script names it in pyproject).
MAY_IMPORT_THE_CLI = {"segsync.__main__"}


def module_name(path: Path, source_root: Path) -> str:
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if _is_type_checking_block(child):
            yield from (n for orelse in child.orelse for n in _import_nodes_of(orelse))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def imported_modules(path: Path, name: str, known: set[str],
                     lazy: dict[str, dict[str, str]] | None = None) -> set[str]:
    """The modules ``path`` (module ``name``) imports, as absolute names.

    ``from a.b import c`` names module ``a.b.c`` when that is a module, else the module that
    defines ``c``: ``a.b`` itself, or, when ``a.b`` re-exports ``c`` lazily (``lazy``: package
    → name → module, see ``segsync.lazy``), the module it is imported from. Relative imports are
    resolved against the module's package.
    """
    lazy = lazy or {}
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:
            base_parts = package.split(".")
            if node.level > 1:
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            if candidate in known:
                found.add(candidate)
            else:
                found.add(lazy.get(base, {}).get(alias.name, base))
    return found


def product_modules(source_root: Path, top: Path) -> dict[str, Path]:
    return {module_name(p, source_root): p for p in sorted(top.rglob("*.py"))
            if "tests" not in p.relative_to(source_root).parts}


def lazy_exports(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Package → the names it re-exports lazily → the module defining each."""
    found = {}
    for name, path in modules.items():
        if path.name == "__init__.py" and "lazy_exports(" in path.read_text(encoding="utf-8"):
            found[name] = importlib.import_module(name).__lazy_exports__
    return found


def import_graph(source_root: Path = CORE, top: Path = PACKAGE) -> dict[str, set[str]]:
    modules = product_modules(source_root, top)
    known = set(modules)
    lazy = lazy_exports(modules)
    return {name: imported_modules(path, name, known, lazy) & known - {name}
            for name, path in modules.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]`` (a imports b ...), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        # graphlib lists the circle along "is imported by" edges: reverse it to read as imports.
        return list(reversed(exc.args[1]))
    return None


def test_the_checker_finds_circles_through_function_level_relative_and_lazy_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = tmp_path / "circle_demo"
    (pkg / "sub").mkdir(parents=True)
    # ``from .. import run`` below imports circle_demo.top, where the package takes ``run`` from.
    (pkg / "__init__.py").write_text(
        "from segsync.lazy import lazy_exports\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'run': 'circle_demo.top'})\n"
    )
    (pkg / "sub" / "__init__.py").write_text("from .leaf import VALUE\n")
    (pkg / "sub" / "leaf.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from circle_demo.top import Hidden\n"  # never runs: no edge
        "VALUE = 1\n"
        "def late():\n    from .. import run\n    return run\n"  # runs when called: an edge
    )
    (pkg / "top.py").write_text("from circle_demo.sub import VALUE\ndef run():\n    pass\n")
    graph = import_graph(tmp_path, pkg)
    assert graph == {
        "circle_demo": set(),
        "circle_demo.sub": {"circle_demo.sub.leaf"},
        "circle_demo.sub.leaf": {"circle_demo.top"},
        "circle_demo.top": {"circle_demo.sub"},
    }
    circle = find_circle(graph)
    assert circle is not None and len(circle) == 4 and circle[0] == circle[-1]
    assert set(circle) == {"circle_demo.sub", "circle_demo.sub.leaf", "circle_demo.top"}
    (pkg / "sub" / "leaf.py").write_text("VALUE = 1\n")
    assert find_circle(import_graph(tmp_path, pkg)) is None
    for name in [m for m in sys.modules if m == "circle_demo" or m.startswith("circle_demo.")]:
        del sys.modules[name]  # the package exists only in this test


def test_no_import_circles_in_segsync() -> None:
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def _cli_importers() -> list[str]:
    offenders = []
    sources = [(CORE, PACKAGE)]
    sources += [(d.parent, d) for group in ("connectors", "plugins") if (ROOT / group).is_dir()
                for dist in sorted((ROOT / group).iterdir()) if dist.is_dir()
                for d in sorted(dist.iterdir()) if (d / "__init__.py").exists()]
    for source_root, top in sources:
        modules = product_modules(source_root, top)
        for name, path in modules.items():
            if name == "segsync.cli" or name.startswith("segsync.cli.") or name in MAY_IMPORT_THE_CLI:
                continue
            imported = imported_modules(path, name, set(modules))
            if any(m == "segsync.cli" or m.startswith("segsync.cli.") for m in imported):
                offenders.append(f"{name} ({path.relative_to(ROOT)})")
    return offenders


def test_only_the_cli_imports_the_cli() -> None:
    assert _cli_importers() == [], "product code outside segsync/cli/ imports segsync.cli"

"""``segsync new connector NAME`` and ``segsync new plugin NAME``: a new distribution from a template.

The templates are files under ``segsync/templates/<kind>/`` (package data, read with
:mod:`importlib.resources`), rendered with :class:`string.Template`: ``$name``-style
placeholders, ``$$`` for a literal dollar. A template that names a placeholder this module does
not define fails loudly (``substitute``, not ``safe_substitute``), so a stale template is caught
by the tests that generate from it. Directory names ``PACKAGE`` become the import package and
the ``.tmpl`` suffix is dropped; templates carry it so that neither pytest, the build backend nor
the architecture checks take them for modules of segsync itself.
"""

from __future__ import annotations

import hashlib
import keyword
import re
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from string import Template

KINDS = ("connector", "plugin")
TEMPLATE_SUFFIX = ".tmpl"
PACKAGE_DIR = "PACKAGE"

# A type name is what users write as `type = "..."` and the entry point's name: it must also
# make a Python package name (segsync_NAME) and a distribution name (segsync-NAME).
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME_LENGTH = 40

# The capabilities a generated connector declares unless told otherwise: the common case of a
# destination ESP or CRM that also reports its own opt-outs back.
DEFAULT_CAPABILITIES = ("read_contacts", "read_consent", "write_contacts", "write_memberships",
                        "write_consent")
READS = ("read_contacts", "read_events", "read_consent")
WRITES = ("write_contacts", "write_memberships", "write_consent", "delete_contacts")

# What each write capability asks of write(), as the comments of the generated stub say it.
WRITE_DUTIES = {
    "write_contacts": "create or update the contact with `change.attributes`, and hold "
                      "`change.status` (subscribed, pending, unsubscribed, ...)",
    "write_memberships": "add the segments in `change.tags_add`, remove those in "
                         "`change.tags_remove` (`change.tags`: every segment it is in now)",
    "write_consent": "`change.status` unsubscribed/cleaned/complained becomes the system's own "
                     "opt-out (it arrives first among the changes)",
    "delete_contacts": "`change.op == \"delete\"`: erase the contact from the system",
}


class GeneratorError(Exception):
    """A name or target the generator refuses; the message says what to change."""


@dataclass(frozen=True)
class Names:
    """Every spelling of one connector's or plugin's name the templates use."""

    name: str  # type name and entry-point name: "constant_contact"
    title: str  # for people: "Constant Contact"

    @property
    def package(self) -> str:
        return f"segsync_{self.name}"

    @property
    def distribution(self) -> str:
        return f"segsync-{self.name.replace('_', '-')}"

    @property
    def class_prefix(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_") if part)


def check_name(name: str) -> Names:
    """The names for ``name``, or a :class:`GeneratorError` saying what is wrong with it."""
    if not NAME_PATTERN.fullmatch(name):
        raise GeneratorError(
            f"name {name!r}: use lower-case letters, digits and underscores, starting with a "
            "letter (it becomes the connection type, segsync_NAME and segsync-NAME)"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise GeneratorError(f"name {name!r}: at most {MAX_NAME_LENGTH} characters, not {len(name)}")
    if name.startswith("segsync"):
        raise GeneratorError(
            f"name {name!r}: leave out the segsync prefix (the distribution becomes segsync-NAME)"
        )
    if name.endswith("_") or "__" in name:
        raise GeneratorError(f"name {name!r}: no trailing or double underscores")
    if keyword.iskeyword(name):
        raise GeneratorError(f"name {name!r}: a Python keyword cannot name a package's parts")
    return Names(name, " ".join(part.capitalize() for part in name.split("_")))


def check_capabilities(capabilities: Iterable[str]) -> tuple[str, ...]:
    """The capabilities in the contract's order; unknown or missing ones are an error."""
    wanted = list(dict.fromkeys(capabilities))
    known = (*READS, *WRITES)
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise GeneratorError(f"unknown capability {unknown[0]!r} (known: {', '.join(known)})")
    if not wanted:
        raise GeneratorError("a connector declares at least one capability")
    return tuple(c for c in known if c in wanted)


def render_connector(names: Names, capabilities: Iterable[str], target: Path) -> list[Path]:
    """Write a connector distribution for ``names`` into ``target``; return the files written."""
    declared = check_capabilities(capabilities)
    reads = [c for c in declared if c in READS]
    writes = [c for c in declared if c in WRITES]
    values = {
        **_common_values(names),
        "capabilities": ",\n".join(f"        Capability.{c.upper()}" for c in declared),
        "capability_list": "\n".join(f"- `{c}`" for c in declared),
        "reads": ", ".join(reads),
        "writes": ", ".join(writes),
        "write_duties": "\n".join(
            textwrap.fill(f"{c}: {WRITE_DUTIES[c]}", width=100, initial_indent="        # ",
                          subsequent_indent="        #   ") for c in writes),
        # Imports the declared methods use, and nothing else.
        "abc_import": _import_line("collections.abc", [name for name, used in
                                                       (("Iterator", reads), ("Sequence", writes)) if used]),
        "segsync_names": ", ".join([*sorted(
            {"Capability", "Connector"} | ({"Batch", "Stream"} if reads else set())
            | ({"ContactChange", "WriteResult"} if writes else set()), key=str.lower), "lazy_settings"]),
        # A test key shaped like a real one (the kit checks it never shows): fixed per name.
        "test_api_key": f"{names.name}-test-" + hashlib.sha256(names.name.encode()).hexdigest()[:32],
    }
    parts = resources.files("segsync") / "templates" / "connector_parts"
    values["read_method"] = _fill(parts / "read.tmpl", values) if reads else ""
    values["write_method"] = _fill(parts / "write.tmpl", values) if writes else ""
    return _render("connector", values, target)


def _import_line(module: str, names: list[str]) -> str:
    """``from module import a, b`` and a line break, or nothing when ``names`` is empty."""
    return f"from {module} import {', '.join(names)}\n" if names else ""


def render_plugin(names: Names, target: Path) -> list[Path]:
    """Write a (non-connector) plugin distribution for ``names`` into ``target``."""
    return _render("plugin", _common_values(names), target)


def default_target(names: Names) -> Path:
    return Path(names.distribution)


def _common_values(names: Names) -> dict[str, str]:
    return {
        "name": names.name,
        "title": names.title,
        "package": names.package,
        "distribution": names.distribution,
        "class_prefix": names.class_prefix,
        "env_name": names.name.upper(),
        "segsync_requirement": _segsync_requirement(),
    }


def _segsync_requirement() -> str:
    """``segsync>=X.Y`` for the release generating the project: the API its code is written for."""
    try:
        version = metadata.version("segsync")
    except metadata.PackageNotFoundError:  # running from a source tree without metadata
        return "segsync"
    release = re.match(r"\d+(\.\d+)*", version)
    return f"segsync>={release.group(0)}" if release else "segsync"


def _render(kind: str, values: dict[str, str], target: Path) -> list[Path]:
    root = resources.files("segsync") / "templates" / kind
    files = sorted(_template_files(root, PurePosixPath()), key=lambda item: str(item[0]))
    outputs = [(target / _output_path(relative, values["package"]), source) for relative, source in files]
    _refuse_to_overwrite(target, [path for path, _ in outputs])
    rendered = [(path, _fill(source, values)) for path, source in outputs]
    for path, text in rendered:  # every template rendered before the first file is written
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [path for path, _ in rendered]


def _template_files(node: Traversable, relative: PurePosixPath) -> Iterator[tuple[PurePosixPath, Traversable]]:
    for child in node.iterdir():
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            yield from _template_files(child, relative / child.name)
        elif child.name.endswith(TEMPLATE_SUFFIX):
            yield relative / child.name, child


def _output_path(relative: PurePosixPath, package: str) -> Path:
    parts = [package if part == PACKAGE_DIR else part for part in relative.parts]
    parts[-1] = parts[-1].removesuffix(TEMPLATE_SUFFIX)
    return Path(*parts)


def _fill(source: Traversable, values: dict[str, str]) -> str:
    try:
        return Template(source.read_text(encoding="utf-8")).substitute(values)
    except (KeyError, ValueError) as exc:  # a template bug, not the user's
        raise RuntimeError(f"template {source.name}: {type(exc).__name__}: {exc}") from exc


def _refuse_to_overwrite(target: Path, paths: list[Path]) -> None:
    if target.exists() and not target.is_dir():
        raise GeneratorError(f"{target} exists and is not a folder; not overwriting it")
    if target.is_dir() and any(target.iterdir()):
        clashes = [p for p in paths if p.exists()]
        what = f"{clashes[0]} already exists" if clashes else "it is not empty"
        raise GeneratorError(f"{target}: {what}; not overwriting anything (pick an empty or new folder)")

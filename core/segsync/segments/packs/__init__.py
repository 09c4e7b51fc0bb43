"""Segment packs: named, parameterised sets of segments that users switch on in ``segsync.toml``.

::

    [packs.engagement]                 # enabled with its defaults by being there
    window = "60d"                     # parameters override defaults
    high_open_rate = 0.4
    [packs.engagement.destinations.newsletter]
    tag = true                         # each segment as a tag named after it ("eng: " = prefix)

A pack's rules are templates in the rule language; parameters are checked by kind and
rendered as rule literals (durations, numbers, quoted strings), then the rules are parsed like
any other. So a parameter can never change a rule's shape, and nothing reaches SQL as text.

Packs are registered through the ``segsync_register_segment_packs(register)`` hook; the
standard ones live in :mod:`.standard` (registered by :mod:`segsync.default_plugins.segment_packs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SegmentConfigError, did_you_mean
from ..definitions import NAME_PATTERN, GroupDef, Representation, SegmentDef

ParamKind = Literal["duration", "number", "string", "names"]

_DURATION = re.compile(r"^[1-9][0-9]{0,5}[hdw]$")
_NAME = re.compile(NAME_PATTERN)
# Keys of a [packs.NAME] table that are not parameters.
_RESERVED = ("enabled", "destinations")


class PackError(SegmentConfigError):
    """An unknown pack or parameter, or a parameter value of the wrong kind."""


@dataclass(frozen=True)
class PackParam:
    """One parameter: ``duration`` ("90d"), ``number``, ``string`` (rendered as a quoted rule
    string) or ``names`` (a list of segment-name-safe strings, e.g. categories)."""

    name: str
    kind: ParamKind
    default: Any
    doc: str


@dataclass(frozen=True)
class PackSegment:
    """A segment template: ``rule`` uses ``{param}`` placeholders (None for a catch-all)."""

    name: str
    description: str
    rule: str | None
    group: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class SegmentPack:
    """A named set of segments (+ groups) with parameters.

    ``segments`` are fixed templates; ``dynamic`` (optional) returns more templates from the
    checked parameter values (one segment per configured category, say).
    """

    name: str
    description: str
    params: tuple[PackParam, ...] = ()
    segments: tuple[PackSegment, ...] = ()
    groups: Mapping[str, GroupDef] = field(default_factory=dict)
    dynamic: Callable[[Mapping[str, Any]], Sequence[PackSegment]] | None = None

    def values(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``options``, each checked against its parameter's kind."""
        known = {p.name: p for p in self.params}
        values = {p.name: p.default for p in self.params}
        for key, value in options.items():
            if key in _RESERVED:
                continue
            if key not in known:
                hint = did_you_mean(key, [*known, *_RESERVED])
                listed = ", ".join(known) or "none"
                raise PackError(
                    f"pack {self.name!r}: unknown parameter {key!r}{hint} (parameters: {listed})"
                )
            values[key] = _check(self.name, known[key], value)
        return values

    def keys(self) -> list[str]:
        """The keys a ``[packs.NAME]`` table may hold: the parameters, ``enabled`` and
        ``destinations``."""
        return [*(p.name for p in self.params), *_RESERVED]

    def templates(self, values: Mapping[str, Any]) -> list[PackSegment]:
        return [*self.segments, *(self.dynamic(values) if self.dynamic else ())]

    def expand(self, options: Mapping[str, Any] | None = None) -> tuple[list[SegmentDef], dict[str, GroupDef]]:
        """The pack's segments and groups with ``options`` (a ``[packs.NAME]`` table) applied."""
        options = dict(options or {})
        values = self.values(options)
        rendered = {p.name: _render(p, values[p.name]) for p in self.params}
        reps = _representations(self.name, options.get("destinations"))
        segments = []
        for t in self.templates(values):
            rule = None if t.rule is None else t.rule.format_map(rendered)
            segments.append(SegmentDef(
                name=t.name, description=t.description, group=t.group, priority=t.priority,
                rule=rule, destinations={d: rep(t.name) for d, rep in reps.items()},
            ))
        return segments, dict(self.groups)

    def describe_params(self) -> list[tuple[str, str, str]]:
        """(name, default as written in TOML, doc) per parameter, for docs and ``--help``."""
        return [(p.name, _toml(p.default), p.doc) for p in self.params]


def expand_packs(
    tables: Mapping[str, Any],
    packs: Mapping[str, SegmentPack],
) -> tuple[list[SegmentDef], dict[str, GroupDef]]:
    """Expand every enabled ``[packs.NAME]`` table (``enabled = false`` switches one off)."""
    segments: list[SegmentDef] = []
    groups: dict[str, GroupDef] = {}
    for name, table in tables.items():
        if name not in packs:
            installed = ", ".join(sorted(packs)) or "none installed"
            raise PackError(f"unknown pack {name!r}{did_you_mean(name, packs)} (installed: {installed})")
        if not isinstance(table, Mapping):
            raise PackError(f"[packs.{name}] must be a table of parameters")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise PackError(f"pack {name!r}: enabled must be true or false")
        if not enabled:
            continue
        more, more_groups = packs[name].expand(table)
        for g in more_groups:
            if g in groups:
                raise PackError(f"pack {name!r} declares group {g!r}, which another pack also declares")
        segments += more
        groups.update(more_groups)
    return segments, groups


def _check(pack: str, param: PackParam, value: Any) -> Any:
    where = f"pack {pack!r}: parameter {param.name!r}"
    if param.kind == "duration":
        if not isinstance(value, str) or not _DURATION.match(value):
            raise PackError(f"{where} is a duration such as \"90d\", \"24h\" or \"2w\", not {value!r}")
    elif param.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PackError(f"{where} is a number, not {value!r}")
    elif param.kind == "string":
        if not isinstance(value, str) or not value:
            raise PackError(f"{where} is a non-empty string, not {value!r}")
    elif param.kind == "names":
        if not isinstance(value, list) or not all(isinstance(v, str) and _NAME.match(v) for v in value):
            raise PackError(
                f"{where} is a list of names (letters, digits, '_', '-', '.'), not {value!r}"
            )
    return value


def _render(param: PackParam, value: Any) -> str:
    """A checked value as rule-language text."""
    if param.kind == "duration":
        return value
    if param.kind == "number":
        return repr(value) if isinstance(value, float) else str(value)
    if param.kind == "string":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ", ".join(value)  # names: only for descriptions; dynamic templates use the list


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return repr(value)


def _representations(pack: str, table: Any) -> dict[str, Callable[[str], Representation]]:
    """``destinations.NAME = {tag = true | "prefix", list = true | "prefix"}`` per destination."""
    if table is None:
        return {}
    if not isinstance(table, Mapping):
        raise PackError(f"pack {pack!r}: destinations must be a table of destinations")
    out = {}
    for destination, spec in table.items():
        where = f"pack {pack!r}: destinations.{destination}"
        if not isinstance(spec, Mapping) or not spec:
            raise PackError(f"{where} needs tag and/or list (true, or a prefix string)")
        unknown = set(spec) - {"tag", "list"}
        if unknown:
            key = sorted(unknown)[0]
            raise PackError(f"{where}: unknown key {key!r}{did_you_mean(key, ['tag', 'list'])} "
                            "(a pack's segments are shown as tags and/or lists)")
        for key, value in spec.items():
            if not isinstance(value, (bool, str)):
                raise PackError(f"{where}: {key} is true/false or a prefix string, not {value!r}")
        if all(v is False for v in spec.values()):
            raise PackError(f"{where}: set tag or list to true (or a prefix string)")

        def rep(segment: str, spec: Mapping[str, Any] = spec) -> Representation:
            names = {k: (v if isinstance(v, str) else "") + segment
                     for k, v in spec.items() if v is not False}
            return Representation(**names)

        out[destination] = rep
    return out


__all__ = ["PackError", "PackParam", "PackSegment", "SegmentPack", "expand_packs"]

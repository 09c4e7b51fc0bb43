"""Segment and group declarations as written in ``segsync.toml``.

::

    [groups.lifecycle]
    description = "Where each contact is in the customer lifecycle"
    catch_all = "lifecycle-other"

    [[segments]]
    name = "vip"
    description = "Engaged big spenders"
    group = "lifecycle"
    priority = 1                       # lower number wins within a group
    rule = 'opens(30d) >= 5 and spend(365d) > 500 and visited("/vip-rewards")'
    [segments.destinations.mailchimp]
    tag = "VIP"
    [segments.destinations.hubspot]
    list = "VIP customers"

Validation here is per declaration plus cross-checks (:func:`check_segments`); whether the
functions a rule calls exist is checked when rules compile against the function registry,
which plugins extend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from . import ast
from .errors import RuleError, SegmentConfigError, did_you_mean
from .parser import parse

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class Representation(BaseModel):
    """How one destination shows membership: a tag, a list, and/or an attribute.

    ``attribute`` is set to ``value`` for members (default: true) and cleared on exit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str | None = Field(default=None, min_length=1)
    list: str | None = Field(default=None, min_length=1)
    attribute: str | None = Field(default=None, min_length=1)
    value: str | int | float | bool | None = None

    @model_validator(mode="after")
    def _something(self) -> Representation:
        if not (self.tag or self.list or self.attribute):
            raise ValueError("set at least one of tag, list or attribute")
        if self.value is not None and not self.attribute:
            raise ValueError("value only applies together with attribute")
        return self


class SegmentDef(BaseModel):
    """One ``[[segments]]`` table. ``tree`` is the parsed rule (None for a catch-all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    group: str | None = Field(default=None, pattern=NAME_PATTERN)
    priority: int | None = None
    rule: str | None = None
    destinations: dict[str, Representation] = Field(default_factory=dict)

    _tree: ast.Node | None = PrivateAttr(default=None)

    @field_validator("rule")
    @classmethod
    def _parse_rule(cls, rule: str | None, info: ValidationInfo) -> str | None:
        if rule is not None:
            try:
                parse(rule)
            except RuleError as e:
                raise ValueError(str(e.with_segment(info.data.get("name") or "?"))) from None
        return rule

    @model_validator(mode="after")
    def _shape(self) -> SegmentDef:
        if self.rule is None and self.group is None:
            raise ValueError(
                f"segment {self.name!r} has no rule; only a group's catch-all segment may omit it"
            )
        if self.priority is not None and self.group is None:
            raise ValueError(f"segment {self.name!r}: priority only applies within a group")
        return self

    def model_post_init(self, __context: Any) -> None:
        if self.rule is not None:
            self._tree = parse(self.rule)

    @property
    def tree(self) -> ast.Node | None:
        return self._tree


class GroupDef(BaseModel):
    """One ``[groups.NAME]`` table: the members are the segments naming it as ``group``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    catch_all: str | None = Field(default=None, pattern=NAME_PATTERN)


class SegmentsConfig(BaseModel):
    """The ``segments`` and ``groups`` parts of ``segsync.toml``, cross-checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: list[SegmentDef] = Field(default_factory=list)
    groups: dict[str, GroupDef] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> SegmentsConfig:
        check_segments(self.segments, self.groups)
        return self


def group_members(
    segments: Sequence[SegmentDef], groups: Mapping[str, GroupDef]
) -> dict[str, list[SegmentDef]]:
    """Ruled members of each group in priority order (the catch-all excluded)."""
    out: dict[str, list[SegmentDef]] = {g: [] for g in groups}
    for s in segments:
        if s.group is not None and s.name != groups[s.group].catch_all:
            out[s.group].append(s)
    for members in out.values():
        members.sort(key=lambda s: s.priority)  # type: ignore[arg-type,return-value]
    return out


def check_segments(segments: Sequence[SegmentDef], groups: Mapping[str, GroupDef]) -> None:
    """Cross-checks: unique names, declared groups, catch-alls, unique priorities.

    Raises :class:`SegmentConfigError` (a ``ValueError``) naming the first problem.
    """
    seen: set[str] = set()
    for s in segments:
        if s.name in seen:
            raise SegmentConfigError(f"segment {s.name!r} is declared twice")
        seen.add(s.name)
    by_name = {s.name: s for s in segments}
    for s in segments:
        if s.group is not None and s.group not in groups:
            raise SegmentConfigError(
                f"segment {s.name!r} names group {s.group!r}, which is not declared under "
                f"[groups]{did_you_mean(s.group, groups)}"
            )
    for gname, g in groups.items():
        if g.catch_all is not None:
            c = by_name.get(g.catch_all)
            if c is None:
                raise SegmentConfigError(
                    f"group {gname!r}: catch_all {g.catch_all!r} is not a declared segment"
                    f"{did_you_mean(g.catch_all, by_name)}"
                )
            if c.group != gname:
                raise SegmentConfigError(
                    f"group {gname!r}: catch-all segment {c.name!r} must declare group = {gname!r}"
                )
            if c.rule is not None:
                raise SegmentConfigError(
                    f"group {gname!r}: catch-all segment {c.name!r} takes everyone the group's "
                    "other segments do not; remove its rule"
                )
        priorities: dict[int, str] = {}
        for s in segments:
            if s.group != gname or s.name == g.catch_all:
                continue
            if s.rule is None:
                raise SegmentConfigError(
                    f"segment {s.name!r} has no rule and is not group {gname!r}'s catch_all"
                )
            if s.priority is None:
                raise SegmentConfigError(
                    f"segment {s.name!r} is in group {gname!r} and needs a priority "
                    "(lower numbers win)"
                )
            if s.priority in priorities:
                raise SegmentConfigError(
                    f"segments {priorities[s.priority]!r} and {s.name!r} in group {gname!r} "
                    f"share priority {s.priority}; priorities decide who wins, make them unique"
                )
            priorities[s.priority] = s.name

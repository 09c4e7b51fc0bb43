"""Which segments can be evaluated this run, and what the others keep.

A rule can parse yet not compile (``attr.created_at > 5``, an unknown function or event type,
a plugin's function that fails). :func:`validate` compiles every segment on its own, so one
broken segment is named with its problem and the others still evaluate. A segment that cannot
be evaluated is *held*: the broken one itself, every segment that depends on it through
``in_segment``, and every member of a group one of them belongs to (a group is decided as a
whole). :func:`carry_over` gives held segments the membership of the last run that evaluated
them, so their tags, lists and attributes stay as they are in every destination: a typo never
turns into everyone leaving a segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
from sqlglot import exp

from segsync.scores import model_of

from .compiler import compile_rule
from .errors import RuleError, SegmentConfigError, did_you_mean
from .evaluate import MEMBERSHIP_TABLE
from .functions import FunctionRegistry
from .definitions import GroupDef, SegmentDef
from .query import build_query


@dataclass
class Validation:
    """``segments``/``groups``: what can be evaluated. ``problems``: segment → why it cannot
    compile (rendered with line, column and caret). ``held``: every segment left out → why
    (the problem itself, or the broken segment it depends on)."""

    segments: list[SegmentDef]
    groups: dict[str, GroupDef]
    problems: dict[str, str] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    # The per-contact score models (segsync.scores) the compiled rules read.
    score_models: frozenset[str] = frozenset()


def validate(
    segments: Sequence[SegmentDef],
    groups: Mapping[str, GroupDef] | None,
    as_of: datetime,
    registry: FunctionRegistry,
    unavailable_scores: Mapping[str, str] | None = None,
) -> Validation:
    """Compile every segment on its own; split them into evaluable and held ones.

    ``unavailable_scores``: score models (segsync.scores) that cannot be read → why; a rule
    reading one is a problem like a rule that does not compile."""
    unavailable_scores = unavailable_scores or {}
    score_models: set[str] = set()
    groups = dict(groups or {})
    names = {s.name for s in segments}

    def ref(name: str) -> exp.Expression:
        if name not in names:
            raise KeyError(f"unknown segment {name!r}{did_you_mean(name, names)}")
        return exp.column(name)

    problems: dict[str, str] = {}
    depends: dict[str, list[str]] = {}
    for s in segments:
        if s.tree is None:
            continue
        try:
            compiled = compile_rule(s.tree, registry=registry, as_of=as_of, segment_ref=ref,
                                    text=s.rule)
        except RuleError as e:
            problems[s.name] = str(e.with_segment(s.name))
            continue
        models = {m for m in map(model_of, compiled.features) if m is not None}
        score_models |= models
        missing = [unavailable_scores[m] for m in sorted(models) if m in unavailable_scores]
        if missing:
            problems[s.name] = f"segment {s.name!r}: {'; '.join(missing)}"
            continue
        depends[s.name] = compiled.depends
    held = dict(problems)
    changed = True
    while changed:  # until no more segments depend on a held one
        changed = False
        for s in segments:
            if s.name in held:
                continue
            cause = next((d for d in depends.get(s.name, ()) if d in held), None)
            if cause is not None:
                held[s.name] = f"segment {s.name!r} depends on segment {cause!r}, which cannot be evaluated"
            elif s.group is not None:
                cause = next((m.name for m in segments if m.group == s.group and m.name in held), None)
                if cause is None:
                    continue
                held[s.name] = (f"segment {s.name!r} is in group {s.group!r} with segment "
                                f"{cause!r}, which cannot be evaluated")
            else:
                continue
            changed = True
    usable = [s for s in segments if s.name not in held]
    usable_groups = {g: d for g, d in groups.items() if all(
        s.name not in held for s in segments if s.group == g)}
    try:
        build_query(usable, usable_groups, as_of, registry)
    except SegmentConfigError as e:  # a cycle of in_segment(): nothing can be ordered
        for s in usable:
            if depends.get(s.name):
                problems[s.name] = f"segment {s.name!r}: {e}"
            held[s.name] = f"segment {s.name!r} was not evaluated: {e}"
        usable, usable_groups = [], {}
    return Validation(usable, usable_groups, problems, held, frozenset(score_models))


def carry_over(con: duckdb.DuckDBPyConnection, segments: Sequence[str]) -> int:
    """Add to ``segment_membership`` each of ``segments``' members as of the last run that
    evaluated it (its size is in that run's counts); return the rows added."""
    added = 0
    for name in segments:
        added += con.execute(
            f"""
            INSERT INTO {MEMBERSHIP_TABLE}
            SELECT segment, contact_key FROM segment_snapshots
            WHERE segment = $segment AND run_id = (
                SELECT max(id) FROM runs
                WHERE counts IS NOT NULL
                  AND list_contains(json_keys(counts, '$.segments'), $segment))
            """,
            {"segment": name},
        ).fetchall()[0][0]
    return added

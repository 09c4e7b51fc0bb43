"""``explain``: why a contact is (not) in a segment, predicate by predicate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
from . import ast
from .builtins import default_registry
from .errors import SegmentConfigError
from .evaluate import _aware, _resolve
from .functions import FunctionRegistry
from .definitions import GroupDef, SegmentDef, group_members
from .query import build_query

if TYPE_CHECKING:
    from segsync.engines import Engine


@dataclass(frozen=True)
class Step:
    """One sub-expression of the rule: nesting depth (0 = whole rule), its text, its value."""

    depth: int
    text: str
    value: object


@dataclass(frozen=True)
class Explanation:
    segment: str
    contact_key: str
    as_of: datetime
    member: bool  # final membership, after group resolution
    matched_rule: bool | None  # the rule alone (None for a catch-all)
    steps: tuple[Step, ...]
    note: str = ""  # e.g. which higher-priority segment of the group took the contact
    sql: str = ""  # the query that computed the steps, exactly as the store or engine ran it

    def format(self) -> str:
        head = (f"{self.contact_key} is {'' if self.member else 'NOT '}in {self.segment!r} "
                f"as of {self.as_of.isoformat()}")
        lines = [head] + [f"{'  ' * (s.depth + 1)}{s.text}  =>  {s.value!r}" for s in self.steps]
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def explain(
    con: duckdb.DuckDBPyConnection,
    segment: SegmentDef | str,
    contact_key: str,
    as_of: datetime,
    *,
    segments: Sequence[SegmentDef] = (),
    groups: Mapping[str, GroupDef] | None = None,
    registry: FunctionRegistry | None = None,
    engine: Engine | None = None,
) -> Explanation:
    """Evaluate every sub-expression of ``segment``'s rule for one contact at ``as_of``.

    Runs the same query as :func:`evaluate` (ranks still compare against all contacts),
    filtered to ``contact_key``; on ``engine`` when given (an external one, docs/scale.md),
    else on ``con``. Raises ``SegmentConfigError`` for an unknown contact.
    """
    as_of = _aware(as_of)
    target, segments = _resolve(segment, segments)
    segment_query = build_query(segments, groups, as_of, registry or default_registry(),
                      only=[target.name], dialect=engine.dialect if engine else "duckdb")
    compiled = segment_query.compiled.get(target.name)
    steps = compiled.steps if compiled else []
    extra = [(f"e_{i}", e.copy()) for i, (_, _, e) in enumerate(steps)]
    members = group_members(segment_query.segments, segment_query.groups) if target.group else {}
    siblings = members.get(target.group, []) if target.group else []
    extra += [(f"s_{i}", segment_query.compiled[s.name].expr.copy()) for i, s in enumerate(siblings)]
    select = segment_query.select(extra=extra, contact_key=contact_key)
    sql = engine.render(select) if engine is not None else select.sql("duckdb")
    rows = engine.rows(sql) if engine is not None else con.execute(sql).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise SegmentConfigError(f"no contact {contact_key!r} in the store")
    values = dict(zip(["contact_key", *[segment_query.column[s.name] for s in segment_query.segments],
                       *[a for a, _ in extra]], row))
    member = bool(values[segment_query.column[target.name]])
    out = [Step(d, ast.to_text(node), values[f"e_{i}"]) for i, (d, node, _) in enumerate(steps)]
    note = ""
    matched = bool(values["e_0"]) if steps else None
    if target.group:
        winner = next((s.name for i, s in enumerate(siblings) if values[f"s_{i}"]), None)
        if winner and winner != target.name:
            note = (f"group {target.group!r}: {winner!r} has higher priority and matched, so "
                    f"the contact is there (groups are exclusive)")
        elif winner is None and segment_query.groups[target.group].catch_all:
            note = (f"group {target.group!r}: no segment matched, so the contact is in the "
                    f"catch-all {segment_query.groups[target.group].catch_all!r}")
    return Explanation(target.name, contact_key, as_of, member, matched, tuple(out), note, sql)


__all__ = ["Explanation", "Step", "explain"]

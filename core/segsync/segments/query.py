"""Assembles compiled rules into one set-based query over the store.

Shape of the query (each step a subquery of the next)::

    base    contacts LEFT JOIN (GROUP BYs over events: every event feature, deduplicated;
                              see event_aggregates)
                     LEFT JOIN (each joined feature, e.g. latest consent)
    rows    base + row features (hashes, NTILE ranks over all contacts)
    level 0 + membership columns m_<i> of segments that depend on no other segment; for
            each group a g_<j> column (CASE: index of the first matching member by priority,
            the catch-all's index otherwise), then m_<i> = (g_<j> = index) for its members
    level 1 + segments depending only on level 0 (in_segment), and so on

Segment and group names appear in SQL only as string literals; columns are numbered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

from .compiler import CompiledRule, compile_rule
from .errors import RuleError, SegmentConfigError, did_you_mean
from .definitions import GroupDef, SegmentDef, check_segments, group_members
from .event_aggregates import CONTACT_ID, event_aggregates
from .functions import CONTACTS_TABLE, Feature, FunctionRegistry


@dataclass
class SegmentQuery:
    """Everything needed to render the evaluation query for ``segments`` at ``as_of``."""

    as_of: datetime
    segments: list[SegmentDef]
    groups: dict[str, GroupDef]
    column: dict[str, str]  # segment name -> membership column
    compiled: dict[str, CompiledRule]
    features: dict[str, Feature]
    levels: list[list[SegmentDef | str]]  # per level: ungrouped segments and group names
    group_column: dict[str, str] = field(default_factory=dict)
    # The event and joined features in the order the rules name them: the same order at every
    # as_of (feature names hash their SQL, windows included), so a persisted table of them can
    # number its columns (see incremental).
    stored: list[str] = field(default_factory=list)

    def select(
        self,
        *,
        extra: Sequence[tuple[str, exp.Expression]] = (),
        contact_key: str | None = None,
        features_table: str | None = None,
    ) -> exp.Select:
        """``contact_key``, every ``m_<i>``, then ``extra`` columns (computed last).

        With ``contact_key`` the result is that one contact's row; ranks still see everyone.
        With ``features_table`` the event and joined features are read from that table (rows
        of :meth:`stored_features`) rather than computed.
        """
        query = self._rows(features_table)
        members = group_members(self.segments, self.groups)
        for n, level in enumerate(self.levels):
            first: list[exp.Expression] = [exp.Star()]
            second: list[exp.Expression] = [exp.Star()]
            for item in level:
                if isinstance(item, SegmentDef):
                    first.append(self.compiled[item.name].expr.copy().as_(self.column[item.name]))
                    continue
                gcol = self.group_column[item]
                ifs = [
                    exp.If(this=self.compiled[s.name].expr.copy(), true=exp.Literal.number(k))
                    for k, s in enumerate(members[item], start=1)
                ]
                catch = self.groups[item].catch_all
                default = exp.Literal.number(0) if catch else exp.null()
                # A group of only its catch-all has no WHEN: CASE without one is not SQL.
                first.append((exp.Case(ifs=ifs, default=default) if ifs else default).as_(gcol))
                ranked = [(k, s.name) for k, s in enumerate(members[item], start=1)]
                if catch:
                    ranked.append((0, catch))
                for k, name in ranked:
                    is_k = exp.EQ(this=exp.column(gcol), expression=exp.Literal.number(k))
                    second.append(exp.func("COALESCE", is_k, exp.false()).as_(self.column[name]))
            query = exp.select(*first).from_(query.subquery(f"l{n}a", copy=False), copy=False)
            if len(second) > 1:
                query = exp.select(*second).from_(query.subquery(f"l{n}b", copy=False), copy=False)
        outputs: list[exp.Expression] = [exp.column("contact_key")]
        outputs += [exp.column(self.column[s.name]) for s in self.segments]
        outputs += [e.as_(alias) for alias, e in extra]
        final = exp.select(*outputs).from_(query.subquery("segment_levels", copy=False), copy=False)
        if contact_key is not None:
            final = final.where(
                exp.EQ(this=exp.column("contact_key"), expression=exp.Literal.string(contact_key))
            )
        return final

    def _rows(self, features_table: str | None = None) -> exp.Select:
        feats = list(self.features.values())
        contact_cols = {f.name for f in feats if f.stage == "contact"} - {"contact_key"}
        cols: list[exp.Expression] = [exp.column("contact_key", "c")]
        cols += [exp.column(c, "c") for c in sorted(contact_cols)]
        base = exp.select().from_(exp.to_table(CONTACTS_TABLE).as_("c"))
        if features_table is not None:
            cols += [exp.column(stored_column(n), "s").as_(name)
                     for n, name in enumerate(self.stored)]
            base = base.join(exp.to_table(features_table).as_("s"),
                             on=_on("s", CONTACT_ID), join_type="left")
        else:
            base, more = self._computed(base)
            cols += more
        base = base.select(*cols)
        rows = [f.expr.copy().as_(f.name) for f in feats if f.stage == "row"]
        if not rows:
            return base
        return exp.select(exp.Star(), *rows).from_(base.subquery("base", copy=False), copy=False)

    def _computed(
        self, base: exp.Select, only: exp.Query | None = None
    ) -> tuple[exp.Select, list[exp.Expression]]:
        """``base`` (contacts as ``c``) joined to the event and joined features; their columns.

        ``only`` (a query of ``contact_id, contact_key``) restricts the aggregation to those
        contacts' rows.
        """
        feats = list(self.features.values())
        cols: list[exp.Expression] = []
        events = [f for f in feats if f.stage == "event"]
        within = None
        if only is not None:
            within = exp.column(CONTACT_ID).isin(
                query=exp.select(CONTACT_ID).from_(only.copy().subquery("only", copy=False)))
        for n, query in enumerate(event_aggregates(events, self.as_of, within)):
            alias = f"ev{n}"
            cols += [exp.column(c, alias) for c in query.named_selects if c != CONTACT_ID]
            base = base.join(query.subquery(alias, copy=False), on=_on(alias, CONTACT_ID),
                             join_type="left", copy=False)
        for n, f in enumerate(f for f in feats if f.stage == "joined"):
            alias = f"j{n}"
            cols.append(exp.column("value", alias).as_(f.name))
            joined = f.expr.copy()
            if only is not None:
                keys = exp.select("contact_key").from_(only.copy().subquery("only", copy=False))
                joined = (exp.select(exp.Star()).from_(joined.subquery("all_contacts", copy=False))
                          .where(exp.column("contact_key").isin(query=keys)))
            base = base.join(joined.subquery(alias, copy=False), on=_on(alias), join_type="left",
                             copy=False)
        return base, cols

    def stored_features(self, only: exp.Query | None = None) -> exp.Select:
        """``contact_id``, ``contact_key`` and the event and joined features as columns
        ``f0``, ``f1``, … (in :attr:`stored` order), per contact (of ``only``, when given:
        a query of ``contact_id, contact_key``)."""
        base = exp.select().from_(exp.to_table(CONTACTS_TABLE).as_("c"))
        if only is not None:
            base = base.where(exp.column(CONTACT_ID, "c").isin(
                query=exp.select(CONTACT_ID).from_(only.copy().subquery("only", copy=False))))
        base, cols = self._computed(base, only)
        by_name = {c.alias_or_name: c.this if isinstance(c, exp.Alias) else c for c in cols}
        return base.select(
            exp.column(CONTACT_ID, "c"), exp.column("contact_key", "c"),
            *[by_name[name].copy().as_(stored_column(n)) for n, name in enumerate(self.stored)],
        )


def stored_column(n: int) -> str:
    """The column of a persisted feature table holding the ``n``-th stored feature."""
    return f"f{n}"


def _on(alias: str, key: str = "contact_key") -> exp.Expression:
    return exp.EQ(this=exp.column(key, alias), expression=exp.column(key, "c"))


def build_query(
    segments: Sequence[SegmentDef],
    groups: Mapping[str, GroupDef] | None,
    as_of: datetime,
    registry: FunctionRegistry,
    *,
    only: Sequence[str] | None = None,
    dialect: str = "duckdb",
) -> SegmentQuery:
    """Compile every segment, order them by dependency and check for cycles.

    ``only`` restricts the query to those segments plus what they need (their dependencies,
    and every member of a group they belong to). Raises :class:`RuleError` (naming the
    segment) and :class:`SegmentConfigError`. ``dialect``: the engine the query will run on
    (render it with :func:`segsync.segments.dialects.render`).
    """
    groups = dict(groups or {})
    segments = list(segments)
    check_segments(segments, groups)
    by_name = {s.name: s for s in segments}
    column = {s.name: f"m_{i}" for i, s in enumerate(segments)}

    def ref(name: str) -> exp.Expression:
        if name not in column:
            raise KeyError(f"unknown segment {name!r}{did_you_mean(name, column)}")
        return exp.column(column[name])

    compiled: dict[str, CompiledRule] = {}
    for s in segments:
        if s.tree is None:
            continue
        try:
            compiled[s.name] = compile_rule(
                s.tree, registry=registry, as_of=as_of, segment_ref=ref, text=s.rule,
                dialect=dialect,
            )
        except RuleError as e:
            raise e.with_segment(s.name) from None

    # Dependency graph over "units": an ungrouped segment, or a whole group (its members are
    # decided together, so depending on one member means depending on the group).
    def unit(name: str) -> str:
        g = by_name[name].group
        return f"group:{g}" if g else f"segment:{name}"

    deps: dict[str, set[str]] = {}
    for s in segments:
        deps.setdefault(unit(s.name), set())
        if s.name in compiled:
            deps[unit(s.name)].update(unit(d) for d in compiled[s.name].depends)

    if only is not None:
        wanted, stack = set(), [unit(n) for n in only]
        while stack:
            u = stack.pop()
            if u not in wanted:
                wanted.add(u)
                stack.extend(deps[u])
        segments = [s for s in segments if unit(s.name) in wanted]
        deps = {u: d for u, d in deps.items() if u in wanted}
        groups = {g: v for g, v in groups.items() if f"group:{g}" in wanted}

    depth: dict[str, int] = {}
    visiting: list[str] = []

    def visit(u: str) -> int:
        if u in depth:
            return depth[u]
        if u in visiting:
            cycle = visiting[visiting.index(u):] + [u]
            raise SegmentConfigError(
                "segments depend on each other in a cycle: "
                + " -> ".join(c.split(":", 1)[1] + (" (group)" if c.startswith("group:") else "")
                              for c in cycle)
            )
        visiting.append(u)
        d = 1 + max((visit(v) for v in deps[u]), default=-1)
        visiting.pop()
        depth[u] = d
        return d

    for u in sorted(deps):
        visit(u)
    levels: list[list[SegmentDef | str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    placed: set[str] = set()
    for s in segments:
        u = unit(s.name)
        if u in placed:
            continue
        placed.add(u)
        levels[depth[u]].append(s if s.group is None else s.group)

    features: dict[str, Feature] = {}
    for s in segments:
        if s.name in compiled:
            for name, f in compiled[s.name].features.items():
                features.setdefault(name, f)
    stored = [name for name, f in features.items() if f.stage in ("event", "joined")]
    return SegmentQuery(
        as_of=as_of,
        segments=segments,
        groups=groups,
        column={s.name: column[s.name] for s in segments},
        compiled={n: c for n, c in compiled.items() if n in {s.name for s in segments}},
        features=dict(sorted(features.items())),
        levels=levels,
        group_column={g: f"g_{i}" for i, g in enumerate(sorted(groups))},
        stored=stored,
    )

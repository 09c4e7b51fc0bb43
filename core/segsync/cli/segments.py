"""``segsync segments …``: inspect segments against the store, read-only.

Sizes and members come from evaluating the project's segments at ``--as-of`` (default now) on
a read-only connection; evaluation only creates TEMP tables. On an external engine
(docs/scale.md) the segments are evaluated there, into the engine's own session's
``segment_membership``, and every question (members, overlap, changes, history, performance)
is answered there: only the answer comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import as_of_option, json_option
from segsync.cli.output import console, echo_json
from segsync.cli.store import read_store
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.config import ProjectConfig
    from segsync.plugins import PluginHost
    from segsync.segments import SegmentDef
    from segsync.engines import Engine
    from segsync.engines.base import Source
    from segsync.segments.insights import Overlap
    from segsync.store import Store

_AS_OF = as_of_option("Evaluate as of this instant (ISO 8601 with a zone; default: now).")
_JSON = json_option("Machine-readable output.")


@dataclass
class Evaluated:
    """The project's segments evaluated at ``as_of``: on a read-only store connection, or on
    the project's external engine (open while the ``with evaluated(…)`` block runs)."""

    config: ProjectConfig
    store: Store
    as_of: datetime
    sizes: dict[str, int]
    # Where the memberships are: the store's connection, or the engine.
    source: Source

    @property
    def engine(self) -> Engine | None:
        """The external engine the segments were evaluated on (None: the store)."""
        return None if self.source is self.store.con else self.source  # type: ignore[return-value]

    @property
    def segments(self) -> list[SegmentDef]:
        return list(self.config.segments.segments)

    def segment(self, name: str) -> SegmentDef:
        return find_segment(self.config, name, listing=True)


def find_segment(config: ProjectConfig, name: str, *, listing: bool = False) -> SegmentDef:
    """The segment ``name``; else a usage error suggesting the closest name (``listing``: and
    naming every segment)."""
    from segsync.segments.errors import did_you_mean

    names = [s.name for s in config.segments.segments]
    for s in config.segments.segments:
        if s.name == name:
            return s
    every = f" (segments: {', '.join(names) or 'none'})" if listing else ""
    raise click.ClickException(f"no segment {name!r}{did_you_mean(name, names)}{every}")


@contextmanager
def evaluated(ctx: Context, config: ProjectConfig, as_of: datetime | None) -> Iterator[Evaluated]:
    from segsync.cli.consent import project_engine
    from segsync.engines.stage import evaluate_members
    from segsync.segments import SegmentError, evaluate

    at = as_of or datetime.now(timezone.utc)
    with read_store(ctx, config.store_path) as store, project_engine(ctx, config) as engine:
        try:
            if engine is None:
                sizes = evaluate(store.con, config.segments.segments, config.segments.groups, at,
                                 ctx.host.segment_registry())
            else:
                sizes = evaluate_members(engine, config.segments, at, ctx.host.segment_registry())
        except SegmentError as exc:
            raise click.ClickException(str(exc)) from None
        yield Evaluated(config, store, at, sizes, store.con if engine is None else engine)


def _rule_line(segment: SegmentDef) -> str:
    return " ".join(segment.rule.split()) if segment.rule else "(catch-all)"


def print_overview(ev: Evaluated) -> None:
    """Segments with group and size, then each group's split, then flagged overlaps."""
    from rich.table import Table

    from segsync.segments.definitions import group_members

    table = Table(title=f"Segments as of {ev.as_of:%Y-%m-%d %H:%M} UTC", title_justify="left")
    table.add_column("segment", no_wrap=True)
    table.add_column("group", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("rule")
    for s in ev.segments:
        table.add_row(s.name, s.group or "-", str(ev.sizes.get(s.name, 0)), _rule_line(s))
    console().print(table)
    groups = ev.config.segments.groups
    members = group_members(ev.segments, groups)
    for gname, group in groups.items():
        names = [s.name for s in members[gname]] + ([group.catch_all] if group.catch_all else [])
        total = sum(ev.sizes.get(n, 0) for n in names)
        split = ", ".join(f"{n} {ev.sizes.get(n, 0)}" for n in names)
        console().print(f"Group {gname} ({total} contacts, exclusive): {split}", markup=False)


def print_overlap(rows: list[Overlap]) -> None:
    from rich.table import Table

    table = Table(title="Overlap (shares of each segment's size)", title_justify="left")
    table.add_column("segment a", no_wrap=True)
    table.add_column("segment b", no_wrap=True)
    for col in ("both", "% of a", "% of b"):
        table.add_column(col, justify="right")
    table.add_column("note")
    for o in rows:
        if o.exclusive:
            note = "exclusive (same group)"
        elif o.flagged:
            note = "! both sent to " + ", ".join(o.shared_destinations)
        else:
            note = ""
        table.add_row(o.a, o.b, str(o.both), f"{o.share_of_a:.1%}", f"{o.share_of_b:.1%}", note)
    console().print(table)


def overlap_rows(ev: Evaluated, host: PluginHost, names: tuple[str, ...] = ()) -> list[Overlap]:
    from segsync.insights import destinations
    from segsync.segments import insights

    chosen = [ev.segment(n) for n in names] if names else ev.segments
    return insights.overlap(ev.source, chosen, ev.sizes, destinations(ev.config, host))


# -- the commands ------------------------------------------------------------------------------


@click.group("segments")
def segments_group() -> None:
    """Inspect segments: definitions, sizes, members, overlap, history, performance."""


@segments_group.command("list")
@_AS_OF
@_JSON
@pass_ctx
def list_segments(ctx: Context, as_of: datetime | None, as_json: bool) -> None:
    """Every segment with its group, rule and size."""
    with evaluated(ctx, ctx.config(), as_of) as ev:
        if as_json:
            echo_json([
                {"name": s.name, "group": s.group, "rule": s.rule, "size": ev.sizes.get(s.name, 0)}
                for s in ev.segments
            ])
            return
        print_overview(ev)


@segments_group.command("show")
@click.argument("name")
@_AS_OF
@click.option("--limit", default=10, show_default=True, help="Members to show as a sample.")
@click.option("--sql", "show_sql", is_flag=True, help="Also print the SQL selecting the members.")
@click.option("--dialect", help="SQL dialect for --sql (default: the engine's, exactly as it runs there).")
@pass_ctx
def show(ctx: Context, name: str, as_of: datetime | None, limit: int, show_sql: bool, dialect: str | None) -> None:
    """A segment's definition, size and a sample of its members."""
    from segsync.segments import compile_sql, insights

    with evaluated(ctx, ctx.config(), as_of) as ev:
        s = ev.segment(name)
        echo = click.echo  # plain lines: definitions and SQL must not be re-wrapped
        echo(f"{s.name}" + (f" — {s.description}" if s.description else ""))
        if s.group:
            group = ev.config.segments.groups[s.group]
            role = "catch-all" if group.catch_all == s.name else f"priority {s.priority}"
            echo(f"  group: {s.group} ({role}; exclusive)")
        echo(f"  rule: {_rule_line(s)}")
        for dest, rep in s.destinations.items():
            shown = ", ".join(f"{k}={v!r}" for k, v in rep.model_dump(exclude_none=True).items())
            echo(f"  destination {dest}: {shown}")
        if not s.destinations:
            echo("  destinations: every destination, as a tag named after the segment")
        echo(f"  size as of {ev.as_of.isoformat()}: {ev.sizes.get(s.name, 0)}")
        sample = insights.members(ev.source, s.name, limit)
        if sample:
            echo(f"  sample: {', '.join(sample)}")
        if show_sql:
            # On an external engine: its dialect and table names, as the engine runs it.
            engine = ev.engine
            dialect = dialect or (engine.dialect if engine else "duckdb")
            tables = engine.renamed_tables() if engine and dialect == engine.dialect else None
            echo("")
            echo(compile_sql(s.name, ev.segments, ev.config.segments.groups, as_of=ev.as_of,
                             registry=ctx.host.segment_registry(), dialect=dialect, tables=tables))


@segments_group.command("preview")
@click.argument("name")
@_AS_OF
@click.option("--limit", default=20, show_default=True, help="Members to list.")
@_JSON
@pass_ctx
def preview(ctx: Context, name: str, as_of: datetime | None, limit: int, as_json: bool) -> None:
    """Who would be in a segment at --as-of, and how that differs from the latest run."""
    from segsync.segments import insights

    with evaluated(ctx, ctx.config(), as_of) as ev:
        s = ev.segment(name)
        change = insights.change_since_last_run(ev.source, s.name)
        sample = insights.members(ev.source, s.name, limit)
    size = ev.sizes.get(s.name, 0)
    if as_json:
        echo_json({"name": s.name, "as_of": ev.as_of.isoformat(), "size": size,
                   "since_run": change.run_id, "entries": change.entries,
                   "exits": change.exits, "sample": sample})
        return
    click.echo(f"{s.name} as of {ev.as_of.isoformat()}: {size} contacts")
    if change.run_id is not None:
        click.echo(f"  vs run {change.run_id}: +{change.entries} would enter, -{change.exits} would exit")
    for key in sample:
        click.echo(f"  {key}")
    if size > len(sample):
        click.echo(f"  … and {size - len(sample)} more (segsync segments members {s.name})")


@segments_group.command("members")
@click.argument("name")
@_AS_OF
@_JSON
@pass_ctx
def members_cmd(ctx: Context, name: str, as_of: datetime | None, as_json: bool) -> None:
    """Every member's email address, one per line (--json: an array)."""
    from segsync.segments import insights

    with evaluated(ctx, ctx.config(), as_of) as ev:
        keys = insights.members(ev.source, ev.segment(name).name)
    if as_json:
        echo_json(keys)
    else:
        for key in keys:
            click.echo(key)


@segments_group.command("explain")
@click.argument("name")
@click.argument("email")
@_AS_OF
@click.option("--sql", "show_sql", is_flag=True,
              help="Also print the query that computed the values, as the store or engine ran it.")
@pass_ctx
def explain_cmd(ctx: Context, name: str, email: str, as_of: datetime | None, show_sql: bool) -> None:
    """Why EMAIL is (not) in a segment: every predicate of the rule with its value."""
    from segsync.model import InvalidEmail, normalize_email
    from segsync.segments import SegmentError, explain

    try:
        key = normalize_email(email)
    except InvalidEmail as exc:
        raise click.BadParameter(f"{email!r}: {exc}") from None
    from segsync.cli.consent import project_engine

    config = ctx.config()
    with read_store(ctx, config.store_path) as store, project_engine(ctx, config) as engine:
        segment = find_segment(config, name)
        try:
            result = explain(store.con, segment, key, as_of or datetime.now(timezone.utc),
                             segments=config.segments.segments, groups=config.segments.groups,
                             registry=ctx.host.segment_registry(), engine=engine)
        except SegmentError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(result.format())
    if show_sql:
        click.echo("")
        click.echo(result.sql)


@segments_group.command("overlap")
@click.argument("names", nargs=-1)
@_AS_OF
@_JSON
@pass_ctx
def overlap_cmd(ctx: Context, names: tuple[str, ...], as_of: datetime | None, as_json: bool) -> None:
    """Pairwise overlap of NAMES (default: all segments); flags overlapping segments that are
    not exclusive and are sent to the same destination."""
    with evaluated(ctx, ctx.config(), as_of) as ev:
        rows = overlap_rows(ev, ctx.host, names)
    if as_json:
        echo_json([
            {"a": o.a, "b": o.b, "both": o.both, "share_of_a": o.share_of_a,
             "share_of_b": o.share_of_b, "exclusive": o.exclusive,
             "shared_destinations": list(o.shared_destinations), "flagged": o.flagged}
            for o in rows
        ])
        return
    print_overlap(rows)


@segments_group.command("history")
@click.argument("name")
@_JSON
@pass_ctx
def history_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Size, entries and exits of a segment per sync run (from the stored snapshots)."""
    from rich.table import Table

    from segsync.segments import insights
    from segsync.segments.errors import did_you_mean

    from segsync.cli.consent import project_engine

    config = ctx.config()
    with read_store(ctx, config.store_path) as store, project_engine(ctx, config) as engine:
        # On an external engine the runs snapshot there (docs/scale.md): counted there.
        rows = insights.history(store.con, name, engine)
    if not rows:
        known = [s.name for s in config.segments.segments]
        raise click.ClickException(f"no run has evaluated segment {name!r}{did_you_mean(name, known)}")
    if as_json:
        echo_json([
            {"run_id": r.run_id, "as_of": r.as_of.isoformat(), "size": r.size,
             "entries": r.entries, "exits": r.exits} for r in rows
        ])
        return
    table = Table(title=f"{name} per run", title_justify="left")
    for col in ("run", "as of", "size", "entries", "exits"):
        table.add_column(col, justify="left" if col == "as of" else "right")
    for r in rows:
        table.add_row(str(r.run_id), f"{r.as_of:%Y-%m-%d %H:%M}", str(r.size),
                      f"+{r.entries}", f"-{r.exits}")
    console().print(table)


@segments_group.command("report")
@click.argument("names", nargs=-1)
@_AS_OF
@click.option("--window", default="30d", show_default=True, help="How far back to look (24h, 30d, 2w…).")
@_JSON
@pass_ctx
def report_cmd(ctx: Context, names: tuple[str, ...], as_of: datetime | None, window: str, as_json: bool) -> None:
    """Per segment: sends, open, click, conversion, unsubscribe and bounce rates, and revenue
    per email, of its current members over the window."""
    from rich import box
    from rich.table import Table

    from segsync.segments import insights

    try:
        span = insights.parse_window(window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    with evaluated(ctx, ctx.config(), as_of) as ev:
        chosen = [ev.segment(n).name for n in names] or [s.name for s in ev.segments]
        rows = insights.report(ev.source, chosen, ev.as_of, span)
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    # Nine columns: a light box keeps them readable in an 80-column terminal.
    table = Table(title=f"Segment performance, {window} to {ev.as_of:%Y-%m-%d %H:%M} UTC "
                        "(rates per send)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    table.add_column("segment", no_wrap=True)
    for col in ("size", "sends", "open", "click", "conv", "unsub", "bounce", "rev/mail"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for r in rows:
        d = r.to_dict()
        table.add_row(r.segment, str(r.members), str(r.sends),
                      *(_percent(d[k]) for k in ("open_rate", "click_rate", "conversion_rate",
                                                 "unsubscribe_rate", "bounce_rate")),
                      f"{d['revenue_per_email']:.2f}")
    console().print(table)


def _percent(rate: float) -> str:
    return f"{rate:.0%}" if rate >= 0.1 else f"{rate:.1%}"


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(segments_group)

"""``segsync segments …``: inspect segments against the store, read-only.

A built-in plugin: the commands are added through ``segsync_register_commands`` like any
third party's. Sizes and members come from evaluating the project's segments at ``--as-of``
(default now) on a read-only connection; evaluation only creates TEMP tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import click
from rich import box
from rich.table import Table

from segsync.cli import Context, _parse_time, console, pass_ctx
from segsync.config import ConfigError, ProjectConfig, load_config
from segsync.connector import WRITE_CAPABILITIES
from segsync.model import InvalidEmail, normalize_email
from segsync.plugins import PluginHost, hookimpl
from segsync.store import Store

from . import SegmentDef, SegmentError, compile_sql, evaluate, explain
from . import insights
from .errors import did_you_mean
from .definitions import group_members

_AS_OF = click.option(
    "--as-of", "as_of", callback=lambda ctx, param, value: _parse_time(value),
    help="Evaluate as of this instant (ISO 8601 with a zone; default: now).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@dataclass
class Evaluated:
    """The project's segments evaluated at ``as_of`` on a read-only store connection."""

    config: ProjectConfig
    store: Store
    as_of: datetime
    sizes: dict[str, int]

    @property
    def segments(self) -> list[SegmentDef]:
        return list(self.config.segments.segments)

    def segment(self, name: str) -> SegmentDef:
        for s in self.segments:
            if s.name == name:
                return s
        names = [s.name for s in self.segments]
        raise click.ClickException(
            f"no segment {name!r}{did_you_mean(name, names)} (segments: {', '.join(names) or 'none'})"
        )


def project_config(ctx: Context) -> ProjectConfig:
    # Packs come from this process's host, so in-process plugins' packs are found too.
    return load_config(ctx.config_path, ctx.host)


@contextmanager
def evaluated(config: ProjectConfig, host: PluginHost, as_of: datetime | None) -> Iterator[Evaluated]:
    at = as_of or datetime.now(timezone.utc)
    with Store(config.store_path, read_only=True) as store:
        try:
            sizes = evaluate(store.con, config.segments.segments, config.segments.groups, at,
                             host.segment_registry())
        except SegmentError as exc:
            raise click.ClickException(str(exc)) from None
        yield Evaluated(config, store, at, sizes)


def destinations(config: ProjectConfig, host: PluginHost) -> list[str]:
    """The connections a sync pushes to (what the connector can write, unless push = false)."""
    types = host.connector_types()
    out = []
    for name, connection in config.connections.items():
        if connection.push is False:
            continue
        cls = types.get(connection.type)
        if cls is None:
            continue
        try:
            from segsync.config import instantiate_connection

            connector = instantiate_connection(cls, connection, config.project_dir)
            try:
                writes = bool(connector.enabled_capabilities() & WRITE_CAPABILITIES)
            finally:
                connector.close()
        except (ConfigError, Exception):  # settings incomplete here: trust the file
            writes = connection.push is True
        if writes:
            out.append(name)
    return out


def _rule_line(segment: SegmentDef) -> str:
    return " ".join(segment.rule.split()) if segment.rule else "(catch-all)"


def print_overview(ev: Evaluated, host: PluginHost) -> None:
    """Segments with group and size, then each group's split, then flagged overlaps."""
    table = Table(title=f"Segments as of {ev.as_of:%Y-%m-%d %H:%M} UTC", title_justify="left")
    table.add_column("segment", no_wrap=True)
    table.add_column("group", no_wrap=True)
    table.add_column("size", justify="right")
    table.add_column("rule")
    for s in ev.segments:
        table.add_row(s.name, s.group or "-", str(ev.sizes.get(s.name, 0)), _rule_line(s))
    console.print(table)
    groups = ev.config.segments.groups
    members = group_members(ev.segments, groups)
    for gname, group in groups.items():
        names = [s.name for s in members[gname]] + ([group.catch_all] if group.catch_all else [])
        total = sum(ev.sizes.get(n, 0) for n in names)
        split = ", ".join(f"{n} {ev.sizes.get(n, 0)}" for n in names)
        console.print(f"Group {gname} ({total} contacts, exclusive): {split}", markup=False)


def print_overlap(rows: list[insights.Overlap]) -> None:
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
    console.print(table)


def overlap_rows(ev: Evaluated, host: PluginHost, names: tuple[str, ...] = ()) -> list[insights.Overlap]:
    chosen = [ev.segment(n) for n in names] if names else ev.segments
    return insights.overlap(ev.store.con, chosen, ev.sizes, destinations(ev.config, host))


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
    with evaluated(project_config(ctx), ctx.host, as_of) as ev:
        if as_json:
            click.echo(json.dumps([
                {"name": s.name, "group": s.group, "rule": s.rule, "size": ev.sizes.get(s.name, 0)}
                for s in ev.segments
            ], indent=2))
            return
        print_overview(ev, ctx.host)


@segments_group.command("show")
@click.argument("name")
@_AS_OF
@click.option("--limit", default=10, show_default=True, help="Members to show as a sample.")
@click.option("--sql", "show_sql", is_flag=True, help="Also print the SQL selecting the members.")
@click.option("--dialect", default="duckdb", show_default=True, help="SQL dialect for --sql.")
@pass_ctx
def show(ctx: Context, name: str, as_of: datetime | None, limit: int, show_sql: bool, dialect: str) -> None:
    """A segment's definition, size and a sample of its members."""
    with evaluated(project_config(ctx), ctx.host, as_of) as ev:
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
        sample = insights.members(ev.store.con, s.name, limit)
        if sample:
            echo(f"  sample: {', '.join(sample)}")
        if show_sql:
            echo("")
            echo(compile_sql(s.name, ev.segments, ev.config.segments.groups, as_of=ev.as_of,
                             registry=ctx.host.segment_registry(), dialect=dialect))


@segments_group.command("preview")
@click.argument("name")
@_AS_OF
@click.option("--limit", default=20, show_default=True, help="Members to list.")
@_JSON
@pass_ctx
def preview(ctx: Context, name: str, as_of: datetime | None, limit: int, as_json: bool) -> None:
    """Who would be in a segment at --as-of, and how that differs from the latest run."""
    with evaluated(project_config(ctx), ctx.host, as_of) as ev:
        s = ev.segment(name)
        change = insights.change_since_last_run(ev.store.con, s.name)
        sample = insights.members(ev.store.con, s.name, limit)
    size = ev.sizes.get(s.name, 0)
    if as_json:
        click.echo(json.dumps({"name": s.name, "as_of": ev.as_of.isoformat(), "size": size,
                               "since_run": change.run_id, "entries": change.entries,
                               "exits": change.exits, "sample": sample}, indent=2))
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
    with evaluated(project_config(ctx), ctx.host, as_of) as ev:
        keys = insights.members(ev.store.con, ev.segment(name).name)
    if as_json:
        click.echo(json.dumps(keys, indent=2))
    else:
        for key in keys:
            click.echo(key)


@segments_group.command("explain")
@click.argument("name")
@click.argument("email")
@_AS_OF
@pass_ctx
def explain_cmd(ctx: Context, name: str, email: str, as_of: datetime | None) -> None:
    """Why EMAIL is (not) in a segment: every predicate of the rule with its value."""
    try:
        key = normalize_email(email)
    except InvalidEmail as exc:
        raise click.BadParameter(f"{email!r}: {exc}") from None
    config = project_config(ctx)
    with Store(config.store_path, read_only=True) as store:
        segment = _find(config, name)
        try:
            result = explain(store.con, segment, key, as_of or datetime.now(timezone.utc),
                             segments=config.segments.segments, groups=config.segments.groups,
                             registry=ctx.host.segment_registry())
        except SegmentError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(result.format())


def _find(config: ProjectConfig, name: str) -> SegmentDef:
    names = [s.name for s in config.segments.segments]
    for s in config.segments.segments:
        if s.name == name:
            return s
    raise click.ClickException(f"no segment {name!r}{did_you_mean(name, names)}")


@segments_group.command("overlap")
@click.argument("names", nargs=-1)
@_AS_OF
@_JSON
@pass_ctx
def overlap_cmd(ctx: Context, names: tuple[str, ...], as_of: datetime | None, as_json: bool) -> None:
    """Pairwise overlap of NAMES (default: all segments); flags overlapping segments that are
    not exclusive and are sent to the same destination."""
    with evaluated(project_config(ctx), ctx.host, as_of) as ev:
        rows = overlap_rows(ev, ctx.host, names)
    if as_json:
        click.echo(json.dumps([
            {"a": o.a, "b": o.b, "both": o.both, "share_of_a": o.share_of_a,
             "share_of_b": o.share_of_b, "exclusive": o.exclusive,
             "shared_destinations": list(o.shared_destinations), "flagged": o.flagged}
            for o in rows
        ], indent=2))
        return
    print_overlap(rows)


@segments_group.command("history")
@click.argument("name")
@_JSON
@pass_ctx
def history_cmd(ctx: Context, name: str, as_json: bool) -> None:
    """Size, entries and exits of a segment per sync run (from the stored snapshots)."""
    config = project_config(ctx)
    with Store(config.store_path, read_only=True) as store:
        rows = insights.history(store.con, name)
    if not rows:
        known = [s.name for s in config.segments.segments]
        raise click.ClickException(f"no run has evaluated segment {name!r}{did_you_mean(name, known)}")
    if as_json:
        click.echo(json.dumps([
            {"run_id": r.run_id, "as_of": r.as_of.isoformat(), "size": r.size,
             "entries": r.entries, "exits": r.exits} for r in rows
        ], indent=2))
        return
    table = Table(title=f"{name} per run", title_justify="left")
    for col in ("run", "as of", "size", "entries", "exits"):
        table.add_column(col, justify="left" if col == "as of" else "right")
    for r in rows:
        table.add_row(str(r.run_id), f"{r.as_of:%Y-%m-%d %H:%M}", str(r.size),
                      f"+{r.entries}", f"-{r.exits}")
    console.print(table)


@segments_group.command("report")
@click.argument("names", nargs=-1)
@_AS_OF
@click.option("--window", default="30d", show_default=True, help="How far back to look (24h, 30d, 2w…).")
@_JSON
@pass_ctx
def report_cmd(ctx: Context, names: tuple[str, ...], as_of: datetime | None, window: str, as_json: bool) -> None:
    """Per segment: sends, open, click, conversion, unsubscribe and bounce rates, and revenue
    per email, of its current members over the window."""
    try:
        span = insights.parse_window(window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    with evaluated(project_config(ctx), ctx.host, as_of) as ev:
        chosen = [ev.segment(n).name for n in names] or [s.name for s in ev.segments]
        rows = insights.report(ev.store.con, chosen, ev.as_of, span)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
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
    console.print(table)


def _percent(rate: float) -> str:
    return f"{rate:.0%}" if rate >= 0.1 else f"{rate:.1%}"


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(segments_group)

"""The ``segsync`` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
import textwrap
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import pluggy
from rich.console import Console
from rich.table import Table

from segsync import logs
from segsync.config import (
    ConfigError,
    ConnectionConfig,
    ProjectConfig,
    env_prefix,
    instantiate_connection,
    load_config,
    secret_fields,
    store_problem,
)
from segsync.model import InvalidEmail, mask_email, normalize_email
from segsync.sync.rejections import forget_rejections
from segsync.plugins import PluginError, PluginHost
from segsync.progress import Reporter
from segsync.redaction import for_output
from segsync.sync.runner import RunOptions, Runner, RunSummary
from segsync.segments import SegmentError
from segsync.store import Store, StoreError, StoreLocked, StoreOutdated
from segsync.store import dicts as store_dicts
from segsync.store.status import describe, running_status

console = Console()


class Context:
    def __init__(self, config: str | None, verbose: int, host: PluginHost | None = None) -> None:
        self.config_path = config
        self.verbose = verbose
        self._host = host

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = load_host()
        return self._host

    def config(self) -> ProjectConfig:
        return load_config(self.config_path, self.host)


def load_host() -> PluginHost:
    host = PluginHost()
    for failure in host.failures:
        click.echo(f"warning: {failure.message()}", err=True)
    return host


pass_ctx = click.make_pass_decorator(Context)

# What a user can get wrong (the file, the store, a plugin, a rule): one line on stderr, exit 2.
USER_ERRORS = (ConfigError, StoreError, StoreLocked, PluginError, SegmentError, FileNotFoundError)


class SegsyncGroup(click.Group):
    """The top-level group: user errors of every command (plugins' included) end as
    ``error: ...`` and exit code 2, never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            click.echo(f"error: {for_output(str(exc))}", err=True)
            ctx.exit(2)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone; add Z or an offset")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise click.BadParameter(f"{value!r} is out of range in UTC") from None


@click.group(cls=SegsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config", envvar="SEGSYNC_CONFIG", help="Path to segsync.toml (default: ./segsync.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--wait", "wait", type=click.FloatRange(min=0), default=0, envvar="SEGSYNC_WAIT", metavar="SECONDS",
              help="Read commands: wait up to SECONDS for a running sync to release the store.")
@click.version_option(package_name="segsync")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int, wait: float) -> None:
    """Keep contacts, behaviour and consent in one place and every connected system in step."""
    logs.configure(logging.WARNING - 10 * min(verbose, 2))
    Store.reader_wait = wait
    # main() passes the plugin host it loaded to add plugin commands; reuse it.
    host = ctx.obj if isinstance(ctx.obj, PluginHost) else None
    ctx.obj = Context(config, verbose, host)


# -- projects ----------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--contacts", default=40, show_default=True, help="Sample contacts to generate.")
def init(directory: Path, contacts: int) -> None:
    """Create a project: a commented segsync.toml and sample data that sync without credentials."""
    try:
        from segsync.scaffold import write_project

        counts = write_project(directory, contacts=contacts)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {directory / 'segsync.toml'} and sample data ({counts['contacts']} contacts, "
               f"{counts['events']} events, {counts['consent']} consent records).")
    click.echo(f"Next: cd {directory} && segsync sync")


@cli.command()
@click.option("--dir", "directory", default="segsync-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--contacts", default=3000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--with", "emulated", multiple=True, metavar="TYPE",
              help="Also push to this connector's local emulator (e.g. --with mailchimp --with brevo).")
@pass_ctx
def demo(ctx: Context, directory: Path, contacts: int, seed: int, emulated: tuple[str, ...]) -> None:
    """Build a synthetic business and run a full sync on the embedded store."""
    from segsync.scaffold import write_project

    if (directory / "segsync.toml").exists():
        raise click.ClickException(f"{directory} already holds a project; pick another --dir or remove it")
    click.echo(f"Generating a synthetic business in {directory} ({contacts} contacts, two years of activity)…")
    counts = write_project(directory, contacts=contacts, seed=seed)
    click.echo(f"  {counts['contacts']} contact rows, {counts['events']} events, {counts['consent']} consent records")
    config = load_config(directory / "segsync.toml", ctx.host)
    with ExitStack() as stack:
        for type_name in emulated:
            _add_emulated_connection(ctx.host, config, type_name, stack)
        summary = Runner(config, ctx.host, Reporter()).run(RunOptions())
        _print_summary(summary)
        click.echo("\nRunning the same sync again: nothing changed, so nothing is written.")
        again = Runner(config, ctx.host, Reporter(quiet=True)).run(RunOptions())
        _print_summary(again)
    if config.segments.segments:
        from segsync.segments.commands import evaluated, overlap_rows, print_overlap, print_overview

        click.echo("")
        with evaluated(config, ctx.host, summary.as_of) as ev:
            print_overview(ev, ctx.host)
            # The segments outside groups (inside a group overlap is zero by construction);
            # `segsync segments overlap` shows every pair.
            ungrouped = tuple(s.name for s in config.segments.segments if s.group is None)
            if len(ungrouped) > 1:
                print_overlap(overlap_rows(ev, ctx.host, ungrouped))
    click.echo(f"\nExplore: cd {directory} && segsync runs && segsync segments list && "
               "segsync contacts show <email>")
    if summary.failed or again.failed:
        sys.exit(1)


def _add_emulated_connection(host: PluginHost, config: ProjectConfig, type_name: str, stack: ExitStack) -> None:
    """Start ``type_name``'s emulator and add a connection to it, for this process only.

    The project file is left alone (the emulator is gone when the demo ends); the connection's
    secrets go into this process's environment, where settings look for them.
    """
    connector_cls = host.connector_types().get(type_name)
    if connector_cls is None:
        raise click.ClickException(f"no connector of type {type_name!r} is installed")
    settings = connector_cls.start_emulator(stack)
    if settings is None:
        raise click.ClickException(f"the {type_name} connector ships no emulator")
    secrets = set(secret_fields(connector_cls.Settings))
    for field in secrets & set(settings):
        variable = f"{env_prefix(type_name)}{field.upper()}"
        previous = os.environ.get(variable)
        os.environ[variable] = str(settings[field])
        stack.callback(_restore_env, variable, previous)
    options = {k: v for k, v in settings.items() if k not in secrets}
    config.connections[type_name] = ConnectionConfig(type_name, type_name, options, pull=True, push=True)
    click.echo(f"  + {type_name}: a local emulator at {options.get('host', '127.0.0.1')} (no account needed)")


def _restore_env(variable: str, previous: str | None) -> None:
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous


# -- sync --------------------------------------------------------------------------------------


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing anywhere.")
@click.option("--full-refresh", is_flag=True, help="Ignore cursors: read every source from the start.")
@click.option("--as-of", "as_of", callback=lambda ctx, param, value: _parse_time(value),
              help="Evaluate as of this instant (ISO 8601 with a zone, default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@pass_ctx
def sync(ctx: Context, dry_run: bool, full_refresh: bool, as_of: datetime | None, as_json: bool) -> None:
    """Pull every source, plan every destination, push the changes."""
    options = RunOptions(dry_run=dry_run, full_refresh=full_refresh, as_of=as_of)
    reporter = Reporter(quiet=as_json)
    summary = Runner(ctx.config(), ctx.host, reporter).run(options)
    if as_json:
        click.echo(for_output(json.dumps(summary.to_dict(), indent=2, default=str)))
    else:
        _print_summary(summary)
    if summary.failed:
        sys.exit(1)
    if summary.status == "with-rejections":
        sys.exit(EXIT_REJECTIONS)


# `segsync sync` exit codes: 0 succeeded (or dry run), 1 failed or partial, 2 usage or
# configuration error, 3 finished but some records were rejected (`segsync runs --errors`).
EXIT_REJECTIONS = 3


def _print_summary(summary: RunSummary) -> None:
    title = "Dry run: nothing was changed" if summary.dry_run else f"Run {summary.run_id}: {summary.status}"
    if summary.sources:
        table = Table(title=f"{title} — sources", title_justify="left")
        for col in ("source", "status", "contacts", "consent", "events", "rejected rows"):
            table.add_column(col, justify="right" if col not in ("source", "status") else "left")
        for s in summary.sources:
            table.add_row(
                s.name, s.status,
                *(str(s.loaded.get(k, "-")) for k in ("contacts", "consent", "events")),
                str(sum(s.rejected.values())),
            )
        console.print(table)
    table = Table(title=f"{title} — destinations", title_justify="left")
    for col in ("destination", "status", "planned", "written", "rejected", "retrying", "write calls"):
        table.add_column(col, justify="left" if col in ("destination", "status", "planned") else "right")
    for d in summary.destinations:
        planned = ", ".join(f"{k} {v}" for k, v in sorted(d.planned.items())) or "no change"
        table.add_row(d.name, d.status, planned, str(d.records_written), str(d.records_rejected),
                      str(d.records_retrying), str(d.write_calls))
    console.print(table)
    for d in summary.destinations:
        if d.rejections_renewed:
            console.print(f"{d.name}: {d.rejections_renewed} rejected record(s) planned again "
                          "(the connection's settings, segment mapping or schema changed)")
        if d.error:
            console.print(f"{d.name}: {for_output(d.error)}", style="red", markup=False)
        for row in d.sample:
            console.print(f"  {d.name}: {row['action']:<11} {row['contact']:<28} status={row['status']}"
                          + (f" +tags={row['tags_add']}" if row["tags_add"] else "")
                          + (f" -tags={row['tags_remove']}" if row["tags_remove"] else ""))
    for s in summary.sources:
        if s.error:
            console.print(f"{s.name}: {for_output(s.error)}", style="red", markup=False)
    for reason in summary.segment_errors.values():
        click.echo(for_output(reason))  # not wrapped: the caret must stay under the rule
    if summary.segment_errors:
        click.echo("Those segments kept their last membership everywhere (nothing entered or "
                   "left them); `segsync check` lists every rule problem.")
    if any(e["phase"] != "evaluate" for e in summary.errors):
        console.print(f"Record errors (first {len(summary.errors)}; all in `segsync runs --errors`):")
        for e in summary.errors:
            if e["phase"] == "evaluate":
                continue  # segment errors: printed in full above
            field = f" [{e['field']}]" if e["field"] else ""
            console.print(for_output(f"  {e['connection']} {e['record']}{field}: {e['reason']}"), markup=False)


# -- history and records -----------------------------------------------------------------------


def _read_store(ctx: Context) -> Store:
    return Store(ctx.config().store_path, read_only=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--errors", "show_errors", is_flag=True, help="Also list record errors of each run.")
@pass_ctx
def runs(ctx: Context, as_json: bool, limit: int, show_errors: bool) -> None:
    """Run history, newest first (during a sync: as of its start, plus its live progress)."""
    path = ctx.config().store_path
    live = running_status(path)
    if live is not None:
        # A sync holds the store (DuckDB admits no reader meanwhile): show what it published.
        click.echo(f"a sync is running ({describe(live)}); history as of its start", err=True)
        if show_errors:
            click.echo("record errors are in the store: `segsync runs --errors` lists them once the "
                       "sync ends (or add --wait SECONDS)", err=True)
        history = [{**run, "phase": live["phase"], "done": live["done"], "total": live["total"]}
                   if run["id"] == live["run_id"] else run for run in live["history"]][:limit]
        if as_json:
            click.echo(for_output(json.dumps(history, indent=2)))
        else:
            _print_runs(history, {}, hint=False)
        return
    with _read_store(ctx) as store:
        history = store.runs(limit)
        errors: dict[int, list[dict[str, Any]]] = {}
        if show_errors:
            for run_id, conn, phase, record, field, reason, retryable in store.con.execute(
                "SELECT run_id, connection, phase, record, field, reason, retryable FROM record_errors "
                "WHERE run_id IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?) ORDER BY occurred_at",
                [limit],
            ).fetchall():
                errors.setdefault(run_id, []).append(
                    {"connection": conn, "phase": phase, "record": record, "field": field,
                     "reason": reason, "retryable": retryable}
                )
    if as_json:
        for run in history:
            if show_errors:
                run["errors"] = errors.get(run["id"], [])
        click.echo(for_output(json.dumps(history, indent=2)))
        return
    _print_runs(history, errors, hint=not show_errors)


def _print_runs(history: list[dict[str, Any]], errors: dict[int, list[dict[str, Any]]], hint: bool) -> None:
    table = Table()
    for col in ("id", "started", "finished", "status", "destinations"):
        table.add_column(col)
    for run in history:
        dests = "; ".join(
            f"{d['destination']}: {d['records_written']} written"
            + (f", {d['records_rejected']} rejected" if d["records_rejected"] else "")
            + (f", {d['records_retrying']} retrying" if d["records_retrying"] else "")
            + f" / {d['write_calls']} calls"
            + (f" ({d['status']})" if d["status"] != "ok" else "")
            for d in run["destinations"]
        )
        status = run["status"] + (f" ({run['phase']})" if run.get("phase") else "")
        table.add_row(str(run["id"]), run["started_at"][:19], (run["finished_at"] or "")[:19], status,
                      for_output(dests or "-"))
    console.print(table)
    if hint and any(r["status"] in ("with-rejections", "partial", "failed") for r in history):
        console.print("Rejected and retrying records: `segsync runs --errors`.")
    for run in history:
        for e in errors.get(run["id"], []):
            console.print(for_output(f"  run {run['id']} {e['connection']} {e['record']} [{e['field'] or '-'}]: {e['reason']}"),
                          markup=False)


@cli.group()
def contacts() -> None:
    """Look up people in the store."""


@contacts.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@click.option("--events", "event_limit", default=20, show_default=True, help="How many recent events.")
@pass_ctx
def contacts_show(ctx: Context, email: str, as_json: bool, event_limit: int) -> None:
    """One person's record, identities, recent events and consent ledger."""
    try:
        key = normalize_email(email)
    except InvalidEmail as exc:
        raise click.BadParameter(f"{email!r}: {exc}") from None
    with _read_store(ctx) as store:
        record = _contact_record(store, key, event_limit)
    if record is None:
        raise click.ClickException(f"no contact {mask_email(key)} in the store")
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
        return
    console.print(f"[bold]{record['email']}[/bold]  (first seen {record['first_seen_at']}, updated by {record['updated_by']})")
    for name, value in record["attributes"].items():
        console.print(f"  {name}: {value}", markup=False)
    console.print("Identities: " + (", ".join(f"{i['connection']}={i['external_id']}" for i in record["identities"]) or "none"))
    console.print("Consent ledger:")
    for c in record["consent"]:
        console.print(f"  {c['recorded_at']} {c['channel']}/{c['purpose']} {c['status']} via {c['method']} from {c['source']}", markup=False)
    console.print(f"Recent events ({len(record['events'])}):")
    for e in record["events"]:
        console.print(f"  {e['occurred_at']} {e['type']} {e['source']}:{e['source_event_id']}", markup=False)


def _contact_record(store: Store, key: str, event_limit: int) -> dict[str, Any] | None:
    rows = store_dicts(store.con, "SELECT * FROM contacts WHERE contact_key = ?", [key])
    if not rows:
        return None
    row = rows[0]
    attributes = {k: v for k, v in row.items()
                  if k not in ("contact_key", "custom", "first_seen_at", "updated_at", "updated_by") and v is not None}
    attributes.update(json.loads(row["custom"] or "{}"))

    def dicts(sql: str, params: list[Any]) -> list[dict[str, Any]]:
        return store_dicts(store.con, sql, params)

    return {
        "email": key,
        "first_seen_at": row["first_seen_at"],
        "updated_at": row["updated_at"],
        "updated_by": row["updated_by"],
        "attributes": attributes,
        "identities": dicts("SELECT connection, external_id, properties, seen_at FROM identities WHERE contact_key = ? ORDER BY connection", [key]),
        "consent": dicts("SELECT id, channel, purpose, status, recorded_at, source, method, evidence FROM consent_ledger WHERE contact_key = ? ORDER BY recorded_at, id", [key]),
        "events": dicts("SELECT type, occurred_at, source, source_event_id, value, currency, url, category, properties FROM events WHERE contact_key = ? ORDER BY occurred_at DESC LIMIT ?", [key, event_limit]),
        "destinations": dicts("SELECT destination, status, acked_at, run_id FROM acknowledged WHERE contact_key = ? ORDER BY destination", [key]),
    }


# -- plugins and connections -------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def plugins(ctx: Context, as_json: bool) -> None:
    """Installed plugins: distribution, version, hooks, connector types."""
    infos = ctx.host.plugins()
    if as_json:
        click.echo(json.dumps([
            *({"name": p.name, "distribution": p.distribution, "version": p.version,
               "hooks": p.hooks, "connector_types": p.connector_types}
              for p in infos),
            # Plugins that failed to load: listed with what went wrong.
            *({"name": f.name, "distribution": f.distribution, "version": None, "hooks": [],
               "connector_types": [], "error": f.error}
              for f in ctx.host.failures),
        ], indent=2))
        return
    table = Table()
    for col in ("plugin", "distribution", "version", "hooks", "connector types"):
        table.add_column(col)
    for p in infos:
        table.add_row(p.name, p.distribution, p.version, "\n".join(p.hooks), ", ".join(p.connector_types))
    console.print(table)
    for failure in ctx.host.failures:
        console.print(f"[red]{failure.message()}[/red]")


@cli.command()
@click.argument("connection", required=False)
@click.option("--fix", is_flag=True, help="Let connectors repair what they can (e.g. create missing fields).")
@pass_ctx
def check(ctx: Context, connection: str | None, fix: bool) -> None:
    """Check what a sync needs: the store, every rule, consent settings and each connection's
    settings, connectivity and credentials. Exit code 1 when anything would fail."""
    config = ctx.config()
    if connection and connection not in config.connections:
        raise click.ClickException(f"no connection {connection!r}; configured: {', '.join(config.connections)}")
    failed = False

    def report(what: str, problems: list[str]) -> None:
        nonlocal failed
        if problems:
            failed = True
            click.echo(f"✗ {what}")
            for problem in problems:
                click.echo(textwrap.indent(for_output(problem), "    "))
        else:
            click.echo(f"✓ {what}")

    if connection is None:
        report(f"store ({config.store_path})", _store_problems(config))
        report("consent settings", _consent_problems(config, ctx.host))
        problems = _rule_problems(config, ctx.host)
        report(f"segments ({len(config.segments.segments)})", problems)
    used = {c.type for c in config.connections.values()}
    for failure in ctx.host.failures:
        if not any(ctx.host.failure_for(t) is failure for t in used):
            click.echo(f"warning: {failure.message()} (no connection uses it)")
    types = ctx.host.connector_types()
    for name in [connection] if connection else list(config.connections):
        conn = config.connections[name]
        report(f"{name} ({conn.type})", _connection_problems(ctx.host, types, config, conn, fix))
    if failed:
        sys.exit(1)


def _retry_rejected_after_fix(config: ProjectConfig, connection: str) -> None:
    if not Path(config.store_path).exists():
        return
    try:
        with Store(config.store_path) as store:
            forgotten = forget_rejections(store.con, connection)
    except StoreLocked:
        click.echo(f"  note: a sync holds the store; run `segsync retry-rejected {connection}` "
                   "after it to send the records it rejected before this fix")
        return
    if forgotten:
        click.echo(f"  {forgotten} rejected record(s) will be sent again by the next sync")


@cli.command("retry-rejected")
@click.argument("connections", nargs=-1)
@pass_ctx
def retry_rejected(ctx: Context, connections: tuple[str, ...]) -> None:
    """Send records a destination rejected again on the next sync (default: every connection).

    A rejection is remembered until the record, the connection's settings, its segment mapping
    or the schema the system reports change; this forgets it at once, e.g. after fixing
    something in the system by hand. Refusals by the consent gate are kept.
    """
    config = ctx.config()
    unknown = [c for c in connections if c not in config.connections]
    if unknown:
        raise click.ClickException(
            f"no connection {', '.join(map(repr, unknown))}; configured: {', '.join(config.connections)}"
        )
    if not Path(config.store_path).exists():
        raise click.ClickException(f"no store at {config.store_path}; nothing was rejected yet")
    with Store(config.store_path) as store:
        for name in connections or tuple(config.connections):
            forgotten = forget_rejections(store.con, name)
            click.echo(f"{name}: {forgotten} rejected record(s) will be sent again by the next sync")


def _store_problems(config: ProjectConfig) -> list[str]:
    problem = store_problem(config.store_path)
    if problem is not None:
        return [problem]
    if config.store_path == ":memory:" or not Path(config.store_path).exists():
        return []  # the first sync creates it
    try:
        Store(config.store_path, read_only=True).close()
    except StoreLocked:
        pass  # a sync holds it: it is a store
    except StoreOutdated:
        pass  # an older segsync's store: the next sync upgrades it
    except StoreError as exc:
        return [str(exc)]
    return []


def _consent_problems(config: ProjectConfig, host: PluginHost) -> list[str]:
    from segsync.config import consent_settings

    try:
        consent_settings(config, host.consent_policies())
    except ConfigError as exc:
        return [str(exc)]
    return []


def _rule_problems(config: ProjectConfig, host: PluginHost) -> list[str]:
    """Every segment that would not evaluate in a sync now, with the reason."""
    from segsync.segments.validate import validate

    checked = validate(config.segments.segments, config.segments.groups,
                       datetime.now(timezone.utc), host.segment_registry())
    return [checked.problems.get(name, reason) for name, reason in checked.held.items()]


def _connection_problems(
    host: PluginHost, types: dict[str, Any], config: ProjectConfig, conn: ConnectionConfig, fix: bool
) -> list[str]:
    try:
        if conn.type not in types:
            failure = host.failure_for(conn.type)
            if failure is not None:
                return [f"plugin {failure.name!r} failed to load: {failure.error}"]
            raise ConfigError(f"no connector of type {conn.type!r} installed")
        instance = instantiate_connection(types[conn.type], conn, config.project_dir)
        try:
            problems = instance.check()
            if fix and problems:
                repairs = instance.fix()
                for done in repairs:
                    click.echo(f"  fixed: {done}")
                if repairs:
                    # What the system refused may be accepted now: plan it again.
                    _retry_rejected_after_fix(config, conn.name)
                problems = instance.check()
        finally:
            instance.close()
    except ConfigError as exc:
        problems = [str(exc)]
    except Exception as exc:  # a connector's check must never crash the command
        problems = [f"{type(exc).__name__}: {exc}"]
    return list(problems)


def main() -> None:
    try:
        host = load_host()
        host.add_commands(cli)
    except (PluginError, pluggy.PluginValidationError) as exc:
        click.echo(f"error: {for_output(str(exc))}", err=True)
        sys.exit(2)
    cli.main(obj=host)

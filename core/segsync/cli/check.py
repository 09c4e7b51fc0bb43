"""``segsync check``: everything a sync needs, checked without syncing."""

from __future__ import annotations

import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.rejections import retry_rejected_after_fix
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.config import ConnectionConfig, ProjectConfig
    from segsync.plugins import PluginHost


@click.command()
@click.argument("connection", required=False)
@click.option("--fix", is_flag=True, help="Let connectors repair what they can (e.g. create missing fields).")
@pass_ctx
def check(ctx: Context, connection: str | None, fix: bool) -> None:
    """Check what a sync needs: the store, every rule, consent settings and each connection's
    settings, connectivity and credentials. Exit code 1 when anything would fail."""
    from segsync.redaction import for_output

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
        report(f"store ({config.store_path})", _store_problems(ctx, config))
        if config.store_engine != "duckdb":
            report(f"engine {config.store_engine}", _engine_problems(ctx, config))
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
        if conn.type in types:
            for note in types[conn.type].Settings.deprecations(conn.options):
                click.echo(f"    note: {note}")
    if failed:
        sys.exit(1)


def _engine_problems(ctx: Context, config: ProjectConfig) -> list[str]:
    """Connectivity, then missing tables and columns of the external engine (docs/scale.md).
    segsync's own tables that are missing are created by the first sync: not a problem."""
    from segsync.config import ConfigError, open_engine
    from segsync.engines import USER_TABLES, EngineError

    try:
        with open_engine(config, ctx.host) as engine:
            problems = engine.check()
            mapped = set(engine.tables)
    except (ConfigError, EngineError) as exc:
        return [str(exc)]
    own_missing = [f"table {t} is missing" for t in USER_TABLES if t not in mapped] + [
        f"table {t} is missing" for t in ("suppressions", "status_changes")]
    for problem in [p for p in problems if p in own_missing]:
        click.echo(f"    note: {problem} (segsync creates it on the first sync)")
    return [p for p in problems if p not in own_missing]


def _store_problems(ctx: Context, config: ProjectConfig) -> list[str]:
    from segsync.cli.store import read_store
    from segsync.config import store_problem
    from segsync.store import StoreError, StoreLocked, StoreOutdated

    problem = store_problem(config.store_path)
    if problem is not None:
        return [problem]
    if config.store_path == ":memory:" or not Path(config.store_path).exists():
        return []  # the first sync creates it
    try:
        read_store(ctx, config.store_path).close()
    except StoreLocked:
        pass  # a sync holds it: it is a store
    except StoreOutdated:
        pass  # an older segsync's store: the next sync upgrades it
    except StoreError as exc:
        return [str(exc)]
    return []


def _consent_problems(config: ProjectConfig, host: PluginHost) -> list[str]:
    from segsync.config import ConfigError, consent_settings

    try:
        consent_settings(config, host.consent_policies())
    except ConfigError as exc:
        return [str(exc)]
    return []


def _rule_problems(config: ProjectConfig, host: PluginHost) -> list[str]:
    """Every segment that would not evaluate in a sync now, with the reason."""
    from segsync.segments.validate import validate

    now = datetime.now(timezone.utc)
    checked = validate(config.segments.segments, config.segments.groups, now, host.segment_registry())
    if checked.score_models and config.store_engine != "duckdb":
        from segsync.engines.scores import unscorable

        # Scores come from the store's own rows: an engine reading the user's tables instead
        # cannot be given scores that describe them (docs/scale.md).
        why = unscorable(config.store_engine, (config.store_options.get("tables") or {}))
        if why is not None:
            checked = validate(config.segments.segments, config.segments.groups, now,
                               host.segment_registry(), {m: why for m in checked.score_models})
    return [checked.problems.get(name, reason) for name, reason in checked.held.items()]


def _connection_problems(
    host: PluginHost, types: dict[str, Any], config: ProjectConfig, conn: ConnectionConfig, fix: bool
) -> list[str]:
    from segsync.config import ConfigError, instantiate_connection
    from segsync.distributions import missing_connector

    try:
        if conn.type not in types:
            failure = host.failure_for(conn.type)
            if failure is not None:
                return [f"plugin {failure.name!r} failed to load: {failure.error}"]
            raise ConfigError(missing_connector(conn.type, types))
        instance = instantiate_connection(types[conn.type], conn, config.project_dir)
        try:
            problems = instance.check()
            if fix and problems:
                repairs = instance.fix()
                for done in repairs:
                    click.echo(f"  fixed: {done}")
                if repairs:
                    # What the system refused may be accepted now: plan it again.
                    retry_rejected_after_fix(config, conn.name)
                problems = instance.check()
        finally:
            instance.close()
    except ConfigError as exc:
        problems = [str(exc)]
    except Exception as exc:  # a connector's check must never crash the command
        problems = [f"{type(exc).__name__}: {exc}"]
    return list(problems)


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(check)

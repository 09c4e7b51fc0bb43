"""``segsync plugins``: what is installed, which hooks each plugin implements, and the
connector types it provides."""

from __future__ import annotations

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import json_option
from segsync.cli.output import console, echo_json
from segsync.hookspecs import hookimpl


@click.command()
@json_option()
@pass_ctx
def plugins(ctx: Context, as_json: bool) -> None:
    """Installed plugins: distribution, version, hooks, connector types."""
    infos = ctx.host.plugins()
    if as_json:
        echo_json([
            *({"name": p.name, "distribution": p.distribution, "version": p.version,
               "hooks": p.hooks, "connector_types": p.connector_types}
              for p in infos),
            # Plugins that failed to load: listed with what went wrong.
            *({"name": f.name, "distribution": f.distribution, "version": None, "hooks": [],
               "connector_types": [], "error": f.error}
              for f in ctx.host.failures),
        ])
        return
    from rich.table import Table

    table = Table()
    for col in ("plugin", "distribution", "version", "hooks", "connector types"):
        table.add_column(col)
    for p in infos:
        table.add_row(p.name, p.distribution, p.version, "\n".join(p.hooks), ", ".join(p.connector_types))
    console().print(table)
    for failure in ctx.host.failures:
        console().print(f"[red]{failure.message()}[/red]")


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(plugins)

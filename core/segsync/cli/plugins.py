"""``segsync plugins``: what is installed, where from, which hooks each plugin implements, and
the connector types (with their capabilities) it provides; plugins that failed to load are
listed as broken, with their error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import json_option
from segsync.cli.output import console, echo_json
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.plugins import PluginHost


@click.command()
@json_option()
@pass_ctx
def plugins(ctx: Context, as_json: bool) -> None:
    """Installed plugins: distribution, version, where installed from, hooks, connector types
    and their capabilities; broken plugins with their error."""
    rows = plugin_rows(ctx.host)
    if as_json:
        echo_json(rows)
        return
    from rich.table import Table

    table = Table()
    for col in ("plugin", "distribution", "version", "installed from", "connector types", "hooks"):
        table.add_column(col, overflow="fold")  # names and paths wrap, never cut
    for row in rows:
        source = row["installed_from"]
        where = f"{source['kind']} {source['url'] or ''}".strip() if source else ""
        if row["status"] == "broken":
            provides = f"[red]broken: {row['error']}[/red]"
        else:
            provides = "\n".join(f"{name}: {', '.join(caps) or 'no capabilities'}"
                                 for name, caps in row["capabilities"].items())
        table.add_row(row["name"], row["distribution"] or "", row["version"] or "", where, provides,
                      "\n".join(row["hooks"]))
    console().print(table)


def plugin_rows(host: PluginHost) -> list[dict[str, Any]]:
    """Every plugin as ``segsync plugins --json`` prints it: loaded ones, then broken ones."""
    loaded = [
        {"name": p.name, "status": "loaded", "distribution": p.distribution, "version": p.version,
         "installed_from": p.installed_from.to_dict() if p.installed_from else None,
         "hooks": p.hooks, "connector_types": p.connector_types, "capabilities": p.capabilities}
        for p in host.plugins()
    ]
    broken = [
        {"name": f.name, "status": "broken", "distribution": f.distribution, "version": f.version,
         "installed_from": f.installed_from.to_dict() if f.installed_from else None,
         "hooks": [], "connector_types": [], "capabilities": {}, "error": f.error}
        for f in host.failures
    ]
    return [*loaded, *broken]


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(plugins)

"""``segsync retry-rejected``: forget remembered rejections so the next sync sends them again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from segsync.cli.context import Context, pass_ctx
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.config import ProjectConfig


@click.command("retry-rejected")
@click.argument("connections", nargs=-1)
@pass_ctx
def retry_rejected(ctx: Context, connections: tuple[str, ...]) -> None:
    """Send records a destination rejected again on the next sync (default: every connection).

    A rejection is remembered until the record, the connection's settings, its segment mapping
    or the schema the system reports change; this forgets it at once, e.g. after fixing
    something in the system by hand. Refusals by the consent gate are kept.
    """
    from segsync.sync.rejections import forget_rejections
    from segsync.store import Store

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


def retry_rejected_after_fix(config: ProjectConfig, connection: str) -> None:
    """After ``check --fix`` repaired ``connection``: what it refused may be accepted now."""
    from segsync.sync.rejections import forget_rejections
    from segsync.store import Store, StoreLocked

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


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(retry_rejected)

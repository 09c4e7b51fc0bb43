"""``segsync new connector NAME`` and ``segsync new plugin NAME``: a complete distribution to start from."""

from __future__ import annotations

from pathlib import Path

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import LazyChoice
from segsync.hookspecs import hookimpl


def _capability_names() -> tuple[str, ...]:
    from segsync.generator import READS, WRITES

    return (*READS, *WRITES)


def _default_capabilities() -> tuple[str, ...]:
    from segsync.generator import DEFAULT_CAPABILITIES

    return DEFAULT_CAPABILITIES


directory_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write it to; must be new or empty (default: ./segsync-NAME).")


@click.group()
def new() -> None:
    """Start a connector or plugin as its own distribution, from segsync's template."""


@new.command("connector")
@click.argument("name")
@directory_option
@click.option("--capability", "capabilities", multiple=True, type=LazyChoice(_capability_names),
              help="A capability to declare (repeat it); default: read_contacts, read_consent, "
                   "write_contacts, write_memberships, write_consent.")
@pass_ctx
def connector(ctx: Context, name: str, directory: Path | None, capabilities: tuple[str, ...]) -> None:
    """A connector for the system NAME: settings, a connector with each capability stubbed,
    an emulator, the conformance tests and a README. NAME becomes the connection type
    (`type = "NAME"`), the package segsync_NAME and the distribution segsync-NAME."""
    from segsync.generator import check_name, default_target, render_connector

    names = check_name(name)
    _refuse_an_installed_type(ctx, name)
    target = directory or default_target(names)
    files = render_connector(names, capabilities or _default_capabilities(), target)
    _created(target, files, f"connector type {name!r}, distribution {names.distribution}")


@new.command("plugin")
@click.argument("name")
@directory_option
def plugin(name: str, directory: Path | None) -> None:
    """A plugin that is not a connector (event types, segment functions or packs, consent
    policies, commands, observers of a run): hook implementations, tests and a README."""
    from segsync.generator import check_name, default_target, render_plugin

    names = check_name(name)
    target = directory or default_target(names)
    files = render_plugin(names, target)
    _created(target, files, f"plugin {name!r}, distribution {names.distribution}")


def _refuse_an_installed_type(ctx: Context, name: str) -> None:
    from segsync.generator import GeneratorError

    types = ctx.host.connector_types()
    if name in types:
        plugin = ctx.host.connector_plugin(name)
        raise GeneratorError(f"name {name!r}: plugin {plugin!r} already provides connector type "
                             f"{name!r}; pick another name (two plugins cannot register one type)")


def _created(target: Path, files: list[Path], what: str) -> None:
    click.echo(f"Created {target}/ ({len(files)} files): {what}.")
    click.echo("Next:")
    click.echo(f"  segsync install -e {target}    # into the environment segsync runs in")
    click.echo(f"  cd {target} && python -m pytest")


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(new)

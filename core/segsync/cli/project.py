"""``segsync init`` and ``segsync demo``: start a project, or try segsync on a synthetic one."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import click

from segsync.cli.context import Context, pass_ctx
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.config import ProjectConfig
    from segsync.plugins import PluginHost


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--contacts", default=40, show_default=True, help="Sample contacts to generate.")
def init(directory: Path, contacts: int) -> None:
    """Create a project: a commented segsync.toml and sample data that sync without credentials."""
    from segsync.scaffold import write_project

    try:
        counts = write_project(directory, contacts=contacts)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {directory / 'segsync.toml'} and sample data ({counts['contacts']} contacts, "
               f"{counts['events']} events, {counts['consent']} consent records).")
    click.echo(f"Next: cd {directory} && segsync sync")


@click.command()
@click.option("--dir", "directory", default="segsync-demo", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--contacts", default=3000, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--with", "emulated", multiple=True, metavar="TYPE",
              help="Also push to this connector's local emulator (e.g. --with mailchimp --with brevo).")
@click.option("--engine", default="duckdb", show_default=True, metavar="NAME",
              help="Evaluate on this engine (docs/scale.md): postgres runs a throwaway local cluster "
                   "in the demo folder unless --engine-url names a server; spark runs Spark in "
                   "local mode (local[2]) unless --engine-url names a master.")
@click.option("--engine-url", default=None, metavar="URL",
              help="The engine's [store] url (postgres) or master (spark).")
@click.option("--serve", "serve", is_flag=True,
              help="Then show the live loop (segsync serve): a scripted unsubscribe in one emulator "
                   "reaching the others within seconds (default --with mailchimp --with brevo).")
@click.option("--serve-forever", is_flag=True, help="With --serve: keep serving until Ctrl-C.")
@pass_ctx
def demo(ctx: Context, directory: Path, contacts: int, seed: int, emulated: tuple[str, ...],
         engine: str, engine_url: str | None, serve: bool, serve_forever: bool) -> None:
    """Build a synthetic business and run a full sync on the embedded store (or an engine)."""
    from segsync.cli.segments import evaluated, overlap_rows, print_overlap, print_overview
    from segsync.cli.sync import EXIT_FAILED, print_summary
    from segsync.config import load_config
    from segsync.progress import Reporter
    from segsync.sync.runner import RunOptions, Runner
    from segsync.scaffold import write_project

    if (directory / "segsync.toml").exists():
        raise click.ClickException(f"{directory} already holds a project; pick another --dir or remove it")
    serve = serve or serve_forever
    if serve and not ctx.host.can_demo_serve():
        raise click.UsageError("--serve needs the segsync-serve plugin: segsync install -e plugins/serve "
                               "(or pip install segsync-serve)")
    if serve and not emulated:
        emulated = ("mailchimp", "brevo")
    click.echo(f"Generating a synthetic business in {directory} ({contacts} contacts, two years of activity)…")
    counts = write_project(directory, contacts=contacts, seed=seed)
    click.echo(f"  {counts['contacts']} contact rows, {counts['events']} events, {counts['consent']} consent records")
    if engine != "duckdb":
        _use_engine(directory / "segsync.toml", engine, engine_url)
        local = LOCAL_ENGINES.get(engine, "")
        click.echo(f"  segments and consent evaluated on the {engine} engine"
                   + (f" at {engine_url}" if engine_url else f" ({local})" if local else ""))
    config = load_config(directory / "segsync.toml", ctx.host)
    with ExitStack() as stack:
        for type_name in emulated:
            _add_emulated_connection(ctx.host, config, type_name, stack)
        summary = Runner(config, ctx.host, Reporter()).run(RunOptions())
        print_summary(summary)
        click.echo("\nRunning the same sync again: nothing changed, so nothing is written.")
        again = Runner(config, ctx.host, Reporter(quiet=True)).run(RunOptions())
        print_summary(again)
        if serve:
            from segsync.live import LiveProject

            live = LiveProject(host=ctx.host, config=config)  # with the emulated connections
            ctx.host.demo_serve(live, emulated, serve_forever)
    if config.segments.segments:
        click.echo("")
        with evaluated(ctx, config, summary.as_of) as ev:
            print_overview(ev)
            # The segments outside groups (inside a group overlap is zero by construction);
            # `segsync segments overlap` shows every pair.
            ungrouped = tuple(s.name for s in config.segments.segments if s.group is None)
            if len(ungrouped) > 1:
                print_overlap(overlap_rows(ev, ctx.host, ungrouped))
    click.echo(f"\nExplore: cd {directory} && segsync runs && segsync segments list && "
               "segsync contacts show <email>")
    if summary.failed or again.failed:
        sys.exit(EXIT_FAILED)


# What each engine runs when the demo names no --engine-url, and the [store] key that URL sets.
LOCAL_ENGINES = {"postgres": "a local cluster in the demo folder",
                 "spark": "Spark in local mode, its tables in the demo folder"}
URL_SETTING = {"spark": "master"}


def _use_engine(config_path: Path, engine: str, url: str | None) -> None:
    """Point the demo's project file at ``engine`` (its [store] table gains engine and the url,
    or what the engine calls it)."""
    import json

    text = config_path.read_text(encoding="utf-8")
    key = URL_SETTING.get(engine, "url")
    lines = [f"engine = {json.dumps(engine)}"] + ([f"{key} = {json.dumps(url)}"] if url else [])
    if "\n[store]\n" in f"\n{text}":
        text = text.replace("[store]\n", "[store]\n" + "\n".join(lines) + "\n", 1)
    else:
        text = "[store]\n" + "\n".join(lines) + "\n\n" + text
    config_path.write_text(text, encoding="utf-8")


def _add_emulated_connection(host: PluginHost, config: ProjectConfig, type_name: str, stack: ExitStack) -> None:
    """Start ``type_name``'s emulator and add a connection to it, for this process only.

    The project file is left alone (the emulator is gone when the demo ends); the connection's
    secrets go into this process's environment, where settings look for them.
    """
    from segsync.config import ConnectionConfig, env_prefix, secret_fields
    from segsync.distributions import missing_connector

    types = host.connector_types()
    connector_cls = types.get(type_name)
    if connector_cls is None:
        failure = host.failure_for(type_name)
        if failure is not None:
            raise click.ClickException(f"--with {type_name}: {failure.message()}")
        raise click.ClickException(f"--with {type_name}: {missing_connector(type_name, types)}")
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


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(init)
    cli.add_command(demo)

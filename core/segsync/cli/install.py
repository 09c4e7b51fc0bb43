"""``segsync install`` and ``segsync uninstall``: pip, in the environment segsync runs in, then
what registered.

pip runs as ``sys.executable -m pip`` in a child process (never imported here: it is large, and
segsync's start stays cheap), with its output shown as it goes. What changed is found by
comparing the plugins before (this process's host) with the plugins after, listed by a fresh
``segsync plugins --json`` (this process cannot see what pip just installed: an editable
install's path file is read only at start).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from typing import Any

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.plugins import plugin_rows
from segsync.distributions import normalize_name
from segsync.hookspecs import hookimpl

EXIT_FAILED = 1


@click.command()
@click.argument("packages", nargs=-1)
@click.option("-e", "--editable", "editable", multiple=True, metavar="PATH",
              help="Install the project in this local folder in development mode (repeatable).")
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to their newest versions.")
@click.option("--no-index", is_flag=True, help="Do not use a package index (local paths and wheels only).")
@click.option("--no-build-isolation", is_flag=True,
              help="Build local projects with the build tools already installed (no download).")
@pass_ctx
def install(ctx: Context, packages: tuple[str, ...], editable: tuple[str, ...], upgrade: bool,
            no_index: bool, no_build_isolation: bool) -> None:
    """Install plugins with pip into the environment segsync runs in, then show what registered.

    PACKAGES are distribution names (segsync-hubspot), local folders or wheel files.
    """
    if not packages and not editable:
        raise click.UsageError("name a distribution, a folder or a wheel to install (or -e PATH)")
    args = ["install", *(["--upgrade"] * upgrade), *(["--no-index"] * no_index),
            *(["--no-build-isolation"] * no_build_isolation),
            *(arg for path in editable for arg in ("-e", path)), *packages]
    _run_pip(ctx, args)


@click.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def uninstall(ctx: Context, packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugins with pip from the environment segsync runs in, then show what was removed.

    PACKAGES are distribution names (segsync-hubspot).
    """
    if any(normalize_name(p) == "segsync" for p in packages):
        raise click.UsageError("segsync cannot uninstall itself; use pip uninstall segsync")
    missing = [p for p in packages if not _installed(p)]
    if missing:
        click.echo(f"error: not installed: {', '.join(missing)} (segsync plugins lists what is)", err=True)
        sys.exit(EXIT_FAILED)
    _run_pip(ctx, ["uninstall", *(["--yes"] * yes), *packages])


def _run_pip(ctx: Context, args: list[str]) -> None:
    before = _index(plugin_rows(ctx.host))
    command = [sys.executable, "-m", "pip", *args]
    click.echo(f"Running: {' '.join(_shown(arg) for arg in command)}", err=True)
    done = subprocess.run(command)
    if done.returncode != 0:
        click.echo(f"error: pip {args[0]} failed (exit code {done.returncode}); see its output above",
                   err=True)
        sys.exit(EXIT_FAILED)
    after = _index(_plugins_in_a_new_process())
    changes = _changes(before, after)
    for line in changes:
        click.echo(line)
    if not changes:
        click.echo(f"No segsync plugin was {'added or changed' if args[0] == 'install' else 'removed'}.")
    if any(after[name]["status"] == "broken" and before.get(name) != after[name] for name in after):
        sys.exit(EXIT_FAILED)


def _shown(arg: str) -> str:
    """A command-line argument as printed: a URL without the credentials it may carry."""
    if "://" not in arg:
        return arg
    from segsync.http import safe_url

    return safe_url(arg)


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _plugins_in_a_new_process() -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "segsync", "plugins", "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        click.echo(f"error: segsync plugins failed after pip ran: {done.stderr.strip()}", err=True)
        sys.exit(EXIT_FAILED)
    return json.loads(done.stdout)


def _index(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def _changes(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    """One line per plugin added, changed, broken or removed."""
    lines = []
    for name, row in sorted(after.items()):
        old = before.get(name)
        if old == row:
            continue
        if row["status"] == "broken":
            lines.append(f"! plugin {name} ({_release(row)}) is installed but broken: {row['error']}")
        elif old is None or old["status"] == "broken":
            lines.append(f"+ plugin {name} ({_release(row)}){_provides(row)}")
        else:
            lines.append(f"~ plugin {name} ({_release(old)} -> {_release(row)}){_provides(row)}")
    for name, row in sorted(before.items()):
        if name not in after:
            lines.append(f"- plugin {name} ({_release(row)}){_provides(row)}")
    return lines


def _release(row: dict[str, Any]) -> str:
    text = f"{row['distribution']} {row['version'] or ''}".strip()
    source = row.get("installed_from")
    if source and source["kind"] not in ("index", "built-in"):
        text += f", {source['kind']} {source['url'] or ''}".rstrip()
    return text


def _provides(row: dict[str, Any]) -> str:
    if not row["capabilities"]:
        return f": hooks {', '.join(row['hooks'])}" if row["hooks"] else ""
    return ": " + "; ".join(f"connector type {name} ({', '.join(caps)})"
                            for name, caps in row["capabilities"].items())


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(install)
    cli.add_command(uninstall)

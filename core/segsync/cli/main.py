"""The root ``segsync`` group and the console-script entry point.

Every command, the built-in ones included, is added through ``segsync_register_commands``: the
modules of this package are default plugins (see ``segsync.plugins.DEFAULT_PLUGINS``), so the
core uses the same hook as a third party's plugin.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from segsync.cli.context import Context, load_host

if TYPE_CHECKING:
    from segsync.plugins import PluginHost

# What a user can get wrong (the file, the store, a plugin, a rule): one line on stderr, exit 2.
# By module and class name: an exception of a module not imported yet cannot have been raised,
# so checking needs no import (which keeps the start of every command cheap).
USER_ERRORS = (
    ("segsync.config", "ConfigError"),
    ("segsync.store.store", "StoreError"),
    ("segsync.store.lock", "StoreLocked"),
    ("segsync.plugins", "PluginError"),
    ("segsync.segments.errors", "SegmentError"),
    ("segsync.generator", "GeneratorError"),
    ("segsync.engines.base", "EngineError"),  # an external engine unreachable or refusing
    ("builtins", "FileNotFoundError"),
)


def is_user_error(exc: BaseException) -> bool:
    for module_name, class_name in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return True
    return False


class SegsyncGroup(click.Group):
    """The top-level group.

    Its commands come from the plugin host's ``segsync_register_commands``: the first time a
    command is looked up (or listed for ``--help``), the host's commands are added, from the
    host ``main()`` loaded or one passed as ``obj`` (or, in neither case, a newly loaded one).
    User errors of every command (plugins' included) end as ``error: ...`` and exit code 2,
    never as a traceback.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._commands_of: PluginHost | None = None

    def add_plugin_commands(self, host: PluginHost) -> None:
        if host is not self._commands_of:
            self._commands_of = host
            host.add_commands(self)

    def _plugin_commands(self, ctx: click.Context) -> None:
        root = ctx.find_root()
        if root.obj is None:
            root.obj = load_host()
        self.add_plugin_commands(root.obj.host if isinstance(root.obj, Context) else root.obj)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._plugin_commands(ctx)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not is_user_error(exc):
                raise
            from segsync.redaction import for_output

            click.echo(f"error: {for_output(str(exc))}", err=True)
            ctx.exit(2)


@click.group(cls=SegsyncGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config", envvar="SEGSYNC_CONFIG", help="Path to segsync.toml (default: ./segsync.toml).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--wait", "wait", type=click.FloatRange(min=0), default=0, envvar="SEGSYNC_WAIT", metavar="SECONDS",
              help="Read commands: wait up to SECONDS for a running sync to release the store.")
@click.version_option(package_name="segsync")
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int, wait: float) -> None:
    """Keep contacts, behaviour and consent in one place and every connected system in step."""
    from segsync import logs

    logs.configure(logging.WARNING - 10 * min(verbose, 2))
    # The host whose commands were added (main() loads it, tests pass theirs): reuse it.
    host = ctx.obj if not isinstance(ctx.obj, Context) else ctx.obj.host
    ctx.obj = Context(config, verbose, host, wait)


def main() -> None:
    import pluggy

    from segsync.plugins import PluginError

    try:
        host = load_host()
        cli.add_plugin_commands(host)
    except (PluginError, pluggy.PluginValidationError) as exc:
        from segsync.redaction import for_output

        click.echo(f"error: {for_output(str(exc))}", err=True)
        sys.exit(2)
    cli.main(obj=host)

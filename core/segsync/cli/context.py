"""What every command receives: the project (``--config``), the plugin host and the verbosity.

Loading the host and the project file is deferred until a command asks for them, so that
``segsync --help`` and commands that need neither start without importing the store, the rule
engine or the settings machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path

    from segsync.config import ProjectConfig
    from segsync.plugins import PluginHost


class Context:
    def __init__(self, config: str | None, verbose: int, host: PluginHost | None = None,
                 wait: float = 0.0) -> None:
        self.config_path = config
        self.verbose = verbose
        # Read commands: seconds to wait for a running sync to release the store (--wait).
        self.wait = wait
        self._host = host

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = load_host()
        return self._host

    def config(self) -> ProjectConfig:
        from segsync.config import load_config

        return load_config(self.config_path, self.host)

    def store_path(self) -> Path | str:
        """Where the project's store is, read from the project file without validating the rest
        (no settings machinery, no rule engine): for commands that only read the store."""
        from segsync.project_file import store_location

        return store_location(self.config_path)


def load_host() -> PluginHost:
    """Every installed plugin, loaded once; plugins that failed to load are warned about."""
    from segsync.plugins import PluginHost

    host = PluginHost()
    for failure in host.failures:
        click.echo(f"warning: {failure.message()}", err=True)
    return host


pass_ctx = click.make_pass_decorator(Context)

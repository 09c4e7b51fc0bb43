"""The project a ``segsync`` command works on, for plugins' commands (public API).

A plugin's command (``segsync_register_commands``) reads the project's store with
:func:`read_store`, which honours the root options ``--config`` and ``--wait`` and uses the
command's plugins, as the built-in read commands do. Errors a user can fix (no project file, no
store, a sync holding it) raise the core's user errors, which ``segsync`` prints as
``error: …`` (exit code 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb

if TYPE_CHECKING:
    from segsync.config import ProjectConfig
    from segsync.plugins import PluginHost

__all__ = ["read_store"]


class RunningCommand(Protocol):
    """The root object of a running ``segsync`` command line (the CLI's context)."""

    wait: float

    @property
    def host(self) -> PluginHost: ...

    def config(self) -> ProjectConfig: ...


def running_command(caller: str) -> RunningCommand:
    """The ``segsync`` command line that is running (its ``--config``, ``--wait`` and plugin
    host). Outside one, a ``RuntimeError`` whose message starts with ``caller`` (what the
    caller reads, e.g. ``"read_store() reads the store"``)."""
    import click

    command = click.get_current_context(silent=True)
    # The root command's object: the CLI's context (its --config, --wait and plugin host). Read
    # through its attributes: only the CLI imports the CLI (core/tests/test_architecture.py).
    running = command.find_root().obj if command is not None else None
    if not all(hasattr(running, name) for name in ("config", "host", "wait")):
        raise RuntimeError(f"{caller} of the segsync command that is running; "
                           "call it from a command a plugin registers")
    return running  # type: ignore[no-any-return]


@contextmanager
def read_store(
    config: str | Path | None = None, *, wait: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the store of the project at ``config`` (a ``segsync.toml``
    or its folder; default: the running command's ``--config``, else ``SEGSYNC_CONFIG`` or
    ``./segsync.toml``), waiting up to ``wait`` seconds (default: the command's ``--wait``) for
    a running sync to release it. Only inside a ``segsync`` command (else ``RuntimeError``).
    The tables' shape: docs/architecture.md."""
    from segsync.config import load_config
    from segsync.store import Store

    running = running_command("read_store() reads the store")
    project = running.config() if config is None else load_config(config, running.host)
    Store.reader_wait = float(running.wait if wait is None else wait)
    with Store(project.store_path, read_only=True) as store:
        yield store.con

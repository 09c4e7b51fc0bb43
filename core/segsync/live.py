"""A project driven by a long-lived process (public: ``segsync serve`` and other plugins).

A :class:`LiveProject` runs the same sync runs as ``segsync sync``, started by something else
than a command: a schedule (:meth:`LiveProject.sync`) or records a service pushed to segsync, a
webhook (:meth:`LiveProject.apply`). Received records are ingested by the pull's rules
(validation, record errors naming the record and field, deduplication, the append-only consent
ledger) and then the run goes on as any other: evaluate, effective consent, diff, gate, push and
acknowledge, so an opt-out received from one system reaches every other system holding the
person. Each run is in the run history with its trigger (``runs --json``: ``options.trigger``)
and ends with ``segsync_run_finished``, whose summary carries ``trigger`` (``"schedule"``,
``"webhook"``): that is the hook for "a webhook-driven update finished".

The store admits one writer: a run started while another process syncs raises
:class:`StoreBusy` and changes nothing; the caller keeps what it received and tries again.
The store is opened only for the length of each run, so read commands work in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segsync.config import ProjectConfig
    from segsync.connector import Batch, Connector
    from segsync.plugins import PluginHost
    from segsync.sync.summary import RunSummary

__all__ = ["LiveProject", "StoreBusy", "project_of"]


def __getattr__(name: str) -> Any:
    if name == "StoreBusy":  # the store's own error, loaded on first use
        from segsync.store.lock import StoreLocked

        return StoreLocked
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LiveProject:
    """One project (its ``segsync.toml``) and the plugins installed beside segsync.

    ``config_path`` as ``segsync --config`` takes it (None: ``./segsync.toml``); ``host`` the
    command's plugin host (plugins load once per command: :func:`project_of` hands over the
    running command's; tests take ``segsync.testing.Project(...).host()``); ``clock`` gives each run's ``as_of``;
    ``config`` a project already loaded instead of the file (``segsync demo``'s, whose emulated
    connections are not in its file).
    """

    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        host: PluginHost,
        clock: Callable[[], datetime] | None = None,
        config: ProjectConfig | None = None,
    ) -> None:
        from segsync.config import load_config
        from segsync.sync.runner import utc_now

        self.host = host
        self.config = config if config is not None else load_config(config_path, self.host)
        self.clock = clock or utc_now

    @property
    def directory(self) -> Path:
        """The folder of ``segsync.toml``."""
        return Path(self.config.project_dir)

    @property
    def store_path(self) -> Path:
        return Path(self.config.store_path)

    def connections(self) -> dict[str, str]:
        """Each connection's name → its connector type (``"mailchimp"``, ``"brevo"``, …)."""
        return {name: c.type for name, c in self.config.connections.items()}

    def connector(self, name: str) -> Connector:
        """The connection's connector, its settings validated (secrets from the environment).
        Close it (``close()``) when done."""
        from segsync.config import ConfigError, instantiate_connection
        from segsync.distributions import missing_connector

        connection = self.config.connections.get(name)
        if connection is None:
            raise ConfigError(f"no connection {name!r} in {self.directory / 'segsync.toml'}")
        types = self.host.connector_types()
        cls = types.get(connection.type)
        if cls is None:
            raise ConfigError(f"connection {name!r}: {missing_connector(connection.type, types)}")
        return instantiate_connection(cls, connection, self.config.project_dir)

    def store_busy(self) -> bool:
        """Whether a process (this one included) holds the store's writer lock now."""
        from segsync.store.lock import writer_active

        return writer_active(self.store_path)

    def sync(self, *, trigger: str = "schedule") -> RunSummary:
        """A full run, as ``segsync sync`` makes it. Raises :class:`StoreBusy` while another
        process syncs."""
        return self._run(trigger=trigger)

    def apply(self, received: Mapping[str, Sequence[Batch]], *, trigger: str = "webhook") -> RunSummary:
        """Ingest ``received`` (connection → batches of canonical rows) by the pull's rules,
        then evaluate, plan and push every destination, without reading any source. Raises
        :class:`StoreBusy` while another process syncs (nothing is written then)."""
        return self._run(trigger=trigger, pull=False, received=dict(received))

    def _run(self, **options: Any) -> RunSummary:
        from segsync.sync.runner import RunOptions, Runner

        return Runner(self.config, self.host, clock=self.clock).run(RunOptions(**options))


def project_of() -> LiveProject:
    """The project the running ``segsync`` command works on (its ``--config`` and plugin host),
    for a plugin's command (as ``segsync.project.read_store``); a ``RuntimeError`` outside one."""
    from segsync.project import running_command

    running = running_command("project_of() runs the project")
    return LiveProject(host=running.host, config=running.config())

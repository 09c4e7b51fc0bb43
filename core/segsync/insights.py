"""Read-only figures of a project, for reports and dashboards (public API).

::

    from segsync.insights import open_insights

    with open_insights("segsync.toml") as project:      # the store, read-only
        for s in project.segments():                     # evaluated at project.as_of
            print(s.name, s.size, [h.entries for h in project.history(s.name)])

Everything here is an aggregate (sizes, counts, rates, shares): no address leaves this module,
so what is built from it can be shared. The store is opened read-only and the project's segments
are evaluated into TEMP tables, as ``segsync segments list`` does; a running sync holds the
store, so ``wait`` seconds are waited for it (``segsync --wait``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from segsync.consent.counts import BASES, STATUS_ORDER, ConsentCount
from segsync.segments.insights import HistoryRow, Overlap, Performance, parse_window

if TYPE_CHECKING:
    from segsync.config import ProjectConfig
    from segsync.plugins import PluginHost
    from segsync.store import Store


@dataclass(frozen=True)
class SegmentSize:
    """A segment of the project and how many contacts it holds at :attr:`Insights.as_of`."""

    name: str
    description: str
    group: str | None
    rule: str | None  # None: the catch-all of its group
    size: int


@dataclass(frozen=True)
class GroupSplit:
    """An exclusive group: its segments in priority order (the catch-all last) with sizes."""

    name: str
    description: str
    parts: tuple[tuple[str, int], ...]
    catch_all: str | None

    @property
    def total(self) -> int:
        return sum(n for _, n in self.parts)


def destinations(config: ProjectConfig, host: PluginHost) -> list[str]:
    """The connections a sync pushes to (what the connector can write, unless push = false)."""
    from segsync.config import ConfigError, instantiate_connection
    from segsync.connector import WRITE_CAPABILITIES

    types = host.connector_types()
    out = []
    for name, connection in config.connections.items():
        if connection.push is False:
            continue
        cls = types.get(connection.type)
        if cls is None:
            continue
        try:
            connector = instantiate_connection(cls, connection, config.project_dir)
            try:
                writes = bool(connector.enabled_capabilities() & WRITE_CAPABILITIES)
            finally:
                connector.close()
        except (ConfigError, Exception):  # settings incomplete here: trust the file
            writes = connection.push is True
        if writes:
            out.append(name)
    return out


class Insights:
    """A project's figures: its segments evaluated at :attr:`as_of` on a read-only store.

    Valid inside the ``with open_insights(...)`` block that made it.
    """

    def __init__(self, config: ProjectConfig, host: PluginHost, store: Store, as_of: datetime,
                 sizes: dict[str, int]) -> None:
        self._config = config
        self._host = host
        self._store = store
        self.as_of = as_of
        self._sizes = sizes

    @property
    def project_name(self) -> str:
        """The project's folder name (what a report's title names)."""
        return self._config.project_dir.name

    def segments(self) -> list[SegmentSize]:
        """Every segment, in the order of the project file."""
        return [SegmentSize(s.name, s.description, s.group, s.rule, self._sizes.get(s.name, 0))
                for s in self._config.segments.segments]

    def groups(self) -> list[GroupSplit]:
        """Every exclusive group with its split (a contact is in at most one of its parts)."""
        from segsync.segments.definitions import group_members

        groups = self._config.segments.groups
        ruled = group_members(self._config.segments.segments, groups)
        out = []
        for name, group in groups.items():
            names = [s.name for s in ruled[name]] + ([group.catch_all] if group.catch_all else [])
            out.append(GroupSplit(name, group.description,
                                  tuple((n, self._sizes.get(n, 0)) for n in names), group.catch_all))
        return out

    def history(self, segment: str, last: int | None = None) -> list[HistoryRow]:
        """Size, entries and exits of ``segment`` per sync run that evaluated it, oldest first
        (``last``: only the latest that many runs)."""
        from segsync.segments import insights

        rows = insights.history(self._store.con, segment)
        return rows[-last:] if last else rows

    def overlap(self) -> list[Overlap]:
        """Every pair of segments (project-file order) with the contacts in both."""
        from segsync.segments import insights

        return insights.overlap(self._store.con, self._config.segments.segments, self._sizes,
                                destinations(self._config, self._host))

    def performance(self, window: timedelta) -> list[Performance]:
        """Sends, opens, clicks, orders, unsubscribes, bounces and revenue of each segment's
        current members over ``window`` before :attr:`as_of` (rates: ``Performance.to_dict``)."""
        from segsync.segments import insights

        return insights.report(self._store.con, [s.name for s in self._config.segments.segments],
                               self.as_of, window)

    def consent_counts(self) -> list[ConsentCount]:
        """Contacts per email consent status and system: what each system reported, what each
        destination holds from segsync, and the effective status under the project's policy
        (:mod:`segsync.consent.counts` defines the three)."""
        from segsync.config import consent_settings
        from segsync.consent.counts import status_counts

        settings = consent_settings(self._config, self._host.consent_policies())
        return status_counts(self._store.con, settings, self.as_of)


@contextmanager
def open_insights(
    config: str | Path | None = None, *, as_of: datetime | None = None, wait: float = 0.0
) -> Iterator[Insights]:
    """The figures of the project at ``config`` (a ``segsync.toml`` or its folder; default:
    ``SEGSYNC_CONFIG`` or ``./segsync.toml``) as of ``as_of`` (default: now), with the installed
    plugins (their segment functions and consent policies).

    A plugin's command passes on the root options: ``click.get_current_context().find_root()
    .params`` holds ``config`` and ``wait``. Errors a user can fix (no project file, no store,
    a rule that does not compile) raise the core's user errors, which ``segsync`` prints as
    ``error: …`` with exit code 2.
    """
    from segsync.config import load_config
    from segsync.plugins import PluginHost
    from segsync.segments import evaluate
    from segsync.store import Store

    host = PluginHost()
    project = load_config(config, host)
    at = as_of or datetime.now(timezone.utc)
    Store.reader_wait = wait
    with Store(project.store_path, read_only=True) as store:
        sizes = evaluate(store.con, project.segments.segments, project.segments.groups, at,
                         host.segment_registry())
        yield Insights(project, host, store, at, sizes)


__all__ = [
    "BASES", "STATUS_ORDER", "ConsentCount", "GroupSplit", "HistoryRow", "Insights", "Overlap",
    "Performance", "SegmentSize", "open_insights", "parse_window",
]

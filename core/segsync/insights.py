"""Read-only figures of a project, for reports and dashboards (public API).

::

    from segsync.insights import open_insights

    @cli.command()                                        # in segsync_register_commands(cli)
    def sizes():
        with open_insights() as project:                  # the store, read-only
            for s in project.segments():                  # evaluated at project.as_of
                click.echo(f"{s.name} {s.size} {[h.entries for h in project.history(s.name)]}")

Everything here is an aggregate (sizes, counts, rates, shares): no address leaves this module,
so what is built from it can be shared. The store is opened read-only and the project's segments
are evaluated into TEMP tables, as ``segsync segments list`` does, with the plugin host the
command line loaded; a running sync holds the store, so ``--wait`` seconds are waited for it.
With an external engine (docs/scale.md) the segments are evaluated there and every figure read
from the memberships, snapshots, events or consent ledger is computed there; the store gives
the runs, what destinations acknowledged, and the scores.
Tests read the same figures with ``segsync.testing.Project.insights()``.
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
    from segsync.engines import Engine
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


def parse_as_of(text: str) -> datetime:
    """An ISO 8601 instant with a zone (``Z`` or an offset), in UTC: what ``--as-of`` takes.
    ``ValueError`` names what is wrong."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or an offset")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range in UTC") from None


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


@dataclass(frozen=True)
class ScoreDistribution:
    """How one model's scores spread over the contacts it scored in run ``run_id``.

    ``bins`` counts contacts per interval of ``edges`` (``[lo, hi)``, the last one closed):
    tenths of [0, 1] for probabilities; otherwise one per whole number (an hour of the day), or
    ten equal ones over a range wider than :data:`MAX_WHOLE_BINS`.
    """

    model: str
    run_id: int
    as_of: datetime
    edges: tuple[tuple[float, float], ...]
    bins: tuple[int, ...]
    not_computed: str | None = None  # why that run has no scores of the model (then no bins)

    @property
    def contacts(self) -> int:
        return sum(self.bins)


# Scores outside [0, 1] get one bin per whole number up to this many (the hours of a day fit),
# ten equal bins beyond.
MAX_WHOLE_BINS = 48


class Insights:
    """A project's figures: its segments evaluated at :attr:`as_of` on a read-only store.

    Valid inside the ``with open_insights(...)`` block that made it.
    """

    def __init__(self, config: ProjectConfig, host: PluginHost, store: Store, as_of: datetime,
                 sizes: dict[str, int], engine: Engine | None = None) -> None:
        self._config = config
        self._host = host
        self._store = store
        self.as_of = as_of
        self._sizes = sizes
        self._engine = engine  # the project's external engine, evaluated there; None: the store
        self._source = store.con if engine is None else engine

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

        rows = insights.history(self._store.con, segment, self._engine)
        return rows[-last:] if last else rows

    def overlap(self) -> list[Overlap]:
        """Every pair of segments (project-file order) with the contacts in both."""
        from segsync.segments import insights

        return insights.overlap(self._source, self._config.segments.segments, self._sizes,
                                destinations(self._config, self._host))

    def performance(self, window: timedelta) -> list[Performance]:
        """Sends, opens, clicks, orders, unsubscribes, bounces and revenue of each segment's
        current members over ``window`` before :attr:`as_of` (rates: ``Performance.to_dict``)."""
        from segsync.segments import insights

        return insights.report(self._source, [s.name for s in self._config.segments.segments],
                               self.as_of, window)

    def consent_counts(self) -> list[ConsentCount]:
        """Contacts per email consent status and system: what each system reported, what each
        destination holds from segsync, and the effective status under the project's policy
        (:mod:`segsync.consent.counts` defines the three)."""
        from segsync.config import consent_settings
        from segsync.consent.counts import status_counts

        settings = consent_settings(self._config, self._host.consent_policies())
        return status_counts(self._store.con, settings, self.as_of, self._engine)


    def score_distributions(self) -> list[ScoreDistribution]:
        """Each model's scores as rules read them at :attr:`as_of` (the latest run at or before
        it that recorded the model, :func:`segsync.scores.scores_sql`), by model name; a model
        that run could not compute has no bins and says why. Empty when no plugin scored."""
        from segsync.scores import SCORE_RUNS_TABLE, scores_sql

        con = self._store.con
        latest = con.execute(
            f"""
            SELECT model, run_id, as_of, computed, detail FROM {SCORE_RUNS_TABLE}
            WHERE as_of <= $as_of
            QUALIFY row_number() OVER (PARTITION BY model ORDER BY run_id DESC) = 1
            ORDER BY model
            """,
            {"as_of": self.as_of},
        ).fetchall()
        out = []
        for model, run_id, as_of, computed, detail in latest:
            if not computed:
                out.append(ScoreDistribution(model, run_id, as_of, (), (), detail or "not computed"))
                continue
            scores = scores_sql(model, self.as_of)
            low, high = con.execute(f"SELECT min(score), max(score) FROM ({scores})").fetchone()
            low, high = (0.0, 1.0) if low is None or (low >= 0 and high <= 1) else (low // 1, high // 1 + 1)
            span = high - low
            count = 10 if span == 1 or span > MAX_WHOLE_BINS else int(span)
            edges = tuple((low + span * i / count, low + span * (i + 1) / count) for i in range(count))
            counts = dict(con.execute(
                "SELECT least(floor((score - $low) * $count / $span), $count - 1)::BIGINT, count(*) "
                f"FROM ({scores}) GROUP BY ALL",
                {"low": low, "span": span, "count": count},
            ).fetchall())
            out.append(ScoreDistribution(model, run_id, as_of, edges, tuple(counts.get(i, 0) for i in range(count))))
        return out

@contextmanager
def open_insights(
    config: str | Path | None = None, *, as_of: datetime | None = None, wait: float | None = None
) -> Iterator[Insights]:
    """For a plugin's command: the figures of the project at ``config`` (default: the running
    command's ``--config``, else ``SEGSYNC_CONFIG`` or ``./segsync.toml``) as of ``as_of``
    (default: now), waiting up to ``wait`` seconds (default: the command's ``--wait``) for a
    running sync, with the plugins the command line loaded (their segment functions and consent
    policies apply). Only inside a ``segsync`` command (else ``RuntimeError``), like
    :func:`segsync.project.read_store`.

    Errors a user can fix (no project file, no store yet, a rule that does not compile) raise
    the core's user errors, which ``segsync`` prints as ``error: …`` with exit code 2.
    """
    from segsync.config import load_config
    from segsync.project import running_command

    running = running_command("open_insights() reads the figures")
    project = running.config() if config is None else load_config(config, running.host)
    with _insights(project, running.host, as_of, running.wait if wait is None else wait) as view:
        yield view


@contextmanager
def read_insights(config: str | Path | None, host: PluginHost, *, as_of: datetime | None = None,
                  wait: float = 0.0) -> Iterator[Insights]:
    """The figures of the project at ``config`` with ``host``'s plugins, outside a command
    (``segsync.testing.Project.insights`` calls it with a test's host)."""
    from segsync.config import load_config

    with _insights(load_config(config, host), host, as_of, wait) as view:
        yield view


@contextmanager
def _insights(project: ProjectConfig, host: PluginHost, as_of: datetime | None, wait: float) -> Iterator[Insights]:
    from segsync.config import external_engine
    from segsync.engines.stage import evaluate_members
    from segsync.segments import evaluate
    from segsync.store import Store

    at = as_of or datetime.now(timezone.utc)
    Store.reader_wait = float(wait)
    with Store(project.store_path, read_only=True) as store, external_engine(project, host) as engine:
        if engine is None:
            sizes = evaluate(store.con, project.segments.segments, project.segments.groups, at,
                             host.segment_registry())
        else:
            sizes = evaluate_members(engine, project.segments, at, host.segment_registry())
        yield Insights(project, host, store, at, sizes, engine)


__all__ = [
    "BASES", "STATUS_ORDER", "ConsentCount", "GroupSplit", "HistoryRow", "Insights", "Overlap",
    "Performance", "ScoreDistribution", "SegmentSize", "open_insights", "parse_as_of", "parse_window",
    "read_insights",
]

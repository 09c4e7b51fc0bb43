"""Every hook segsync calls. Plugins implement them with ``@segsync.hookimpl``.

Hooks that *register* things receive a ``register`` callback: the host checks names and rejects
duplicates in one place, naming both plugins. Hooks that *observe or wrap* the pipeline receive
the objects of the current run. ``docs/hooks.md`` documents each hook; a test fails when one is
missing there or has no test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from segsync.connector import Connector, ContactChange, WriteResult
    from segsync.consent.policies import ConsentPolicy
    from segsync.engines import Engine
    from segsync.live import LiveProject
    from segsync.scores import ScoreRun
    from segsync.segments.functions import SegmentFunction
    from segsync.segments.packs import SegmentPack
    from segsync.sync.summary import RunSummary
    from segsync.triggers.changes import SegmentChanges

hookspec = pluggy.HookspecMarker("segsync")
# Plugins mark their implementations with it (also ``segsync.hookimpl``); it lives beside the
# specifications so that the core's own plugins need not import the plugin host.
hookimpl = pluggy.HookimplMarker("segsync")


# The ``register`` callbacks the registration hooks receive (public: ``segsync.RegisterConnector``
# and ``segsync.RegisterEventType`` type a plugin's own hook implementations).
class RegisterConnector(Protocol):
    def __call__(self, connector_class: type[Connector], /) -> None: ...


class RegisterEventType(Protocol):
    def __call__(self, name: str, description: str = "", /) -> None: ...


class RegisterSegmentFunction(Protocol):
    def __call__(self, function: SegmentFunction, /) -> None: ...


class RegisterSegmentPack(Protocol):
    def __call__(self, pack: SegmentPack, /) -> None: ...


class RegisterConsentPolicy(Protocol):
    def __call__(self, policy: ConsentPolicy, /) -> None: ...


class RegisterEngine(Protocol):
    def __call__(self, engine_class: type[Engine], /) -> None: ...


@hookspec
def segsync_register_connectors(register: RegisterConnector) -> None:
    """Register connector classes.

    :param register: call ``register(ConnectorClass)`` once per class; the class's
        ``type_name`` is what users write as ``type = "..."`` in ``segsync.toml``. A second
        class with the same ``type_name`` is rejected with both plugins' names.

    Called once when the plugin host loads, before any command runs.

    Example::

        @hookimpl
        def segsync_register_connectors(register):
            register(MailchimpConnector)
    """


@hookspec
def segsync_register_event_types(register: RegisterEventType) -> None:
    """Register event types beyond the built-in vocabulary.

    :param register: call ``register(name, description)``; ``name`` is dotted lower-case
        (``"webinar.attended"``). Events of unregistered types are rejected at ingestion with a
        record error naming the type. Duplicates are rejected with both plugins' names.

    Called once when the plugin host loads. The core registers its own vocabulary through this
    hook (``segsync.default_plugins.event_types``).

    Example::

        @hookimpl
        def segsync_register_event_types(register):
            register("webinar.attended", "Attended a live webinar; properties: webinar_id")
    """


@hookspec
def segsync_register_segment_functions(register: RegisterSegmentFunction) -> None:
    """Register functions for the segment rule language, as SQL builders.

    :param register: call ``register(function)`` with a ``segsync.segments`` function object
        (name, arguments, documentation and a builder returning SQL expressions), so the
        function runs inside whichever engine evaluates the rules. Duplicate names are rejected
        with both plugins' names.

    Called once when the plugin host loads.

    Example::

        @hookimpl
        def segsync_register_segment_functions(register):
            register(SegmentFunction(name="webinars", ...))
    """


@hookspec
def segsync_register_segment_packs(register: RegisterSegmentPack) -> None:
    """Register segment packs: named sets of segments (and groups) with parameters.

    :param register: call ``register(pack)`` with a ``segsync.segments.packs.SegmentPack``
        (name, description, parameters with defaults, segment templates, groups). Users switch
        a pack on with a ``[packs.NAME]`` table in ``segsync.toml`` and override its
        parameters there. Duplicate pack names are rejected with both plugins' names.

    Called when a project file with a ``[packs]`` table is loaded. The core registers its
    standard packs (engagement, lifecycle, value, triggers) through this hook
    (``segsync.default_plugins.segment_packs``).

    Example::

        @hookimpl
        def segsync_register_segment_packs(register):
            register(SegmentPack(
                name="webinars",
                description="Webinar attendance",
                params=(PackParam("window", "duration", "90d", "Attendance window"),),
                segments=(PackSegment("webinar-fans", "Attended twice",
                                      "count(webinar.attended, {window}) >= 2"),),
            ))
    """


@hookspec
def segsync_register_commands(cli: click.Group) -> None:
    """Add commands to the ``segsync`` command line.

    :param cli: the root ``click`` group; add with ``@cli.command()`` or ``cli.add_command``.

    Called once when the CLI starts (``segsync --help`` lists plugin commands), so every command
    imports the module that implements it: import heavy libraries inside the commands that use
    them (as the built-in commands in ``segsync/cli/`` do).

    Example::

        @hookimpl
        def segsync_register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hi")
    """


@hookspec(firstresult=True)
def segsync_push(
    connector: Connector, changes: Sequence[ContactChange], run_id: int | None
) -> WriteResult | None:
    """Push one batch of changes to one destination; the first non-None result wins.

    :param connector: the destination's connector behind the consent gate, bound to this batch
        (``connector.connection`` names it).
    :param changes: at most ``connector.max_batch_size`` changes: copies, yours to read.
    :param run_id: the current run's id.
    :return: the :class:`~segsync.connector.WriteResult` of the batch.

    Called by the push stage of a sync run for every batch of every destination, after the
    consent gate. The core implements it (``trylast``) by calling ``connector.write(changes)``; a
    connector that declares ``write_batch_size`` reports its write batches during that call and
    the acknowledge stage commits them at once (see :class:`~segsync.connector.Connector`). A
    connector with a write session (``Connector.write_session``, e.g. the files destination)
    gets the run's changes in pages of 10,000, one call each, and its session commits them all
    after the last; nothing of them is acknowledged before. Plugins wrap it with ``@hookimpl(wrapper=True)`` to observe or time a push, or answer first with
    ``@hookimpl(tryfirst=True)`` returning their own result to veto a batch (return None to let
    the push happen).

    ``connector.write`` passes on only plain ``ContactChange`` values equal to changes of this
    batch, each once, and only during this call; anything else (a subclass, another contact, an
    altered field, a duplicate) is refused and recorded with the plugin's name and the field,
    and the destination's part of the run is not ``ok``. Only outcomes the connector itself gave
    are acknowledged: a vetoing result may reject or defer changes, never report them written.

    Example::

        @hookimpl(wrapper=True)
        def segsync_push(connector, changes, run_id):
            started = time.monotonic()
            result = yield
            metrics.timing(connector.connection, time.monotonic() - started)
            return result
    """


@hookspec
def segsync_score_contacts(scores: ScoreRun) -> None:
    """Compute per-contact scores (predictions, ranks) that segment rules read.

    :param scores: a :class:`segsync.scores.ScoreRun`: the store connection inside the run
        (``scores.con``), the run's ``run_id`` and ``as_of``, and ``scores.wanted``, the models
        the project's rules read (through :func:`segsync.scores.score_feature`). For each
        wanted model it provides, the plugin calls ``scores.write(model, keys, values)`` (or
        ``write_sql``) or ``scores.unavailable(model, reason)``.

    Called once per sync run that is not a dry run, after the pull and before the segments are
    evaluated, only when ``scores.wanted`` is not empty. A segment reading a model that no
    plugin wrote in the run, or that a plugin declared unavailable, is held with the reason
    (it keeps its last membership). An exception raised here is logged with the plugin's name
    and makes the wanted models it did not write unavailable; the run goes on.

    Example::

        @hookimpl
        def segsync_score_contacts(scores):
            if "vip_rank" in scores.wanted:
                scores.write_sql("vip_rank", "SELECT contact_key, percent_rank() OVER "
                                 "(ORDER BY company_size) AS score FROM contacts")
    """


@hookspec
def segsync_run_finished(summary: RunSummary) -> None:
    """Observe the end of a sync run (succeeded, with-rejections, partial or failed).

    :param summary: the run's :class:`~segsync.sync.summary.RunSummary` (id, status, counts per
        phase and per destination, errors).

    Called once at the end of every non-dry run, after the run row is final. Exceptions raised
    here are logged with the plugin's name and do not change the run's status.

    ``summary.trigger`` says what started the run: ``"sync"`` (a command), ``"schedule"``,
    ``"webhook"`` (a webhook-driven update: records a service pushed, applied and propagated
    through :mod:`segsync.live`, e.g. by ``segsync serve``) or ``"retry"`` (pushing again what
    such a run could not).

    Example::

        @hookimpl
        def segsync_run_finished(summary):
            if summary.status != RunStatus.SUCCEEDED:  # from segsync import RunStatus
                notify_slack(f"segsync run {summary.run_id}: {summary.status}")
    """


@hookspec
def segsync_segment_changes(changes: SegmentChanges) -> None:
    """Observe who entered and left which segment, once per sync run (a scheduled or
    webhook-driven run too).

    :param changes: a :class:`segsync.SegmentChanges`: ``origin`` (what started the run:
        ``"sync"``, ``"schedule"``, ``"webhook"``), ``run_id``, ``as_of``, ``changes`` (each a
        :class:`segsync.SegmentChange`: ``segment``, ``contact_key``, ``change`` = ``"enter"`` or
        ``"exit"``; also as ``entries`` and ``exits``), ``baselined`` (segments evaluated for the
        first time: their members are a baseline, not entries) and ``queued`` (outbox rows per
        ``[[triggers]]`` entry).

    Called after the run's push, once the changes (and the outbox of the configured triggers)
    were committed, before the triggers are delivered. Changes are computed
    only when the project configures ``[[triggers]]`` or a plugin implements this hook; the
    first such evaluation of a segment is its baseline. An observer sees each change at most
    once (a crash before the call skips it): for exactly-once delivery use ``[[triggers]]``
    (docs/triggers.md). Exceptions are logged with the plugin's name and change nothing else.

    Example::

        @hookimpl
        def segsync_segment_changes(changes):
            for change in changes.entries:
                if change.segment == "vip":
                    crm.create_task(f"welcome {change.contact_key} to VIP")
    """


@hookspec
def segsync_register_consent_policies(register: RegisterConsentPolicy) -> None:
    """Register consent policies: how effective consent is read from the consent ledger.

    :param register: call ``register(policy)`` with a
        :class:`segsync.consent.policies.ConsentPolicy` (name, description, the methods whose
        opt-ins are explicit enough to lift a sticky opt-out, the opt-in methods that count at
        all, and how long implied consent lasts per method). The engine compiles it to SQL over
        the ledger. Duplicate names are rejected with both plugins' names.

    Called when a sync run, ``segsync consent show`` or another consent command reads the
    ``[consent]`` table of ``segsync.toml``, which picks a policy for the project, per
    connection and per contact country. The core registers ``default``,
    ``strict_double_opt_in`` and ``casl`` through this hook (``segsync.default_plugins.consent_policies``).

    Example::

        @hookimpl
        def segsync_register_consent_policies(register):
            register(ConsentPolicy(
                name="uk_pecr_soft_opt_in",
                description="Soft opt-in from a purchase lasts 2 years",
                implied={"purchase": timedelta(days=730)},
            ))
    """


@hookspec
def segsync_register_engines(register: RegisterEngine) -> None:
    """Register engines: where segment evaluation, effective consent and the membership
    snapshot run (docs/scale.md).

    :param register: call ``register(EngineClass)`` with a subclass of
        :class:`segsync.engines.Engine`; its ``name`` is what users write as ``[store] engine =
        "..."`` and its ``Settings`` (a :class:`segsync.engines.EngineSettings`) reads the other
        keys of ``[store]``, secrets from ``SEGSYNC_STORE_<FIELD>``. A second class with the
        same ``name`` is rejected with both plugins' names.

    Called when a command opens the project's engine. The core registers ``duckdb`` (the
    embedded store) through this hook (``segsync.default_plugins.engines``); the
    ``segsync-postgres`` distribution registers ``postgres``.

    Example::

        @hookimpl
        def segsync_register_engines(register):
            register(PostgresEngine)
    """


@hookspec(firstresult=True)
def segsync_demo_serve(project: LiveProject, emulated: Sequence[str], forever: bool) -> bool | None:
    """Show the live loop of ``segsync demo --serve`` on the demo business.

    :param project: the demo's :class:`segsync.live.LiveProject`, after its first syncs, while
        the emulators of ``emulated`` still run.
    :param emulated: the connections that go to a local emulator (``--with``), by name.
    :param forever: keep serving until Ctrl-C (``--serve-forever``) instead of returning once
        the show is over.
    :return: True once shown; the first implementation that returns a value wins.

    Called by ``segsync demo --serve`` after the demo's syncs. Without an implementation the
    demo exits 2 naming the distribution to install (``segsync-serve``, ``plugins/serve``,
    implements it: a scripted unsubscribe in one emulator reaching the other within seconds).

    Example::

        @hookimpl
        def segsync_demo_serve(project, emulated, forever):
            print(f"serving {project.directory} with {', '.join(emulated)}")
            return True
    """

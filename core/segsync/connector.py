"""The connector contract: what a connector class declares and what the runner calls.

A connector talks to one external system (an ESP, a CRM, a folder of files). The runner creates
one instance per configured *connection* (a named entry under ``[connections]`` in
``segsync.toml``) and drives it:

* ``check()`` — connectivity and credentials, for ``segsync check``; ``fix()`` repairs what
  it can, for ``segsync check --fix``; ``schema_version()`` lets remembered refusals be
  retried once the system's schema changes.
* ``read(stream, cursor)`` — incremental pull; yields :class:`Batch` objects, each with the
  cursor that is true once that batch is committed. The runner stores the cursor in the same
  transaction as the batch's records, so a crash never skips data.
* ``write(changes)`` — push; takes a batch of :class:`ContactChange` (at most
  ``max_batch_size``) and returns a :class:`WriteResult` with exactly one :class:`Outcome` per
  change. The runner acknowledges ``ok`` outcomes, records ``rejected`` ones as record errors
  (remembered: not sent again until the record, the connection's settings or the system's
  ``schema_version()`` change) and sends ``retryable`` ones again on the next run (they stay
  unacknowledged).
* ``write(changes, report=...)`` — only for connectors that declare ``write_batch_size``: the
  connector also calls ``report(outcomes)`` with the outcomes of each *write batch* (at most
  ``write_batch_size`` changes, the unit of one API write) as soon as all of its calls are done,
  from the thread that called ``write``. The runner acknowledges each report at once, so a crash
  re-sends only write batches that were in flight or not yet reported, instead of the whole
  ``write``. A connector running write batches concurrently starts a new one only after an
  earlier one was reported, so at most ``write_concurrency`` write batches are ever sent but
  unacknowledged.
* ``write_session()`` — only for connectors without ``max_batch_size`` whose one write per run
  replaces everything they hold at once (the files destination): a :class:`WriteSession` that
  takes the run's changes a page at a time and makes them durable together on ``commit()``,
  so neither the connector nor the runner holds every change of a large run at once. The
  runner acknowledges the pages only after the commit.

Records a connector yields use the canonical column names documented in ``docs/records.md``
(contacts: ``email`` plus attribute columns; events: ``email``, ``type``, ``timestamp``, ``id``,
``properties``; consent: ``email``, ``channel``, ``purpose``, ``status``, ``timestamp``,
``method``, ``evidence``). The store validates and normalizes them set-based; a bad record
becomes a record error naming the record and field, never a failed batch.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from segsync.statuses import OutcomeStatus
from segsync.sync.frozen import constructor

if TYPE_CHECKING:
    from segsync.connector_settings import ConnectorSettings


class Capability(str, enum.Enum):
    """What a connector can do; the runner only calls what is declared."""

    READ_CONTACTS = "read_contacts"
    READ_EVENTS = "read_events"
    READ_CONSENT = "read_consent"
    WRITE_CONTACTS = "write_contacts"  # attributes and subscription status
    WRITE_MEMBERSHIPS = "write_memberships"  # tags / lists / segments
    WRITE_CONSENT = "write_consent"  # opt-outs and their equivalents
    DELETE_CONTACTS = "delete_contacts"
    # Optional: member events or tags that start the system's own automations, for segment-entry
    # triggers (``send_triggers``, docs/triggers.md). Not a write of the sync's diff.
    SEND_TRIGGERS = "send_triggers"


READ_CAPABILITIES = frozenset(
    {Capability.READ_CONTACTS, Capability.READ_EVENTS, Capability.READ_CONSENT}
)
WRITE_CAPABILITIES = frozenset(
    {
        Capability.WRITE_CONTACTS,
        Capability.WRITE_MEMBERSHIPS,
        Capability.WRITE_CONSENT,
        Capability.DELETE_CONTACTS,
    }
)


class Stream(str, enum.Enum):
    """The kinds of records a source yields, in the order the runner pulls them."""

    CONTACTS = "contacts"
    CONSENT = "consent"
    EVENTS = "events"


STREAM_CAPABILITY = {
    Stream.CONTACTS: Capability.READ_CONTACTS,
    Stream.CONSENT: Capability.READ_CONSENT,
    Stream.EVENTS: Capability.READ_EVENTS,
}


@dataclass(frozen=True)
class FileSlice:
    """Records the store should scan itself (DuckDB's readers), for bulk loads from files.

    Rows are numbered from 1 (CSV: data rows after the header; JSONL: physical lines). Rows
    ``skip_rows + 1`` to ``until_row`` are loaded (``until_row`` None: to the end).
    ``newer_than`` keeps only rows whose ``(column, ISO timestamp)`` is later. ``columns``
    maps canonical column names to the file's column names (identity where absent).
    ``skip_bytes``: the byte offset where row ``skip_rows + 1`` starts, when the connector
    knows it (an append-only file's cursor): the store then reads from there rather than
    counting ``skip_rows`` rows from the top. It must be that row's true start.
    """

    path: Path
    format: Literal["csv", "jsonl"]
    skip_rows: int = 0
    until_row: int | None = None
    newer_than: tuple[str, str] | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    label: str = ""  # how record errors name the file; defaults to the path
    skip_bytes: int | None = None


@dataclass(frozen=True)
class RecordProblem:
    """A pulled record the connector could not translate into a row (e.g. an API payload with a
    field of the wrong shape): it becomes a record error naming ``record`` and ``field``."""

    record: str
    field: str
    reason: str


@dataclass
class Batch:
    """One unit of pulled records plus the cursor that holds once they are committed.

    Exactly one of ``rows`` (canonical dicts, e.g. an API page) or ``file`` is set.
    ``record_ids`` optionally names each row for error messages (defaults to its position).
    ``problems`` are the batch's records that could not be translated into rows (with ``rows``
    only; see :mod:`segsync.payload`): each is a record error, counted as rejected.
    """

    stream: Stream
    cursor: Any
    rows: Sequence[Mapping[str, Any]] | None = None
    file: FileSlice | None = None
    record_ids: Sequence[str] | None = None
    problems: Sequence[RecordProblem] = ()

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.file is None):
            raise ValueError("a Batch holds either rows or a file, not both or neither")
        if self.problems and self.rows is None:
            raise ValueError("a Batch's problems go with its rows; a file's bad lines are found by the store")


@dataclass(frozen=True)
class ContactChange:
    """What one destination must change for one contact.

    ``op`` is ``upsert`` (create or update attributes/status) or ``delete``. ``status`` is the
    subscription status the destination should hold: ``subscribed``, ``unsubscribed``,
    ``pending``, ``cleaned`` (bounced), ``complained`` or ``none`` (no marketing consent on
    record). ``tags_add``/``tags_remove`` are segment memberships entering and leaving.
    ``previous_status`` is what the destination last acknowledged (None when never).
    ``consent_method`` is the method of the ledger record that decided ``status`` (``form``,
    ``double_opt_in``, ``import``, …; None without a record), so a destination can tell a
    confirmed opt-in from an imported one.
    """

    contact_key: str
    op: Literal["upsert", "delete"]
    status: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    tags_add: tuple[str, ...] = ()
    tags_remove: tuple[str, ...] = ()
    previous_status: str | None = None
    external_id: str | None = None
    consent_method: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The destination's answer for one change: ``status`` is an :class:`OutcomeStatus`
    (``ok``, ``rejected`` or ``retryable``); a refusal says why in ``reason`` and, when one
    field is to blame, names it in ``field``. Build them with the class methods."""

    contact_key: str
    status: OutcomeStatus
    reason: str | None = None
    field: str | None = None
    external_id: str | None = None

    @classmethod
    def ok(cls, contact_key: str, external_id: str | None = None) -> Outcome:
        if cls is Outcome:  # (one per change written: built without the dataclass's __init__)
            return _outcome(contact_key=contact_key, status=OutcomeStatus.OK, reason=None, field=None,
                            external_id=external_id)
        return cls(contact_key, OutcomeStatus.OK, external_id=external_id)

    @classmethod
    def rejected(cls, contact_key: str, reason: str, field: str | None = None) -> Outcome:
        return cls(contact_key, OutcomeStatus.REJECTED, reason=reason, field=field)

    @classmethod
    def retryable(cls, contact_key: str, reason: str) -> Outcome:
        return cls(contact_key, OutcomeStatus.RETRYABLE, reason=reason)


_outcome = constructor(Outcome)


@dataclass(frozen=True)
class TriggerMessage:
    """One segment entry or exit for a system's automations (:meth:`Connector.send_triggers`).

    ``kind`` is ``event`` (record an event called ``name`` on the person) or ``tag`` (add the
    tag ``name``). ``key`` is the delivery's idempotency key, the same on every attempt: send it
    with the event (e.g. as a property) so a repeat can be recognised. ``in_doubt`` says an
    earlier attempt may have reached the system (the process stopped before its outcome was
    recorded): look for ``key`` there before sending again, where the system allows it.
    ``properties`` are strings: ``segment``, ``change`` and ``segsync_key`` plus the trigger's own.
    """

    key: str
    contact_key: str
    kind: Literal["event", "tag"]
    name: str
    segment: str
    change: Literal["enter", "exit"]
    occurred_at: datetime
    properties: Mapping[str, str] = field(default_factory=dict)
    in_doubt: bool = False


OutcomeReport = Callable[[Sequence[Outcome]], None]
"""What ``write(changes, report=...)`` calls with the outcomes of each finished write batch."""


@dataclass
class WriteResult:
    """Per-record outcomes of one ``write`` call and how many API/file writes it made."""

    outcomes: list[Outcome]
    calls: int


class lazy_settings:  # noqa: N801 - used like a class attribute's value, named like a function
    """A connector's ``Settings`` named by ``"module:Class"`` and imported on first access.

    ``segsync plugins`` and ``--help`` load every connector class; naming the settings class
    directly would import pydantic-settings (~0.1 s) for a listing that never reads a setting.
    ``Settings = lazy_settings("segsync_acme.settings:AcmeSettings")`` defers that to the first
    ``Connector.Settings`` access (configuring a connection), which returns the class itself.
    """

    def __init__(self, target: str) -> None:
        module, _, name = target.partition(":")
        if not module or not name:
            raise ValueError(f"lazy_settings needs 'module:Class', got {target!r}")
        self.target = target
        self._class: type[ConnectorSettings] | None = None

    def __get__(self, instance: object, owner: type | None = None) -> type[ConnectorSettings]:
        if self._class is None:
            module, _, name = self.target.partition(":")
            self._class = getattr(import_module(module), name)
        return self._class

    def __repr__(self) -> str:
        return f"lazy_settings({self.target!r})"


class WriteSession:
    """One run's write to a connector that replaces what it holds at once, taken in pages
    (:meth:`Connector.write_session`).

    ``write(changes)`` is called for each page, in the order of the run's diff, and returns one
    outcome per change as ``write`` does; an ``ok`` is final only once ``commit()`` returned,
    which makes every page durable at once and returns how many writes (files, calls) it made.
    ``abort()`` drops what the pages staged; after either, the session is finished. A change
    for a contact written in an earlier page replaces it, as consecutive ``write`` calls would.
    """

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        raise NotImplementedError

    def commit(self) -> int:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what the pages staged (the default stages nothing)."""


class Connector:
    """Base class of connectors. Subclass it, set the class attributes, override what you declare.

    Class attributes:

    * ``type_name`` — the name users write as ``type = "..."`` in ``segsync.toml``.
    * ``capabilities`` — a frozenset of :class:`Capability`.
    * ``Settings`` — a :class:`ConnectorSettings` subclass, or ``lazy_settings("module:Class")``
      naming one, so that listing connector types does not build pydantic.
    * ``max_batch_size`` — most changes one ``write`` call accepts (None: no limit).
    * ``write_batch_size`` — changes per write batch, the unit of one API write (None: the whole
      ``write`` is one unit). Set it only if ``write`` accepts ``report`` (see :meth:`write`).
    * ``write_concurrency`` — most write batches in flight (sent, not yet reported) at once;
      instances may narrow it from their settings. A killed push re-sends at most
      ``write_concurrency × write_batch_size`` changes.
    """

    type_name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    Settings: ClassVar[type[ConnectorSettings]] = lazy_settings("segsync.connector_settings:ConnectorSettings")
    max_batch_size: ClassVar[int | None] = None
    write_batch_size: ClassVar[int | None] = None
    write_concurrency: int = 1

    def __init__(self, connection: str, settings: ConnectorSettings, project_dir: Path) -> None:
        self.connection = connection
        self.settings = settings
        self.project_dir = project_dir

    def enabled_capabilities(self) -> frozenset[Capability]:
        """The capabilities this configured instance offers (default: all declared)."""
        return self.capabilities

    def check(self) -> list[str]:
        """Problems with connectivity, credentials or configuration; empty when all is well."""
        return []

    def fix(self) -> list[str]:
        """Repair what ``check`` found and can be repaired (``segsync check --fix``).

        Return what was done, one line each. Only ever called on the user's explicit request:
        a connector never creates fields, lists or attributes in the user's account silently.
        """
        return []

    def schema_version(self) -> str | None:
        """A short text that changes when the system's schema changes (e.g. its contact
        attributes or merge fields), or None when the connector cannot tell.

        Records the system refused are remembered and not sent again until their data changes;
        when this text changes they are planned again, since the refusal (a missing field, say)
        may no longer hold. Called only for connections with remembered refusals.
        """
        return None

    def read(self, stream: Stream, cursor: Any | None) -> Iterator[Batch]:
        """Yield batches of ``stream`` records newer than ``cursor`` (None: everything)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read {stream.value}")

    def write(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> WriteResult:
        """Apply ``changes``; return one outcome per change.

        ``report`` is passed only to connectors that declare ``write_batch_size`` (a simple
        connector may leave the parameter out). With it, call ``report(outcomes)`` once per
        write batch, from the calling thread, as soon as the batch's calls are done: every
        contact in at most one report, each outcome final. The returned :class:`WriteResult`
        still holds every outcome, reported or not.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot write")

    def send_triggers(self, messages: Sequence[TriggerMessage]) -> list[Outcome]:
        """Hand segment entries and exits to the system's automations (capability
        ``SEND_TRIGGERS``); return one :class:`Outcome` per message, in order: ``ok`` once the
        system accepted it, ``rejected`` when it never will, ``retryable`` otherwise.

        Called after the run's push, only for people this connection acknowledged as
        subscribed and whose consent still allows mail (the core's consent gate for triggers).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot send triggers")

    def write_session(self) -> WriteSession | None:
        """A :class:`WriteSession` for this run's changes, or None (the default): then the
        runner calls ``write`` once with every change (no ``max_batch_size``) or once per batch.
        Offer one only without ``max_batch_size`` and ``write_batch_size``, when the run's
        changes are written in one atomic replacement that can be built page by page."""
        return None

    def close(self) -> None:
        """Release connections; called once at the end of a run."""

    @classmethod
    def start_emulator(cls, stack: ExitStack) -> dict[str, Any] | None:
        """Start a local stand-in of the service, for ``segsync demo --with TYPE`` and dry runs.

        Register its shutdown on ``stack`` and return the settings of a connection that reaches
        it (secrets as plain strings: the caller moves them to the environment). None when the
        connector ships no emulator.
        """
        return None

    def __repr__(self) -> str:
        # Settings reprs mask SecretStr; never include raw secrets here.
        return f"<{type(self).__name__} connection={self.connection!r}>"


def __getattr__(name: str) -> Any:
    # ``segsync.connector.ConnectorSettings`` still works; its module (pydantic-settings) loads
    # only when it is asked for.
    if name == "ConnectorSettings":
        from segsync.connector_settings import ConnectorSettings

        return ConnectorSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

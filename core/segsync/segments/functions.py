"""The segment-function registry: what a rule may call and how each call becomes SQL.

A :class:`SegmentFunction` declares its parameters, result type and documentation, and a
``build(ctx, args)`` callable that returns a :class:`Built`: a sqlglot expression evaluated
per contact, plus the :class:`Feature` columns that expression reads. Features are per-contact
columns computed once per evaluation and shared by all rules; two builders asking for the
same aggregate get the same column, because a feature's name is a hash of its SQL.

Plugins add functions through the ``segsync_register_segment_functions(register)`` hook, where
``register`` is :meth:`FunctionRegistry.register`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlglot import exp

from .errors import FunctionRegistryError, did_you_mean

# Tables the generated SQL reads; builders refer to their columns unqualified.
EVENTS_TABLE = "events"
CONTACTS_TABLE = "contacts"

FeatureStage = Literal["contact", "event", "joined", "row"]


@dataclass(frozen=True)
class Feature:
    """One per-contact column a rule needs.

    ``stage`` says where it is computed:

    * ``contact`` — ``expr`` is a column of ``contacts`` (``alias`` is the column name).
    * ``event`` — ``expr`` is an aggregate over the contact's ``events`` rows with
      ``occurred_at <= as_of``, normally with a FILTER. ``event_types`` lists the types the
      aggregate's FILTER admits (None: any type) and ``since`` the earliest instant it looks
      at (None: all history); the engine uses both, and the FILTER itself, to read only the
      rows some feature needs, and computes ``COUNT(DISTINCT key) FILTER (…)`` on those rows
      alone (see ``event_aggregates``).
    * ``joined`` — ``expr`` is a SELECT yielding ``contact_key`` and ``value``, at most one row
      per contact, LEFT JOINed to contacts.
    * ``row`` — ``expr`` is computed over the joined per-contact row (may read contact columns
      and event/joined features, may use window functions over all contacts, not other row
      features).

    Rules read the feature through :meth:`ref`. Contacts without a matching event (or joined
    row) may see NULL rather than 0 in event/joined features: builders must COALESCE where
    NULL is not the meaning.

    Incremental evaluation (``incremental``) keeps event and joined features between runs and
    recomputes them only for contacts whose inputs changed. For an event feature it derives
    those from ``event_types`` and ``since``, so an event feature must depend on ``as_of``
    only through ``occurred_at <= as_of`` and its window start ``since``. A joined feature
    declares ``moves(t0, t1)``: a SELECT of the ``contact_key`` of every contact whose value
    may differ between the instants ``t0 < t1`` although no row of ``events``,
    ``consent_ledger``, ``suppressions`` or ``status_changes`` was added for them (the
    engine recomputes those contacts anyway). A joined feature without ``moves``, or reading
    any other table, makes every evaluation a full one.
    """

    stage: FeatureStage
    expr: exp.Expression
    alias: str | None = None
    event_types: frozenset[str] | None = None
    since: datetime | None = None
    moves: Callable[[datetime, datetime], exp.Select] | None = field(default=None, compare=False)

    @cached_property  # rendering the SQL to hash it is most of a rule's compile time
    def name(self) -> str:
        if self.alias:
            return self.alias
        digest = hashlib.sha1(f"{self.stage}:{self.expr.sql('duckdb')}".encode()).hexdigest()
        return f"f_{digest[:12]}"

    def ref(self) -> exp.Column:
        return exp.column(self.name)


@dataclass(frozen=True)
class Built:
    """What a builder returns: the per-contact expression and the features it reads."""

    expr: exp.Expression
    features: tuple[Feature, ...] = ()


ParamKind = Literal[
    "event", "string", "number", "duration", "attribute", "event_or_attribute", "segment",
    "channel",
]


@dataclass(frozen=True)
class Param:
    """One parameter. Kinds and what the builder receives:

    * ``event`` — an event type, written as a dotted name (``email.opened``) or a string
      (``"Order Completed"``) → ``str``
    * ``string`` → ``str``; ``number`` → ``int | float``; ``duration`` → ``timedelta``
    * ``attribute`` — ``attr.NAME`` → :class:`Attribute`
    * ``event_or_attribute`` → ``str`` or :class:`Attribute`
    * ``segment`` — a segment name as a string → ``str``
    * ``channel`` — a consent channel as a string (``"email"``) → ``str``

    An optional parameter the rule leaves out is passed as ``None``.
    """

    name: str
    kind: ParamKind
    optional: bool = False


@dataclass(frozen=True)
class Attribute:
    """A resolved ``attr.NAME``: a known ``contacts`` column or a key of ``custom`` JSON."""

    name: str
    column: str | None  # None: read from custom JSON
    type: Literal["string", "number", "timestamp", "any"]

    def expr(self) -> exp.Expression:
        if self.column:
            return exp.column(self.column)
        # The key was validated as a plain identifier; it reaches SQL only as a JSON path
        # inside a string literal, never as an identifier.
        return exp.JSONExtractScalar(
            this=exp.column("custom"),
            expression=exp.JSONPath(
                expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=self.name)]
            ),
        )

    def feature(self) -> Feature:
        col = self.column or "custom"
        return Feature("contact", exp.column(col), alias=col)


class BuildContext:
    """What builders may ask of the compiler: the evaluation instant and other segments."""

    def __init__(
        self,
        as_of: datetime,
        segment_ref: Callable[[str], exp.Expression] | None = None,
        dialect: str = "duckdb",
    ) -> None:
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware (e.g. datetime.now(timezone.utc))")
        self.as_of = as_of.astimezone(timezone.utc)
        self._segment_ref = segment_ref
        # The engine the SQL will run on (a sqlglot dialect name). Builders return DuckDB
        # semantics and segsync.segments.dialects renders them; a builder that writes SQL text
        # DuckDB alone understands asks for the portable form when this is not "duckdb".
        self.dialect = dialect

    @staticmethod
    def timestamp(at: datetime) -> exp.Expression:
        """A TIMESTAMPTZ literal (rendered identically in DuckDB and Postgres)."""
        text = at.astimezone(timezone.utc).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("timestamptz"))

    def as_of_literal(self) -> exp.Expression:
        return self.timestamp(self.as_of)

    def as_of_epoch(self) -> exp.Expression:
        return exp.Literal.number(repr(self.as_of.timestamp()))

    def window_start(self, window: timedelta | None) -> datetime | None:
        """Exclusive lower bound of ``(as_of - window, as_of]``; None for all history."""
        if window is None:
            return None
        try:
            return self.as_of - window
        except OverflowError:
            raise ValueError(
                f"a {window.days}-day window before {self.as_of:%Y-%m-%d} starts before year 1"
            ) from None

    def in_window(self, window: timedelta | None) -> exp.Expression | None:
        """``occurred_at > as_of - window`` (the upper bound is applied to all events)."""
        start = self.window_start(window)
        if start is None:
            return None
        return exp.GT(this=exp.column("occurred_at"), expression=self.timestamp(start))

    def segment(self, name: str) -> exp.Expression:
        """Boolean membership of another segment (records the dependency)."""
        if self._segment_ref is None:
            raise ValueError("segment references are not available here")
        return self._segment_ref(name)


Builder = Callable[[BuildContext, Mapping[str, Any]], Built]


@dataclass(frozen=True)
class SegmentFunction:
    """A function rules can call.

    ``returns`` is ``"bool"`` (a condition) or ``"number"``. A bool builder's expression may
    be NULL: the compiler reads NULL as false. ``example`` is a complete rule using the
    function (docs and tests render it). ``origin`` names who registered it (a plugin's
    distribution name), so clashes can name both parties.
    """

    name: str
    params: tuple[Param, ...]
    returns: Literal["bool", "number"]
    doc: str
    build: Builder
    example: str = ""
    origin: str = "segsync"
    # Optional custom argument binding (e.g. ``sum(order.completed.value, 30d)``): takes
    # the call's AST args and returns them rearranged to match ``params``.
    rearrange: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = field(
        default=None, compare=False
    )

    def signature(self) -> str:
        parts = [f"[{p.name}]" if p.optional else p.name for p in self.params]
        return f"{self.name}({', '.join(parts)})"


class FunctionRegistry:
    """Name → :class:`SegmentFunction`. Names are unique: a clash is an error naming both."""

    def __init__(
        self, event_types: Iterable[str] | None = None, channels: Iterable[str] | None = None
    ) -> None:
        self._functions: dict[str, SegmentFunction] = {}
        # The vocabularies of the store (ingestion admits no other event type or channel), so
        # a rule naming an unknown one is an error rather than a segment that is silently
        # empty. None: not checked.
        self.event_types = None if event_types is None else frozenset(event_types)
        self.channels = None if channels is None else frozenset(channels)

    def register(self, fn: SegmentFunction, *, replace: bool = False) -> None:
        """Add ``fn``. With ``replace=True`` it supersedes an existing function of that name
        (how a plugin refines a built-in such as ``consentable``)."""
        if not isinstance(fn, SegmentFunction):
            raise FunctionRegistryError(
                f"register() takes a SegmentFunction, not {type(fn).__name__}"
            )
        if not fn.name.isidentifier() or fn.name.lower() in ("and", "or", "not", "in", "true",
                                                              "false", "attr"):
            raise FunctionRegistryError(f"{fn.name!r} (from {fn.origin!r}) is not a usable name")
        old = self._functions.get(fn.name)
        if old is not None and not replace:
            raise FunctionRegistryError(
                f"segment function {fn.name!r} from {fn.origin!r} clashes with the one "
                f"registered by {old.origin!r}"
            )
        self._functions[fn.name] = fn

    def get(self, name: str) -> SegmentFunction:
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(f"unknown function {name!r}{did_you_mean(name, self._functions)}")

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[SegmentFunction]:
        return iter(sorted(self._functions.values(), key=lambda f: f.name))

    def names(self) -> list[str]:
        return sorted(self._functions)


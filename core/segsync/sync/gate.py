"""The gate stage: the core's consent check between the diff and any connector's write.

The desired state already derives every status from effective consent, so the gate should never
fire for what the planner produced; it is defence in depth against plugins (a ``segsync_push``
implementation that injects, alters or disguises changes) and planner bugs. It is applied twice:

1. the push stage (:mod:`segsync.sync.push`) splits each planned batch before calling the
   ``segsync_push`` hook, so a blocked change is never handed to any hook implementation;
2. the connector object every hook implementation receives is a :class:`GatedConnector`, bound
   to that one batch. Its ``write`` reads each change it is given exactly once into a fresh,
   plain :class:`ContactChange` (:func:`plain_change`), checks those copies against the same
   effective consent and against the batch the push stage handed over (field by field, types
   included), and gives the connector the push stage's own change each copy equals, never an
   object a plugin held. A change object that reads differently each time, or a dict mutated
   after the check, therefore cannot change what the connector receives. The push stage's
   changes are checked but not copied (no plugin can reach them) and the plugin's items are
   copied a page at a time, so a batch of a million changes costs one extra copy for the hook,
   not several per change. When the core's own ``segsync_push`` is the only implementation
   (``PluginHost.only_core_pushes``), no plugin code ever holds the changes: the hook is handed
   the batch itself, and its write of exactly that tuple goes to the connector unchanged (the
   push stage's split already checked those very objects); any other write is checked as above.

What reaches the acknowledgement (:mod:`segsync.sync.ack`) is settled by the gate too
(:meth:`GatedConnector.settle`): only a change the connector itself answered ``ok`` is
acknowledged; a hook that reports ``ok`` for a change it never wrote gets it retried, never
acknowledged.

Every block is recorded: a record error (phase ``gate``) and a ``status_changes`` row with
outcome ``blocked``; every refused change is a record error naming the plugin and the field.
What no in-process check can enforce: a plugin that reaches around the connector object (its
private attributes, or an API client of its own) — plugins run with the same rights as segsync
itself; install only trusted ones (docs/consent.md).

Rules, per change (``op`` ``delete`` always passes: removing someone never mails them):

* an erased person (their address matches an erasure hash) gets no upsert at all;
* ``subscribed`` needs effective status ``subscribed``; ``pending`` needs ``subscribed``, or
  ``pending`` for someone the destination already holds (pending is not consent: nobody is
  *added* while awaiting confirmation);
* ``none`` may only reach a destination that already holds the person (it stops mailing them);
  an *add* without consent is blocked;
* opt-out statuses (``unsubscribed``, ``cleaned``, ``complained``) always pass; anything else is
  blocked as unknown.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from itertools import islice
from operator import attrgetter
from typing import Any

from segsync.connector import Connector, ContactChange, Outcome, OutcomeReport, WriteResult
from segsync.consent import suppression
from segsync.consent.rules import NO_DECISION, Decision, EffectiveConsent
from segsync.model import mask_email
from segsync.statuses import OPT_OUT_STATUSES, OutcomeStatus
from segsync.store import Store
from segsync.sync.contract import ContractError, read_outcome, type_name
from segsync.sync.diff import DestinationDiff

OPS = ("upsert", "delete")
# Attribute values deeper than this are refused: no single change may exhaust the stack.
MAX_ATTRIBUTE_DEPTH = 64
FIELDS = tuple(f.name for f in fields(ContactChange))
_read_fields = attrgetter(*FIELDS)
_ATTRIBUTES = FIELDS.index("attributes")
_SCALARS = frozenset({type(None), str, int, float, bool})
# Changes a plugin passes to ``write`` are copied and checked this many at a time.
CHECKED_AT_ONCE = 10_000
# What Gate.split takes for a person its consent lookup did not return: subscribed, not erased.
_SUBSCRIBED = (Decision("subscribed", None, None, None), False)


class InvalidChange(ValueError):
    """A value that cannot be rebuilt into a plain ContactChange; ``field`` names what is wrong."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def plain_change(value: object) -> ContactChange:
    """A fresh, frozen ``ContactChange`` of exactly that type, built from ``value``'s fields.

    Each field is read once and type-checked (str; str or None; tuples of str; attributes a
    JSON-like dict with str keys, deep-copied), so nothing the caller still holds — a property,
    a dict, a list — can change the copy afterwards. Raises :class:`InvalidChange`.
    """
    read = _checked_fields(value)
    return ContactChange(*read[:_ATTRIBUTES], _json_copy(read[_ATTRIBUTES], 0), *read[_ATTRIBUTES + 1:])


def checked_change(value: object) -> ContactChange:
    """``value`` itself once it passes :func:`plain_change`'s checks (no copy): for changes
    only the push stage holds, which no plugin can reach. Raises :class:`InvalidChange`."""
    attributes = _checked_fields(value)[_ATTRIBUTES]
    for key, item in attributes.items():
        # Flat attributes (the usual case) need no recursion: a scalar is checked here.
        if type(key) is not str or type(item) not in _SCALARS:
            _json_check(attributes, 0)
            break
    return value  # type: ignore[return-value]


def _checked_fields(value: object) -> tuple[Any, ...]:
    """``value``'s fields in :data:`FIELDS` order, each read once and type-checked
    (attributes: only that it is a dict)."""
    kind = type(value)
    if kind is not ContactChange:
        if isinstance(value, ContactChange):
            # Name the first field the subclass redefines (a property that may read differently).
            own = kind.__mro__[:kind.__mro__.index(ContactChange)]
            redefined = next((n for n in FIELDS if any(n in vars(k) for k in own)), None)
            if redefined is not None:
                raise InvalidChange(redefined, f"a {type_name(value)}, not a plain ContactChange "
                                               f"({redefined} is redefined by the subclass)")
        raise InvalidChange(None, f"a {type_name(value)}, not a plain ContactChange")
    try:
        read = _read_fields(value)  # each field once, in one call
    except Exception:
        for name in FIELDS:  # a broken instance: name the first field that cannot be read
            try:
                getattr(value, name)
            except Exception as exc:
                raise InvalidChange(name, f"{name} cannot be read ({type(exc).__name__})") from None
        raise
    key, op, status, attributes, tags, tags_add, tags_remove, previous, external_id, method = read
    if type(key) is not str or type(op) is not str or type(status) is not str:
        for name, item in (("contact_key", key), ("op", op), ("status", status)):
            _require(name, item, str)
    if op not in OPS:
        raise InvalidChange("op", f"op {op!r} (one of {', '.join(OPS)})")
    for name, item in (("previous_status", previous), ("external_id", external_id), ("consent_method", method)):
        if item is not None:
            _require(name, item, str, "str or None")
    for name, item in (("tags", tags), ("tags_add", tags_add), ("tags_remove", tags_remove)):
        _require(name, item, tuple)
        for tag in item:
            if type(tag) is not str:
                raise InvalidChange(name, f"{name} holds a value that is not a str")
    _require("attributes", attributes, dict)
    return read


def _require(name: str, value: object, kind: type, wanted: str | None = None) -> None:
    if type(value) is not kind:
        raise InvalidChange(name, f"{name} is a {type_name(value)}, not a {wanted or kind.__name__}")


def _json_copy(value: Any, depth: int) -> Any:
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise InvalidChange("attributes", f"attributes nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is list:
        return [_json_copy(v, depth + 1) for v in value]
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidChange("attributes", f"attributes have a key that is a {type_name(key)}, not a str")
            copy[key] = _json_copy(item, depth + 1)
        return copy
    raise InvalidChange("attributes", f"attributes hold a {type_name(value)} (JSON values only)")


def _json_check(value: Any, depth: int) -> None:
    """What :func:`_json_copy` checks, without the copy."""
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise InvalidChange("attributes", f"attributes nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return
    if kind is list:
        for item in value:
            _json_check(item, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidChange("attributes", f"attributes have a key that is a {type_name(key)}, not a str")
            _json_check(item, depth + 1)
        return
    raise InvalidChange("attributes", f"attributes hold a {type_name(value)} (JSON values only)")


def _first_difference(a: ContactChange, b: ContactChange) -> str | None:
    """The first field (in declaration order) whose values differ, or None. Values are equal
    only with equal types all the way down: ``True`` differs from ``1``, ``1`` from ``1.0``,
    ``0.0`` from ``-0.0``; dict order does not matter. Both must be plain (checked) changes."""
    for name in FIELDS:
        if not _same(getattr(a, name), getattr(b, name)):
            return name
    return None


def _same(a: Any, b: Any) -> bool:
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is float:
        return repr(a) == repr(b)  # NaN equals NaN, -0.0 differs from 0.0 (as their JSON texts do)
    if kind is dict:
        return a.keys() == b.keys() and all(_same(value, b[key]) for key, value in a.items())
    if kind is list or kind is tuple:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@dataclass(frozen=True)
class Blocked:
    change: ContactChange
    reason: str
    ledger_id: int | None = None
    suppression_id: int | None = None


class Gate:
    """Checks the changes of one destination's diff against the effective consent of the run it
    was planned in. It takes both from the stages that make them, and refuses a diff planned
    against another run's consent: no stage can hand it a wrong answer by calling out of order.
    """

    _numbers = itertools.count(1)

    def __init__(self, store: Store, consent: EffectiveConsent, diff: DestinationDiff) -> None:
        if not isinstance(consent, EffectiveConsent):
            raise TypeError(f"the gate checks against an EffectiveConsent, not a {type_name(consent)}")
        if not isinstance(diff, DestinationDiff):
            raise TypeError(f"the gate checks a DestinationDiff, not a {type_name(diff)}")
        if diff.consent is not consent:
            raise ValueError(
                f"the diff of {diff.destination!r} was planned against the effective consent of another "
                f"run (run {diff.consent.run_id}, not {consent.run_id}); plan it again in this run"
            )
        self.store = store
        self.consent = consent
        self.diff = diff
        self.destination = diff.destination
        self.run_id = consent.run_id
        self.blocked: list[Blocked] = []
        self._keys = f"_gate_keys_{next(self._numbers)}"  # the upserts of the batch being split

    def split(self, changes: Sequence[ContactChange]) -> tuple[list[ContactChange], list[Blocked]]:
        """Changes that may pass and those blocked; ``changes`` must be plain (:func:`plain_change`).

        The consent of every upsert is looked up at once (:meth:`_unusual`): only the people
        whose effective status is not ``subscribed``, or who were erased, come back with their
        decision; everyone else is subscribed. What decided a block on a subscribed person (a
        change of an unknown status, say) is looked up for those alone."""
        upserts = [c.contact_key for c in changes if c.op != "delete"]
        unusual = self._unusual(upserts) if upserts else {}
        allowed: list[ContactChange] = []
        blocks: list[tuple[ContactChange, str, Decision | None]] = []
        for change in changes:
            decision, erased = unusual.get(change.contact_key, _SUBSCRIBED)
            reason = _reason(change, decision.status, erased)
            if reason is None:
                allowed.append(change)
            else:
                blocks.append((change, reason, decision if decision is not _SUBSCRIBED[0] else None))
        if not blocks:
            return allowed, []
        undecided = [change.contact_key for change, _, decision in blocks if decision is None]
        decided = self.consent.decisions(self.destination, undecided) if undecided else {}
        blocked = []
        for change, reason, decision in blocks:
            if decision is None:
                decision = decided.get(change.contact_key, NO_DECISION)
            blocked.append(Blocked(change, reason, decision.ledger_id, decision.suppression_id))
        return allowed, blocked

    def _unusual(self, keys: Sequence[str]) -> dict[str, tuple[Decision, bool]]:
        """Contact key → (decision, erased) for each of ``keys`` whose effective status is not
        ``subscribed`` (no decision: :data:`NO_DECISION`) or who was erased: one statement, the
        keys bound once as a JSON text."""
        con = self.store.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE {self._keys} AS "
                    "SELECT unnest(from_json($keys, '[\"VARCHAR\"]')) AS contact_key", {"keys": json.dumps(keys)})
        try:
            status = self.consent.status_sql(self.destination, f"SELECT contact_key FROM {self._keys}")
            rows = con.execute(
                f"SELECT k.contact_key, coalesce(e.status, 'none'), e.ledger_id, e.suppression_id, e.policy, "
                f"{suppression.erased_sql('k.contact_key')} AS erased "
                f"FROM {self._keys} k LEFT JOIN ({status}) e USING (contact_key) "
                f"WHERE e.status IS DISTINCT FROM 'subscribed' OR erased"
            ).fetchall()
        finally:
            con.execute(f"DROP TABLE IF EXISTS {self._keys}")
        return {key: (Decision(*decision), erased) for key, *decision, erased in rows}

    def record(self, blocked: Iterable[Blocked], by: str) -> None:
        """Record blocks as record errors and in the status audit; ``by`` says who tried."""
        blocked = list(blocked)
        if not blocked:
            return
        con = self.store.con
        for b in blocked:
            reason = f"blocked by the consent gate ({by}): {b.reason}"
            self.store.record_error(run_id=self.run_id, connection=self.destination, phase="gate",
                                    record=mask_email(b.change.contact_key), field="status",
                                    reason=reason)
            con.execute(
                """
                INSERT INTO status_changes (run_id, destination, contact_key, channel, purpose, action,
                    before_status, after_status, ledger_id, suppression_id, policy, outcome, reason, changed_at)
                VALUES (?, ?, ?, 'email', 'marketing', ?, ?, ?, ?, ?, NULL, 'blocked', ?, now())
                """,
                [self.run_id, self.destination, b.change.contact_key, b.change.op,
                 b.change.previous_status, b.change.status, b.ledger_id, b.suppression_id, reason],
            )
        self.blocked.extend(blocked)

    def refuse(self, record: str, field: str | None, reason: str) -> None:
        """Record a change the gate would not pass on (not a consent decision: a broken contract)."""
        self.store.record_error(run_id=self.run_id, connection=self.destination, phase="gate",
                                record=record, field=field,
                                reason=f"refused by the consent gate: {reason}")


def _reason(change: ContactChange, effective: str, erased: bool) -> str | None:
    if change.op == "delete":
        return None
    if erased:
        return "the person was erased; only a hashed suppression entry remains"
    status = change.status
    if status == "subscribed":
        return None if effective == "subscribed" else f"no consent to subscribe (effective status: {effective})"
    if status == "pending":
        if effective == "subscribed" or (effective == "pending" and change.previous_status is not None):
            return None
        return f"pending is not consent; not added (effective status: {effective})"
    if status == "none":
        return None if change.previous_status is not None else "no consent on record; not added"
    if status in OPT_OUT_STATUSES:
        return None
    return f"unknown subscription status {status!r}"


@dataclass
class Settled:
    """The outcomes of one batch the acknowledgement may trust, and what went wrong on the way."""

    result: WriteResult
    blocked: int  # changes a plugin wrote that the consent gate blocked
    problems: list[str]  # one line per plugin misbehaviour, for the destination's error
    contract_errors: list[str] = field(default_factory=list)  # the connector's breaches (sync/contract.py)


class GatedConnector:
    """What ``segsync_push`` implementations receive for one batch: the destination's connector,
    with a ``write`` that rebuilds and checks every change first. Everything else is delegated.

    ``batch`` is the push stage's own plain changes; the hook gets copies (:meth:`handed_over`), and
    ``write`` passes on only changes equal to one of the batch, each at most once (to ``writer``
    when given: a page of the connector's write session). ``caller``
    names the plugin calling ``write`` (the plugin host knows it); ``plugin`` the connector's own,
    which contract errors (:mod:`segsync.sync.contract`) name. After :meth:`close` every
    ``write`` raises.
    """

    def __init__(
        self,
        connector: Connector,
        gate: Gate,
        batch: Sequence[ContactChange],
        caller: Callable[[], str | None] = lambda: None,
        report: OutcomeReport | None = None,
        plugin: str | None = None,
        writer: Callable[[Sequence[ContactChange]], WriteResult] | None = None,
        only_core: bool = False,
    ) -> None:
        self._connector = connector
        # Where the checked changes go: the connector's write, or the page write of its
        # session (Connector.write_session) the push stage opened.
        self._writer = writer
        self._plugin = plugin  # the connector's plugin: contract errors name it
        self._gate = gate
        self._caller = caller
        # The acknowledgement of finished write batches (Connector.write_batch_size).
        self._report = report
        # The push stage's own changes, checked but not copied: no plugin ever holds them.
        self._batch: dict[str, ContactChange] = {}
        self._unfit: dict[str, Outcome] = {}  # planned changes that cannot be pushed at all
        for change in batch:
            try:
                self._batch[change.contact_key] = checked_change(change)
            except InvalidChange as exc:
                self._unfit[change.contact_key] = Outcome.rejected(
                    change.contact_key, f"the change cannot be pushed: {exc}", exc.field)
        # An endless generator must not hang the run; room for a batch written twice, and junk.
        self._most_read = 2 * len(self._batch) + 100
        # With only the core's segsync_push installed no plugin code ever holds the changes:
        # the hook gets the batch itself, and a write of exactly that tuple is the push
        # stage's own changes, which the gate split already passed (nothing to copy or compare).
        self._own: tuple[ContactChange, ...] | None = tuple(self._batch.values()) if only_core else None
        self._handed: set[str] = set()  # keys given to the connector in this batch
        self._answered: dict[str, Outcome] = {}  # the connector's own outcome per key
        self._refused: dict[str, str] = {}  # key of the batch → why a write of it was refused
        self._calls = 0
        self._blocked = 0
        self._problems: list[str] = []
        self._contract_errors: list[str] = []
        self._breached: dict[str, str] = {}  # key of the batch → the contract error that touched it
        self._open = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def write_session(self) -> None:
        """Not offered to plugins: a session's writes would pass no gate (the push stage opens it)."""
        return None

    def handed_over(self) -> tuple[ContactChange, ...]:
        """Fresh copies of the batch for the hook: what a plugin does to them stays with it
        (with only the core's own hook: the batch itself)."""
        if self._own is not None:
            return self._own
        return tuple(plain_change(c) for c in self._batch.values())

    def close(self) -> None:
        self._open = False

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        who = self._caller()
        plugin = f"plugin {who!r}" if who else "a segsync_push plugin"
        if not self._open:
            raise RuntimeError(
                f"{plugin} called write on connection {self._connector.connection!r} for a batch "
                "that is finished; write only the changes of the current segsync_push call"
            )
        if self._own is not None and changes is self._own and not self._handed:
            return self._write_own()
        try:
            items = list(islice(iter(changes), self._most_read + 1))
        except TypeError:
            raise TypeError(
                f"{plugin} passed {type_name(changes)} to write; pass a sequence of ContactChange"
            ) from None
        if len(items) > self._most_read:
            items.pop()
            self._problems.append(f"{plugin} wrote more than {self._most_read} changes at once; "
                                  "the rest were not read")
        refused: list[Outcome] = []
        passed: list[ContactChange] = []
        blocked_count = 0
        # A page at a time: the copies made to check the plugin's items live only that long.
        for first in range(0, len(items), CHECKED_AT_ONCE):
            copies: list[ContactChange] = []
            for index, item in enumerate(items[first:first + CHECKED_AT_ONCE], start=first):
                try:
                    copies.append(plain_change(item))
                except InvalidChange as exc:
                    key = _key_of(item)
                    self._refuse(plugin, key, exc.field, f"change #{index + 1}: {exc}", refused)
            allowed, blocked = self._gate.split(copies)
            self._gate.record(blocked, by=f"{plugin} wrote it through the connector")
            blocked_count += len(blocked)
            for b in blocked:
                refused.append(Outcome.rejected(b.change.contact_key, f"blocked by the consent gate: {b.reason}", "status"))
                if b.change.contact_key in self._batch:
                    self._refused.setdefault(b.change.contact_key, f"{plugin}'s write was blocked: {b.reason}")
            for change in allowed:
                key = change.contact_key
                problem = self._mismatch(change)
                if problem is not None:
                    self._refuse(plugin, key, *problem, refused)
                else:
                    self._handed.add(key)
                    # Equal to the batch's own change, which is what the connector gets.
                    passed.append(self._batch[key])
        self._blocked += blocked_count
        if blocked_count:
            self._problems.append(f"{plugin} wrote {blocked_count} change(s) the consent gate blocked")
        keys = {c.contact_key for c in passed}
        if not passed:
            result = WriteResult([], 0)
        elif self._writer is not None:
            result = self._take(self._writer(passed), keys)
        elif self._report is not None and self._connector.write_batch_size:
            result = self._take(self._connector.write(passed, report=self._forward(keys)), keys)
        else:
            result = self._take(self._connector.write(passed), keys)
        return WriteResult([*result.outcomes, *refused], result.calls)

    def _write_own(self) -> WriteResult:
        """The core's hook wrote the batch it was handed: the connector gets it as it is."""
        assert self._own is not None
        keys = set(self._batch)
        self._handed.update(keys)
        if not self._own:
            return WriteResult([], 0)
        if self._writer is not None:
            return self._take(self._writer(self._own), keys)
        if self._report is not None and self._connector.write_batch_size:
            return self._take(self._connector.write(self._own, report=self._forward(keys)), keys)
        return self._take(self._connector.write(self._own), keys)

    def _mismatch(self, change: ContactChange) -> tuple[str | None, str] | None:
        key = change.contact_key
        if key not in self._batch:
            return "contact_key", "a change for a contact not in the batch it was handed"
        if key in self._handed:
            return "contact_key", "a second change for the same contact in one batch"
        name = _first_difference(change, self._batch[key])
        if name is not None:
            return name, f"a change with another {name} than the one it was handed"
        return None

    def _refuse(self, plugin: str, key: str | None, field: str | None, what: str, out: list[Outcome]) -> None:
        self._gate.refuse(mask_email(key) if key else "(unreadable change)", field, f"{plugin} passed {what}")
        self._problems.append(f"{plugin} passed {what} (field {field or 'change'})")
        if key is not None:
            out.append(Outcome.rejected(key, f"refused by the consent gate: {what}", field))
            if key in self._batch:
                self._refused.setdefault(key, f"{plugin} passed {what}")

    def _forward(self, passed: set[str]) -> OutcomeReport:
        """Hand the acknowledgement each write batch the connector reports, trusting only its answers for
        changes it was given, each once (they are then its final answers)."""
        def forward(outcomes: Sequence[Outcome]) -> None:
            trusted = []
            for key, outcome in self._answers(outcomes, passed, "reported").items():
                if key in self._answered:
                    self._breach("reported a change in two write batches", key)
                    continue
                self._answered[key] = outcome
                trusted.append(outcome)
            if trusted and self._report is not None:
                self._report(trusted)
        return forward

    def _take(self, result: object, passed: set[str]) -> WriteResult:
        """Keep the connector's own answer for each change it was given (a report's answer, made
        first, wins); each change left without a well-formed answer is a contract error."""
        calls = 0
        outcomes: list[Outcome] = []
        unanswered = [k for k in passed if k not in self._answered]
        if not isinstance(result, WriteResult):
            self._breach(f"returned {type_name(result)} from write, not a WriteResult", *unanswered)
        elif not isinstance(result.outcomes, list):
            self._breach(f"returned a WriteResult whose outcomes are {type_name(result.outcomes)}, not list",
                         *unanswered)
        else:
            if type(result.calls) is not int or result.calls < 0:
                shown = result.calls if type(result.calls) is int else type_name(result.calls)
                self._breach(f"returned a WriteResult whose calls are {shown}, not a count of calls")
            else:
                calls = result.calls
            for key, outcome in self._answers(result.outcomes, passed, "returned").items():
                # A connector reporting write batches returns their outcomes again: the reported
                # one (already acknowledged) stays.
                outcomes.append(self._answered.setdefault(key, outcome))
            for key in passed:
                if key not in self._answered and key not in self._breached:
                    self._breach("returned no outcome for a change it was given", key)
        self._calls += calls
        return WriteResult(outcomes, calls)

    def _answers(self, values: list[object] | Sequence[object], passed: set[str], how: str) -> dict[str, Outcome]:
        """The well-formed answers among ``values`` (what the connector ``how``: returned or
        reported), one per change it was given. Every other item is a contract error, and a
        change with a malformed answer or more than one gets none here."""
        answers: dict[str, Outcome] = {}
        spoilt: set[str] = set()
        try:
            items = list(islice(iter(values), self._most_read + 1))
        except TypeError:
            self._breach(f"{how} {type_name(values)} as outcomes, not a list of Outcome", *passed)
            return {}
        for value in items:
            outcome = read_outcome(value)
            if isinstance(outcome, str):
                key = _key_of(value)
                self._breach(f"{how} {outcome}", *([key] if key in passed else []))
                if key is not None:
                    spoilt.add(key)
            elif outcome.contact_key not in passed:
                self._breach(f"{how} an outcome for a contact not in the changes it was given")
            elif outcome.contact_key in answers:
                self._breach(f"{how} more than one outcome for a change", outcome.contact_key)
                spoilt.add(outcome.contact_key)
            else:
                answers[outcome.contact_key] = outcome
        return {k: o for k, o in answers.items() if k not in spoilt}

    def _breach(self, what: str, *keys: str) -> None:
        """A contract error of the connector: the destination's part of the run is not ``ok``,
        and each of ``keys`` (changes of the batch) is retried, not acknowledged, its record error
        naming the breach (which therefore names no address: the record error does)."""
        message = str(ContractError(self._plugin, self._connector.connection, what))
        if message not in self._contract_errors:
            self._contract_errors.append(message)
        for key in keys:
            if key in self._batch:
                self._breached.setdefault(key, message)

    def settle(self, result: object) -> Settled:
        """The outcome of each change of the batch, trusting the connector over the hook.

        A change the connector answered keeps that answer, whatever the hook returned. For the
        others the hook's own outcome counts only as a veto (``rejected`` or ``retryable``): an
        ``ok`` for a change the connector never received is not acknowledged but retried, and
        so is a change whose write the gate refused.
        """
        problems = list(self._problems)
        claimed: dict[str, Outcome] = {}
        if not (isinstance(result, WriteResult) and isinstance(result.outcomes, list)):
            problems.append(f"the segsync_push hook returned {type_name(result)}, not a WriteResult")
        elif len(self._answered) < len(self._batch):
            # (the hook's claims count only for changes the connector did not answer)
            for outcome in map(read_outcome, result.outcomes):
                if not isinstance(outcome, str) and outcome.contact_key in self._batch:
                    claimed.setdefault(outcome.contact_key, outcome)
        outcomes: list[Outcome] = list(self._unfit.values())
        for key in self._batch:
            if key in self._answered and (key not in self._breached
                                          or self._answered[key].status == OutcomeStatus.OK):
                # (an ok reported before a breach showed was acknowledged then: it stays so)
                outcomes.append(self._answered[key])
            elif key in self._breached:
                outcomes.append(Outcome.retryable(key, self._breached[key]))
            elif key in self._refused:
                outcomes.append(Outcome.retryable(key, f"not written: {self._refused[key]}"))
            elif key in claimed and claimed[key].status in (OutcomeStatus.REJECTED, OutcomeStatus.RETRYABLE):
                outcomes.append(claimed[key])
            elif key in claimed:
                outcomes.append(Outcome.retryable(
                    key, "a segsync_push plugin reported it written, but the connector never received it"))
                problems.append("a segsync_push plugin reported changes written that the connector never received")
        return Settled(WriteResult(outcomes, self._calls), self._blocked, list(dict.fromkeys(problems)),
                       list(self._contract_errors))

    def __repr__(self) -> str:
        return f"<gated {self._connector!r}>"


def _key_of(item: object) -> str | None:
    """The contact key of a refused change or malformed outcome, when it can be read without
    running its code."""
    if isinstance(item, ContactChange | Outcome):
        try:
            fields_ = object.__getattribute__(item, "__dict__")
        except Exception:
            return None
        key = dict.get(fields_, "contact_key") if type(fields_) is dict else None
        if type(key) is str:
            return key
    return None

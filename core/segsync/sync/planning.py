"""The diff's planning state: whose desired state may have moved since a destination's last plan.

A contact's desired state for a destination (``segsync.sync.diff``) is a function of its
contact row, its effective consent under the destination's policy and its memberships of the
segments the destination carries, given the destination's mapping and policy. So the diff keeps,
per destination, every contact's desired status and state hash as last planned
(``planned_states``, store migration 10) and the marks of that plan (``planning_marks``), and
recomputes only the contacts whose inputs moved since:

* contacts written since (``updated_at``), and contacts without a planned row (new ones);
* contacts with a consent-ledger record or suppression added since (or a suppression removed
  since), those with a status change pushed since that a ledger record already there may echo
  (one not older than the push), and those whose implied consent expires between the two
  instants (:meth:`~segsync.consent.rules.PolicyInputs.moves_sql`);
* contacts that entered or left a segment since the run the plan used
  (:meth:`~segsync.segments.memberships.Memberships.changed_sql`).

Everyone is recomputed (a full plan) when there is no previous plan, when the fingerprint
changed (the destination's mapping of every segment, the rules, its consent policy and country
policies, the attributes sent, this module's version), when the memberships cannot be compared
with the plan's (another run in between, a held segment, a dry run), when ``as_of`` went back,
when people were erased since (rows were deleted), or when more than a quarter of the contacts
(and more than 10,000) moved: one pass over everyone is then cheaper.

Whether a planned contact is sent at all (subscribed, acknowledged, or opted out with an
identity there) is decided at diff time from ``acknowledged`` and ``identities``, so those tables
are not inputs here. The equality of both ways is the contract: ``core/tests/test_planning.py``
plans random sequences of runs both ways and compares every change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import duckdb

from segsync.consent.rules import EffectiveConsent
from segsync.model import KNOWN_ATTRIBUTES
from segsync.segments.incremental import DEFAULT_MAX_SHARE, DEFAULT_MIN_LARGE
from segsync.segments.memberships import Memberships
from segsync.store.sql import literal

STATES_TABLE = "planned_states"
MARKS_TABLE = "planning_marks"
# Part of the fingerprint: a change to what the desired state is made of re-plans everyone.
PLANNING_VERSION = "1"
# members_run when the plan's memberships cannot be compared with a later run's.
NOT_COMPARABLE = -1


@dataclass(frozen=True)
class Marks:
    """How far the store's tables went when a destination was planned."""

    as_of: datetime
    members_run: int
    ledger_id: int
    suppression_id: int
    status_change_id: int
    erasure_id: int
    clock: datetime


def fingerprint(destination: str, memberships: Memberships, consent: EffectiveConsent) -> str | None:
    """A digest of everything a desired state is made of besides the store's rows; None when
    the consent's inputs are not known (then every plan is a full one)."""
    inputs = consent.inputs.get(destination)
    if inputs is None:
        return None
    text = json.dumps([
        PLANNING_VERSION, destination, list(KNOWN_ATTRIBUTES), inputs.fingerprint(),
        [s.model_dump_json() for s in memberships.segments],
    ])
    return hashlib.sha256(text.encode()).hexdigest()


class Planning:
    """The planning state of one destination in one run: :meth:`load` decides between a full
    and an incremental plan; :meth:`save` records the plan once the diff is built."""

    def __init__(self, con: duckdb.DuckDBPyConnection, destination: str, dirty: str) -> None:
        self._con = con
        self.destination = destination
        self.dirty = dirty  # the temp table of the contacts to recompute (incremental plans)
        self.reason: str | None = None  # why the plan is a full one; None: incremental
        self.recomputed = 0
        self._fingerprint: str | None = None
        self._marks: Marks | None = None  # this plan's
        self._last: Marks | None = None  # the last plan's, when its fingerprint is this one's

    @property
    def full(self) -> bool:
        return self.reason is not None

    def dirty_sql(self) -> str | None:
        """SQL selecting the contacts to recompute; None: everyone."""
        return None if self.full else f"SELECT contact_key FROM {self.dirty}"

    @classmethod
    def load(
        cls,
        con: duckdb.DuckDBPyConnection,
        destination: str,
        memberships: Memberships,
        consent: EffectiveConsent,
        as_of: datetime,
        dirty: str,
    ) -> Planning:
        plan = cls(con, destination, dirty)
        plan._fingerprint = fingerprint(destination, memberships, consent)
        # The run whose memberships (its snapshot) the next plan compares with; a held segment's
        # carried members are not in the snapshot, so that run's cannot be compared with.
        members_run = NOT_COMPARABLE
        if not memberships.segments:
            members_run = 0  # no segments: no membership moves
        elif consent.run_id is not None and not memberships.held:
            members_run = consent.run_id
        plan._marks = _now(con, as_of, members_run)
        has_plan, plan._last = plan._read_last()
        plan.reason = plan._why_full(memberships, consent, as_of, has_plan)
        if plan.reason is None:
            plan.recomputed = plan._collect(memberships, consent, as_of)
            contacts = con.execute("SELECT count(*) FROM contacts").fetchall()[0][0]
            if plan.recomputed > max(DEFAULT_MAX_SHARE * contacts, DEFAULT_MIN_LARGE):
                plan.reason = (f"{plan.recomputed} of {contacts} contacts changed "
                               f"(more than {DEFAULT_MAX_SHARE:.0%}: one pass over everyone is cheaper)")
        return plan

    def _read_last(self) -> tuple[bool, Marks | None]:
        """(whether the destination was planned before, that plan's marks when its fingerprint
        is this plan's)."""
        rows = self._con.execute(
            f"SELECT fingerprint, as_of, members_run, ledger_id, suppression_id, status_change_id, "
            f"erasure_id, clock FROM {MARKS_TABLE} WHERE destination = ?", [self.destination]).fetchall()
        if not rows:
            return False, None
        return True, (Marks(*rows[0][1:]) if rows[0][0] == self._fingerprint else None)

    def _why_full(self, memberships: Memberships, consent: EffectiveConsent, as_of: datetime,
                  has_plan: bool) -> str | None:
        if self._fingerprint is None:
            return "the consent's inputs are not known"
        if consent.run_id is None:
            return "a dry run"
        if not has_plan:
            return "no previous plan"
        last = self._last
        if last is None:
            return "the destination's mapping, the rules or the consent policy changed"
        if as_of < last.as_of:
            return f"as_of is before the last plan's ({last.as_of.isoformat()})"
        assert self._marks is not None
        if self._marks.erasure_id != last.erasure_id:
            return "people were erased since the last plan"
        if memberships.segments:
            if last.members_run in (NOT_COMPARABLE, 0) or memberships.changed_sql(
                    self._con, last.members_run) is None:
                return "the memberships cannot be compared with the last plan's"
        elif last.members_run != 0:
            return "the memberships cannot be compared with the last plan's"
        return None

    def _collect(self, memberships: Memberships, consent: EffectiveConsent, as_of: datetime) -> int:
        """Fill the dirty table with everyone whose desired state may have moved since the last
        plan (see the module docstring); return how many."""
        last = self._last
        assert last is not None  # an incremental plan has the last plan's marks (_why_full)
        inputs = consent.inputs[self.destination]
        clock = f"{literal(last.clock.isoformat())}::TIMESTAMPTZ"
        moved = [
            f"SELECT contact_key FROM contacts WHERE updated_at >= {clock}",
            f"SELECT contact_key FROM contacts c WHERE NOT EXISTS (SELECT 1 FROM {STATES_TABLE} p "
            f"WHERE p.destination = {literal(self.destination)} AND p.contact_key = c.contact_key)",
            f"SELECT contact_key FROM consent_ledger WHERE id > {int(last.ledger_id)}",
            f"SELECT contact_key FROM suppressions WHERE contact_key IS NOT NULL "
            f"AND (id > {int(last.suppression_id)} OR removed_at >= {clock})",
            # A push is what makes a ledger record an echo (the consent rules' rule 1), and only
            # for records that arrived after it: a push recorded since matters to a record
            # already in the ledger only when that record is not older than the push.
            f"SELECT s.contact_key FROM status_changes s WHERE s.id > {int(last.status_change_id)} "
            f"AND EXISTS (SELECT 1 FROM consent_ledger l WHERE l.contact_key = s.contact_key "
            f"AND l.source = s.destination AND l.ingested_at >= s.changed_at)",
            inputs.moves_sql(last.as_of, as_of),
        ]
        if memberships.segments:
            changed = memberships.changed_sql(self._con, last.members_run)
            assert changed is not None  # checked by _why_full
            moved.append(changed)
        self._con.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.dirty} AS SELECT DISTINCT contact_key FROM "
            f"({' UNION ALL '.join(moved)}) m WHERE contact_key IN (SELECT contact_key FROM contacts)")
        return int(self._con.execute(f"SELECT count(*) FROM {self.dirty}").fetchall()[0][0])

    def keep(self, desired: str) -> None:
        """Replace the planned rows of the recomputed contacts (everyone's in a full plan) with
        those of ``desired`` (a table with ``contact_key, status, state_hash``)."""
        dest = literal(self.destination)
        if self.full:
            self._con.execute(f"DELETE FROM {STATES_TABLE} WHERE destination = {dest}")
        else:
            self._con.execute(f"DELETE FROM {STATES_TABLE} WHERE destination = {dest} "
                              f"AND contact_key IN (SELECT contact_key FROM {self.dirty})")
        self._con.execute(f"INSERT INTO {STATES_TABLE} SELECT {dest}, contact_key, status, state_hash "
                          f"FROM {desired}")

    def save(self) -> None:
        """Record this plan's marks (after :meth:`keep`): the next plan starts from them."""
        if self._fingerprint is None or self._marks is None:
            return
        m = self._marks
        self._con.execute(
            f"INSERT OR REPLACE INTO {MARKS_TABLE} (destination, fingerprint, as_of, members_run, ledger_id, "
            "suppression_id, status_change_id, erasure_id, clock, planned_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [self.destination, self._fingerprint, m.as_of, m.members_run, m.ledger_id, m.suppression_id,
             m.status_change_id, m.erasure_id, m.clock])

    def describe(self) -> str:
        return (f"incremental: {self.recomputed} contacts recomputed" if self.reason is None
                else f"full ({self.reason})")


def _now(con: duckdb.DuckDBPyConnection, as_of: datetime, members_run: int) -> Marks:
    row = con.execute(
        """
        SELECT (SELECT coalesce(max(id), 0) FROM consent_ledger),
               (SELECT coalesce(max(id), 0) FROM suppressions),
               (SELECT coalesce(max(id), 0) FROM status_changes),
               (SELECT coalesce(max(id), 0) FROM erasures),
               get_current_timestamp()
        """
    ).fetchall()[0]
    return Marks(as_of, members_run, *row)

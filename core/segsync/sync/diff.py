"""The diff stage: what one destination must change, its desired state against what it acknowledged.

Everything here is SQL over the store. The desired state of a contact for a destination is its
subscription status (from the run's :class:`~segsync.consent.rules.EffectiveConsent`), its
attributes and its tags (from the run's :class:`~segsync.segments.memberships.Memberships`);
its hash is compared with the hash the destination last acknowledged, so a re-run with no
change plans no write at all and a crashed run re-plans exactly what was not acknowledged.

A :class:`DestinationDiff` owns its temp tables (uniquely named, so two diffs can coexist) and
is the only way to read them: its counts, :meth:`~DestinationDiff.batches` and
:meth:`~DestinationDiff.sample`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from segsync.connector import ContactChange
from segsync.consent.rules import EffectiveConsent
from segsync.model import KNOWN_ATTRIBUTES, mask_email
from segsync.segments.memberships import Memberships
from segsync.statuses import MAILABLE_STATUSES, OPT_OUT_STATUSES
from segsync.store.sql import identifier, literal, literal_list
from segsync.store.temp_tables import OwnsTempTables
from segsync.sync.frozen import constructor
from segsync.sync.planning import STATES_TABLE, Planning


@dataclass(frozen=True)
class PlannedChange:
    """One row of a diff: the change for the connector, its action and the state it brings."""

    change: ContactChange
    action: str  # add, update, unsubscribe, resubscribe or delete
    state_hash: str | None  # None for deletes

    def masked(self) -> dict[str, Any]:
        """How ``sync --dry-run`` shows it (the address masked)."""
        return {
            "contact": mask_email(self.change.contact_key),
            "action": self.action,
            "status": self.change.status,
            "tags_add": list(self.change.tags_add),
            "tags_remove": list(self.change.tags_remove),
        }


class DestinationDiff(OwnsTempTables):
    """The planned changes of one destination in one run. Build it with :meth:`build`.

    ``consent`` is the run's effective consent it was planned against (the gate and the
    acknowledgement check they are given the same); ``counts`` is action → changes.
    """

    _numbers = itertools.count(1)

    def __init__(self, con: duckdb.DuckDBPyConnection, destination: str, consent: EffectiveConsent) -> None:
        self._con = con
        self.destination = destination
        self.consent = consent
        number = next(self._numbers)
        self._memberships = f"_desired_memberships_{number}"
        self._member_attributes = f"_desired_member_attributes_{number}"
        self._desired = f"_desired_{number}"
        self._dirty = f"_desired_dirty_{number}"
        self._changed = f"_diff_keys_{number}"
        self._table = f"_diff_{number}"
        self.counts: dict[str, int] = {}
        self.planning = ""  # how the desired state was planned: full (why) or incremental
        self._open = True

    @classmethod
    def build(
        cls,
        con: duckdb.DuckDBPyConnection,
        destination: str,
        memberships: Memberships,
        consent: EffectiveConsent,
        as_of: datetime | None = None,
    ) -> DestinationDiff:
        """Plan ``destination``: its memberships as it shows them, its desired state under
        ``consent``, and the rows that differ from its acknowledgements.

        With ``as_of`` (a run's), the desired state is recomputed only for the contacts whose
        inputs moved since the destination's last plan (:mod:`segsync.sync.planning`); the
        changes planned are the same as recomputing everyone's."""
        diff = cls(con, destination, consent)
        diff._create_desired()
        if as_of is None:
            diff._add_desired(memberships, None)
            diff._build_diff(f"SELECT contact_key, status, state_hash FROM {diff._desired}")
            diff.planning = "full (no run)"
        else:
            plan = Planning.load(con, destination, memberships, consent, as_of, diff._dirty)
            diff._add_desired(memberships, plan.dirty_sql())
            plan.keep(diff._desired)
            diff._build_diff(f"SELECT contact_key, status, state_hash FROM {STATES_TABLE} "
                             f"WHERE destination = {literal(destination)}", memberships)
            plan.save()
            diff.planning = plan.describe()
        diff.counts = {action: n for action, n in con.execute(
            f"SELECT action, count(*) FROM {diff._table} GROUP BY action ORDER BY action"
        ).fetchall()}
        return diff

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def batches(self, batch_size: int) -> Iterator[list[PlannedChange]]:
        """The diff as batches of planned changes, opt-outs first, in a stable order.

        Pages by position (not one open cursor) so the caller can write acknowledgements between
        pages on the same connection. The table is stored in that order with each row's position
        (``_seq``), so a page reads only its own range instead of sorting what is left each time.
        A page costs one query and one ``json.loads``: each row's attributes (the known ones
        without their nulls), custom attributes and tags (those entering and leaving computed
        in the query) come as one JSON text, the page's texts parsed at once; DuckDB hands over
        a JSON text far faster than the lists it stands for.
        """
        for after in range(0, self.total, batch_size):
            rows = self._con.execute(
                "SELECT contact_key, op, status, previous_status, external_id, consent_method, action, state_hash, "
                "'[' || coalesce(json_merge_patch('{}', attributes)::VARCHAR, 'null') || ',' "
                "|| coalesce(custom::VARCHAR, '{}') || ',' || to_json(tags)::VARCHAR || ',' "
                "|| to_json(list_filter(tags, lambda t: NOT list_contains(previous_tags, t)))::VARCHAR || ',' "
                "|| to_json(list_filter(previous_tags, lambda t: NOT list_contains(tags, t)))::VARCHAR || ']' "
                f"FROM {self._live()} WHERE _seq > $after AND _seq <= $after + $n ORDER BY _seq",
                {"after": after, "n": batch_size},
            ).fetchall()
            if not rows:
                return
            yield _planned_page(rows)

    def planned_sql(self) -> str:
        """SQL selecting ``(contact_key, op, action, status, previous_status, state_hash, tags)``
        of every planned change, one row per contact: the values :meth:`batches` builds each
        :class:`PlannedChange` from (the acknowledgement of a write session reads them by key)."""
        return (f"SELECT contact_key, op, action, status, previous_status, state_hash, tags "
                f"FROM {self._live()}")

    def sample(self, size: int) -> list[PlannedChange]:
        """The first ``size`` planned changes (``sync --dry-run``)."""
        return next(self.batches(size), [])

    def _owned_tables(self) -> tuple[str, ...]:
        return (self._table, self._desired, self._memberships, self._member_attributes, self._dirty,
                self._changed)

    def __repr__(self) -> str:
        return f"<DestinationDiff {self.destination!r} of run {self.consent.run_id}: {self.counts}>"

    def _live(self) -> str:
        if not self._open:
            raise RuntimeError(f"the diff of {self.destination!r} is closed")
        return self._table

    def _create_desired(self) -> None:
        self._con.execute(f"CREATE TEMP TABLE {self._memberships} (contact_key VARCHAR, segment VARCHAR)")
        self._con.execute(
            f"CREATE TEMP TABLE {self._member_attributes} (contact_key VARCHAR, name VARCHAR, value JSON)"
        )
        self._con.execute(
            f"CREATE TEMP TABLE {self._desired} (contact_key VARCHAR, status VARCHAR, consent_method VARCHAR, "
            "attributes JSON, custom JSON, tags VARCHAR[], state_hash VARCHAR)"
        )

    def _add_desired(self, memberships: Memberships, keys: str | None) -> None:
        """Add the desired state of the contacts ``keys`` selects (None: everyone)."""
        self._map_memberships(memberships, keys)
        self._build_desired(keys)

    def _map_memberships(self, memberships: Memberships, keys: str | None) -> None:
        """What the destination should show for each segment membership.

        A segment without ``destinations`` goes to every destination as a tag named after it; one
        with ``destinations`` only to those, as the tag and/or list named there, and/or as an
        attribute set to ``value`` (default true) for members and to false (or "" for non-boolean
        values) for everyone else the destination receives, so exits clear it. Tags and list
        names go to ``(contact_key, segment)`` rows, attributes to ``(contact_key, name, value)``.
        ``keys`` (SQL selecting ``contact_key``): only those contacts' rows.
        """
        only = "" if keys is None else f" AND contact_key IN ({keys})"
        members = memberships.members_sql()
        for segment in memberships.segments:
            if segment.destinations and self.destination not in segment.destinations:
                continue
            rep = segment.destinations.get(self.destination)
            names = [segment.name] if rep is None else [n for n in (rep.tag, rep.list) if n]
            for name in dict.fromkeys(names):
                self._con.execute(
                    f"INSERT INTO {self._memberships} SELECT contact_key, $name "
                    f"FROM ({members}) WHERE segment = $segment{only}",
                    {"name": name, "segment": segment.name},
                )
            if rep is not None and rep.attribute:
                value = True if rep.value is None else rep.value
                cleared = False if isinstance(value, bool) else ""
                self._con.execute(
                    f"""
                    INSERT INTO {self._member_attributes}
                    SELECT c.contact_key, $attr, CASE WHEN m.contact_key IS NULL THEN $cleared ELSE $value END
                    FROM contacts c
                    LEFT JOIN (SELECT contact_key FROM ({members}) WHERE segment = $segment) m
                      USING (contact_key)
                    WHERE true{only.replace("contact_key", "c.contact_key", 1)}
                    """,
                    {"attr": rep.attribute, "segment": segment.name,
                     "value": json.dumps(value), "cleared": json.dumps(cleared)},
                )

    def _build_desired(self, keys: str | None) -> None:
        """Add the desired state of the contacts ``keys`` selects (None: everyone): status (from
        the effective consent under the destination's own policy), attributes, tags and its
        hash. Whether the destination receives the contact is decided by :meth:`_build_diff`."""
        attrs = ", ".join(
            f"{literal(a)}: strftime(c.{identifier(a)}, '%Y-%m-%dT%H:%M:%SZ')" if a == "created_at"
            else f"{literal(a)}: c.{identifier(a)}"
            for a in KNOWN_ATTRIBUTES
        )
        only = "" if keys is None else f"WHERE c.contact_key IN ({keys})"
        self._con.execute(
            f"""
            INSERT INTO {self._desired}
            WITH status AS ({self.consent.status_sql(self.destination, keys)}),
            tags AS (
                SELECT contact_key, list(DISTINCT segment ORDER BY segment) AS tags
                FROM {self._memberships} GROUP BY contact_key
            ),
            member_attributes AS (
                SELECT contact_key, to_json(map_from_entries(list({{'k': name, 'v': value}}))) AS attrs
                FROM {self._member_attributes} GROUP BY contact_key
            ),
            desired AS (
                SELECT c.contact_key,
                       coalesce(s.status, 'none') AS status,
                       s.method AS consent_method,
                       to_json({{{attrs}}}) AS attributes,
                       CASE WHEN ma.attrs IS NULL THEN c.custom
                            ELSE json_merge_patch(c.custom, ma.attrs) END AS custom,
                       coalesce(t.tags, []::VARCHAR[]) AS tags
                FROM contacts c
                LEFT JOIN status s USING (contact_key)
                LEFT JOIN tags t USING (contact_key)
                LEFT JOIN member_attributes ma USING (contact_key)
                {only}
            )
            -- consent_method is not hashed: a destination's own echo of a push (its opt-in record
            -- for the person) must not make every destination change.
            SELECT contact_key, status, consent_method, attributes, custom, tags,
                   md5(to_json({{'s': status, 'a': attributes, 'c': custom, 't': tags}})::VARCHAR) AS state_hash
            FROM desired
            """
        )

    def _build_diff(self, planned: str, memberships: Memberships | None = None) -> None:
        """One row per contact whose desired state differs from the acknowledgement.

        ``planned`` selects ``(contact_key, status, state_hash)`` of every contact; the
        destination receives everyone who is subscribed (pending is not consent: nobody is
        added while awaiting confirmation); everyone it acknowledged, whatever their status now;
        and everyone pulled from it (an identity there) who has opted out, bounced or complained,
        so opt-outs reach every system that has the person.

        ``action`` is add, update, unsubscribe, resubscribe or delete; ``priority`` puts opt-outs
        first so they reach the destination before any other write. A destination that reports
        a mailable status (on its identity, as pulled after the acknowledgement) for someone it
        acknowledged as opted out has drifted: the opt-out is planned again. A state the destination (or the gate) refused
        is not planned again (``rejected``). ``memberships``: the desired rows of changed
        contacts not computed yet are computed here (an incremental plan computed only those
        whose inputs moved).
        """
        opt_outs = literal_list(OPT_OUT_STATUSES)
        acked_and_drifted = f"""
            acked AS (SELECT * FROM acknowledged WHERE destination = $dest),
            drifted AS (
                SELECT i.contact_key, i.properties ->> '$.status' AS reported
                FROM identities i JOIN acked a USING (contact_key)
                WHERE i.connection = $dest AND a.status IN ({opt_outs})
                  AND i.properties ->> '$.status' IN ({literal_list(MAILABLE_STATUSES)})
                  -- Only what the system reported after the opt-out was acknowledged: a run that
                  -- read no source (a webhook's) still holds the status pulled before it.
                  AND i.seen_at > a.acked_at
            )"""
        self._con.execute(
            f"""
            CREATE TEMP TABLE {self._changed} AS
            WITH {acked_and_drifted},
            pulled AS (SELECT contact_key FROM identities WHERE connection = $dest),
            receives AS (
                SELECT p.contact_key, p.state_hash FROM ({planned}) p
                WHERE p.status = 'subscribed'
                   OR p.contact_key IN (SELECT contact_key FROM acked)
                   OR (p.status IN ({opt_outs}) AND p.contact_key IN (SELECT contact_key FROM pulled))
            )
            SELECT d.contact_key, 'changed' AS kind FROM receives d
            LEFT JOIN acked a USING (contact_key)
            WHERE (a.state_hash IS DISTINCT FROM d.state_hash
                   OR d.contact_key IN (SELECT contact_key FROM drifted))
              AND NOT EXISTS (
                  SELECT 1 FROM rejected r
                  WHERE r.destination = $dest AND r.contact_key = d.contact_key
                    AND r.state_hash = d.state_hash
              )
            UNION ALL
            SELECT a.contact_key, 'removed' AS kind FROM acked a
            WHERE a.contact_key NOT IN (SELECT contact_key FROM receives)
            """,
            {"dest": self.destination},
        )
        if memberships is not None:
            missing = f"{self._changed}_missing"
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE {missing} AS SELECT contact_key FROM {self._changed} k "
                f"WHERE kind = 'changed' AND NOT EXISTS "
                f"(SELECT 1 FROM {self._desired} d WHERE d.contact_key = k.contact_key)")
            if self._con.execute(f"SELECT count(*) FROM {missing}").fetchall()[0][0]:
                self._add_desired(memberships, f"SELECT contact_key FROM {missing}")
            self._con.execute(f"DROP TABLE {missing}")
        self._con.execute(
            f"""
            CREATE TEMP TABLE {self._table} AS
            WITH {acked_and_drifted},
            acked_tags AS (
                SELECT contact_key, list(segment ORDER BY segment) AS tags
                FROM acknowledged_memberships WHERE destination = $dest GROUP BY contact_key
            ),
            changed AS (
                SELECT d.contact_key, 'upsert' AS op, d.status, d.consent_method, d.attributes, d.custom, d.tags,
                       -- After a drift, what the system holds now is the status to move from.
                       coalesce(dr.reported, a.status) AS previous_status, d.state_hash,
                       coalesce(ack_tags.tags, []::VARCHAR[]) AS previous_tags,
                       CASE
                           WHEN a.contact_key IS NULL THEN 'add'
                           WHEN d.status IN ({opt_outs})
                                AND (a.status NOT IN ({opt_outs})
                                     OR d.contact_key IN (SELECT contact_key FROM drifted)) THEN 'unsubscribe'
                           WHEN d.status NOT IN ({opt_outs}) AND a.status IN ({opt_outs}) THEN 'resubscribe'
                           ELSE 'update'
                       END AS action
                FROM {self._changed} k
                JOIN {self._desired} d USING (contact_key)
                LEFT JOIN acked a USING (contact_key)
                LEFT JOIN acked_tags ack_tags USING (contact_key)
                LEFT JOIN drifted dr USING (contact_key)
                WHERE k.kind = 'changed'
            ),
            removed AS (
                SELECT a.contact_key, 'delete' AS op, a.status, NULL AS consent_method, NULL::JSON AS attributes,
                       NULL::JSON AS custom, []::VARCHAR[] AS tags, a.status AS previous_status,
                       NULL AS state_hash, coalesce(ack_tags.tags, []::VARCHAR[]) AS previous_tags,
                       'delete' AS action
                FROM {self._changed} k
                JOIN acked a USING (contact_key)
                LEFT JOIN acked_tags ack_tags USING (contact_key)
                WHERE k.kind = 'removed'
            )
            SELECT row_number() OVER (ORDER BY priority, contact_key) AS _seq, * FROM (
                SELECT *, CASE action WHEN 'unsubscribe' THEN 0 WHEN 'delete' THEN 1 ELSE 2 END AS priority,
                       (SELECT external_id FROM identities i
                        WHERE i.connection = $dest AND i.contact_key = x.contact_key
                        ORDER BY seen_at DESC LIMIT 1) AS external_id
                FROM (SELECT * FROM changed UNION ALL SELECT * FROM removed) x
            )
            ORDER BY _seq
            """,
            {"dest": self.destination},
        )


# The planner typed every value itself (SQL columns, json.loads): built without a check.
_change = constructor(ContactChange)
_planned_change = constructor(PlannedChange)


def _planned_page(rows: list[tuple[Any, ...]]) -> list[PlannedChange]:
    """The planned changes of a page of diff rows (in ``batches``' column order)."""
    values = json.loads("[" + ",".join(row[8] for row in rows) + "]")
    page = []
    for (key, op, status, previous, ext, method, action, digest, _), value in zip(rows, values):
        attributes, custom, tags, tags_add, tags_remove = value
        if attributes is None:  # a delete
            attributes = {}
        else:
            attributes.update(custom)
        change = _change(contact_key=key, op=op, status=status, attributes=attributes, tags=tuple(tags),
                         tags_add=tuple(tags_add), tags_remove=tuple(tags_remove), previous_status=previous,
                         external_id=ext, consent_method=method)
        page.append(_planned_change(change=change, action=action, state_hash=digest))
    return page

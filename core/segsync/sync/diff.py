"""What each destination must change: desired state diffed against its acknowledgements.

Everything here is SQL over the store. The desired state of a contact for a destination is its
subscription status (derived from the consent ledger), its attributes and its tags; its hash is
compared with the hash the destination last acknowledged, so a re-run with no change plans no
write at all and a crashed run re-plans exactly what was not acknowledged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from segsync.connector import ContactChange
from segsync.consent import rules
from segsync.model import KNOWN_ATTRIBUTES

if TYPE_CHECKING:
    from segsync.segments import SegmentDef

OPT_OUT_STATUSES = rules.OPT_OUT_STATUSES


def build_desired(con: duckdb.DuckDBPyConnection, destination: str, status_sql: str | None = None) -> None:
    """Create temp table ``_desired`` for ``destination``.

    A destination receives everyone who is subscribed (pending is not consent: nobody is added
    while awaiting confirmation); everyone it acknowledged, whatever their status now; and
    everyone pulled from it (an identity there) who has opted out, bounced or complained, so
    opt-outs reach every system that has the person. ``status_sql`` selects each contact's
    effective status (default: :func:`segsync.consent.rules.effective_status_sql`, the default
    policy; the runner passes each destination's own).
    """
    opt_outs = ", ".join(f"'{s}'" for s in OPT_OUT_STATUSES)
    attrs = ", ".join(
        f"'{a}': strftime(c.{a}, '%Y-%m-%dT%H:%M:%SZ')" if a == "created_at" else f"'{a}': c.{a}"
        for a in KNOWN_ATTRIBUTES
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _desired AS
        WITH status AS ({status_sql or rules.effective_status_sql()}),
        acked AS (SELECT contact_key FROM acknowledged WHERE destination = $dest),
        pulled AS (SELECT contact_key FROM identities WHERE connection = $dest),
        tags AS (
            SELECT contact_key, list(DISTINCT segment ORDER BY segment) AS tags
            FROM _desired_memberships WHERE destination = $dest GROUP BY contact_key
        ),
        member_attributes AS (
            SELECT contact_key, to_json(map_from_entries(list({{'k': name, 'v': value}}))) AS attrs
            FROM _desired_member_attributes WHERE destination = $dest GROUP BY contact_key
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
            WHERE coalesce(s.status, 'none') = 'subscribed'
               OR c.contact_key IN (SELECT contact_key FROM acked)
               OR (s.status IN ({opt_outs}) AND c.contact_key IN (SELECT contact_key FROM pulled))
        )
        -- consent_method is not hashed: a destination's own echo of a push (its opt-in record
        -- for the person) must not make every destination change.
        SELECT *, md5(to_json({{'s': status, 'a': attributes, 'c': custom, 't': tags}})::VARCHAR)
                  AS state_hash
        FROM desired
        """,
        {"dest": destination},
    )


def ensure_membership_table(con: duckdb.DuckDBPyConnection) -> None:
    """The per-destination view of segment membership, filled by :func:`map_memberships`.

    ``_desired_memberships(destination, contact_key, segment)`` holds tag/list names;
    ``_desired_member_attributes(destination, contact_key, name, value)`` holds attributes
    that represent membership.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _desired_memberships "
        "(destination VARCHAR, contact_key VARCHAR, segment VARCHAR)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _desired_member_attributes "
        "(destination VARCHAR, contact_key VARCHAR, name VARCHAR, value JSON)"
    )


def map_memberships(
    con: duckdb.DuckDBPyConnection, segments: Sequence[SegmentDef], destinations: Sequence[str]
) -> None:
    """Turn ``segment_membership`` into what each destination should show.

    A segment without ``destinations`` goes to every destination as a tag named after it; one
    with ``destinations`` only to those, as the tag and/or list named there, and/or as an
    attribute set to ``value`` (default true) for members and to false (or "" for non-boolean
    values) for everyone else the destination receives, so exits clear it.
    """
    ensure_membership_table(con)
    for segment in segments:
        for destination in destinations:
            if segment.destinations and destination not in segment.destinations:
                continue
            rep = segment.destinations.get(destination)
            names = [segment.name] if rep is None else [n for n in (rep.tag, rep.list) if n]
            for name in dict.fromkeys(names):
                con.execute(
                    "INSERT INTO _desired_memberships SELECT $dest, contact_key, $name "
                    "FROM segment_membership WHERE segment = $segment",
                    {"dest": destination, "name": name, "segment": segment.name},
                )
            if rep is not None and rep.attribute:
                value = True if rep.value is None else rep.value
                cleared = False if isinstance(value, bool) else ""
                con.execute(
                    """
                    INSERT INTO _desired_member_attributes
                    SELECT $dest, c.contact_key, $attr,
                           CASE WHEN m.contact_key IS NULL THEN $cleared ELSE $value END
                    FROM contacts c
                    LEFT JOIN (SELECT contact_key FROM segment_membership WHERE segment = $segment) m
                      USING (contact_key)
                    """,
                    {"dest": destination, "attr": rep.attribute, "segment": segment.name,
                     "value": json.dumps(value), "cleared": json.dumps(cleared)},
                )


def build_diff(con: duckdb.DuckDBPyConnection, destination: str, status_sql: str | None = None) -> None:
    """Create temp table ``_diff``: one row per contact whose desired state differs from the ack.

    ``action`` is add, update, unsubscribe, resubscribe or delete; ``priority`` puts opt-outs
    first so they reach the destination before any other write. A destination that reports a
    mailable status (on its identity, as pulled) for someone it acknowledged as opted out has
    drifted: the opt-out is planned again.
    """
    build_desired(con, destination, status_sql)
    opt_outs = ", ".join(f"'{s}'" for s in OPT_OUT_STATUSES)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _diff AS
        WITH acked AS (SELECT * FROM acknowledged WHERE destination = $dest),
        acked_tags AS (
            SELECT contact_key, list(segment ORDER BY segment) AS tags
            FROM acknowledged_memberships WHERE destination = $dest GROUP BY contact_key
        ),
        drifted AS (
            SELECT i.contact_key, i.properties ->> '$.status' AS reported
            FROM identities i JOIN acked a USING (contact_key)
            WHERE i.connection = $dest AND a.status IN ({opt_outs})
              AND i.properties ->> '$.status' IN ('subscribed', 'pending')
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
            FROM _desired d
            LEFT JOIN acked a USING (contact_key)
            LEFT JOIN acked_tags ack_tags USING (contact_key)
            LEFT JOIN drifted dr USING (contact_key)
            WHERE (a.state_hash IS DISTINCT FROM d.state_hash
                   OR d.contact_key IN (SELECT contact_key FROM drifted))
              AND NOT EXISTS (
                  SELECT 1 FROM rejected r
                  WHERE r.destination = $dest AND r.contact_key = d.contact_key
                    AND r.state_hash = d.state_hash
              )
        ),
        removed AS (
            SELECT a.contact_key, 'delete' AS op, a.status, NULL AS consent_method, NULL::JSON AS attributes,
                   NULL::JSON AS custom, []::VARCHAR[] AS tags, a.status AS previous_status,
                   NULL AS state_hash, coalesce(ack_tags.tags, []::VARCHAR[]) AS previous_tags,
                   'delete' AS action
            FROM acked a
            LEFT JOIN acked_tags ack_tags USING (contact_key)
            WHERE a.contact_key NOT IN (SELECT contact_key FROM _desired)
        )
        SELECT *, CASE action WHEN 'unsubscribe' THEN 0 WHEN 'delete' THEN 1 ELSE 2 END AS priority,
               (SELECT external_id FROM identities i
                WHERE i.connection = $dest AND i.contact_key = x.contact_key
                ORDER BY seen_at DESC LIMIT 1) AS external_id
        FROM (SELECT * FROM changed UNION ALL SELECT * FROM removed) x
        """,
        {"dest": destination},
    )


def plan_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {action: n for action, n in con.execute(
        "SELECT action, count(*) FROM _diff GROUP BY action ORDER BY action"
    ).fetchall()}


@dataclass(frozen=True)
class PlannedChange:
    change: ContactChange
    action: str
    state_hash: str | None


def iter_changes(con: duckdb.DuckDBPyConnection, batch_size: int) -> Iterator[list[PlannedChange]]:
    """The diff as ContactChange batches, opt-outs first, in a stable order.

    Pages by key (not one open cursor) so the caller can write acknowledgements between pages
    on the same connection.
    """
    after: tuple[int, str] = (-1, "")
    while True:
        rows = con.execute(
            "SELECT contact_key, op, status, attributes, custom, tags, previous_tags, "
            "previous_status, external_id, action, state_hash, consent_method, priority FROM _diff "
            "WHERE (priority, contact_key) > ($p, $k) ORDER BY priority, contact_key LIMIT $n",
            {"p": after[0], "k": after[1], "n": batch_size},
        ).fetchall()
        if not rows:
            return
        after = (rows[-1][12], rows[-1][0])
        yield [_planned(row) for row in rows]


def _planned(row: tuple[Any, ...]) -> PlannedChange:
    key, op, status, attributes, custom, tags, previous_tags, previous, ext, action, digest, method, _ = row
    attrs: dict[str, Any] = {}
    if attributes is not None:
        attrs = {k: v for k, v in json.loads(attributes).items() if v is not None}
        attrs.update(json.loads(custom or "{}"))
    tags = tuple(tags or ())
    previous_tags = tuple(previous_tags or ())
    change = ContactChange(
        contact_key=key,
        op=op,
        status=status,
        attributes=attrs,
        tags=tags,
        tags_add=tuple(t for t in tags if t not in previous_tags),
        tags_remove=tuple(t for t in previous_tags if t not in tags),
        previous_status=previous,
        external_id=ext,
        consent_method=method,
    )
    return PlannedChange(change, action, digest)


def record_outcomes(
    con: duckdb.DuckDBPyConnection,
    destination: str,
    run_id: int | None,
    ok_keys: list[str],
    external_ids: dict[str, str],
    rejections: dict[str, str],
    *,
    refused_by: str = "destination",
) -> None:
    """Acknowledge the ``ok`` outcomes of one batch and remember its rejections, set-based.

    ``refused_by`` is ``destination`` (the system refused) or ``gate`` (the consent gate did).
    """
    if rejections:
        con.execute(
            """
            INSERT INTO rejected (destination, contact_key, state_hash, reason, run_id, rejected_at, refused_by)
            SELECT $dest, d.contact_key, d.state_hash, r.reason, $run, now(), $by
            FROM (SELECT unnest($keys::VARCHAR[]) AS contact_key, unnest($reasons::VARCHAR[]) AS reason) r
            JOIN _diff d USING (contact_key)
            WHERE d.state_hash IS NOT NULL
            ON CONFLICT (destination, contact_key) DO UPDATE SET state_hash = EXCLUDED.state_hash,
                reason = EXCLUDED.reason, run_id = EXCLUDED.run_id, rejected_at = EXCLUDED.rejected_at,
                refused_by = EXCLUDED.refused_by
            """,
            {"dest": destination, "run": run_id, "keys": list(rejections),
             "reasons": list(rejections.values()), "by": refused_by},
        )
    if not ok_keys:
        return
    con.execute(
        "DELETE FROM rejected WHERE destination = $dest AND contact_key IN (SELECT unnest($keys::VARCHAR[]))",
        {"dest": destination, "keys": ok_keys},
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _acked_now AS SELECT unnest($keys) AS contact_key",
        {"keys": ok_keys},
    )
    params = {"dest": destination, "run": run_id}
    con.execute(
        """
        INSERT INTO acknowledged (destination, contact_key, state_hash, status, run_id, acked_at)
        SELECT $dest, d.contact_key, d.state_hash, d.status, $run, now()
        FROM _diff d JOIN _acked_now USING (contact_key) WHERE d.op = 'upsert'
        ON CONFLICT (destination, contact_key) DO UPDATE SET state_hash = EXCLUDED.state_hash,
            status = EXCLUDED.status, run_id = EXCLUDED.run_id, acked_at = EXCLUDED.acked_at
        """,
        params,
    )
    con.execute(
        """
        DELETE FROM acknowledged_memberships WHERE destination = $dest
          AND contact_key IN (SELECT contact_key FROM _acked_now)
        """,
        {"dest": destination},
    )
    con.execute(
        """
        INSERT INTO acknowledged_memberships (destination, contact_key, segment, run_id, acked_at)
        SELECT $dest, contact_key, unnest(tags), $run, now()
        FROM _diff JOIN _acked_now USING (contact_key) WHERE op = 'upsert'
        """,
        params,
    )
    con.execute(
        """
        DELETE FROM acknowledged WHERE destination = $dest AND contact_key IN (
            SELECT contact_key FROM _diff JOIN _acked_now USING (contact_key) WHERE op = 'delete')
        """,
        {"dest": destination},
    )
    if external_ids:
        con.execute(
            """
            INSERT INTO identities (connection, external_id, contact_key, seen_at)
            SELECT $dest, unnest($ids), unnest($keys), now()
            ON CONFLICT (connection, external_id) DO UPDATE SET
                contact_key = EXCLUDED.contact_key, seen_at = EXCLUDED.seen_at
            """,
            {"dest": destination, "ids": list(external_ids.values()), "keys": list(external_ids)},
        )


# -- remembered rejections ---------------------------------------------------------------------
#
# A destination's refusal of a desired state is remembered (table ``rejected``) so the same
# refused state is not sent on every run. It holds only while what caused it cannot have
# changed: each destination's refusals live under a fingerprint of its settings, its segment
# mapping and the schema it reports (``Connector.schema_version``: e.g. Brevo's contact
# attributes). When the fingerprint moves (an attribute created by `segsync check --fix` or by
# hand, a mapping edited), every remembered refusal of that destination is planned again.
# `segsync check --fix` and `segsync retry-rejected` forget them outright. Refusals by the
# consent gate depend on consent only (part of the state hash) and are never lifted here.


def destination_fingerprint(settings: Any, mapping: Any, schema: str | None) -> str:
    """A digest of what a destination's refusals may depend on (no secret values: callers
    pass settings dumped in JSON mode, where ``SecretStr`` is masked)."""
    text = json.dumps({"settings": settings, "mapping": mapping, "schema": schema},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def remembered_rejections(con: duckdb.DuckDBPyConnection, destination: str) -> int:
    """How many of ``destination``'s own refusals are remembered."""
    return con.execute(
        "SELECT count(*) FROM rejected WHERE destination = ? AND refused_by = 'destination'",
        [destination],
    ).fetchall()[0][0]


def renew_rejections(con: duckdb.DuckDBPyConnection, destination: str, fingerprint: str) -> int:
    """Forget ``destination``'s refusals made under another fingerprint (or under none, as in
    stores older than fingerprints); record ``fingerprint``. Returns how many were forgotten."""
    stored = con.execute(
        "SELECT fingerprint FROM rejection_fingerprints WHERE destination = ?", [destination]
    ).fetchall()
    if stored and stored[0][0] == fingerprint:
        return 0
    cleared = forget_rejections(con, destination)
    record_fingerprint(con, destination, fingerprint)
    return cleared


def record_fingerprint(con: duckdb.DuckDBPyConnection, destination: str, fingerprint: str) -> None:
    """The fingerprint ``destination``'s refusals remembered from now on hold under."""
    con.execute(
        """
        INSERT INTO rejection_fingerprints VALUES (?, ?, now())
        ON CONFLICT (destination) DO UPDATE SET
            fingerprint = EXCLUDED.fingerprint, updated_at = EXCLUDED.updated_at
        """,
        [destination, fingerprint],
    )


def forget_rejections(con: duckdb.DuckDBPyConnection, destination: str) -> int:
    """Forget every remembered refusal of ``destination`` (not the consent gate's): the next
    run plans those contacts again. Returns how many."""
    return con.execute(
        "DELETE FROM rejected WHERE destination = ? AND refused_by = 'destination'", [destination]
    ).fetchall()[0][0]

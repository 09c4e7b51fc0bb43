"""The canonical table layout an engine reads (docs/scale.md#tables).

segsync's heavy SQL reads five tables by these names and columns. On the embedded store they are
the store's own tables; on an external engine they are tables segsync creates in its schema, or
the user's own tables or views named in ``[store.tables]`` (a view renames columns). Only the
columns listed here are read; others are ignored.
"""

from __future__ import annotations

# table -> column -> SQL type (PostgreSQL spelling; each engine maps it to its own).
CANONICAL_TABLES: dict[str, dict[str, str]] = {
    "contacts": {
        "contact_key": "text",  # normalized email address: the person's key everywhere
        "contact_id": "bigint",  # an integer per person: events are grouped by it
        "first_name": "text",
        "last_name": "text",
        "company": "text",
        "job_title": "text",
        "department": "text",
        "industry": "text",
        "company_size": "integer",
        "country": "text",
        "timezone": "text",
        "lifecycle_stage": "text",
        "created_at": "timestamptz",
        "custom": "jsonb",  # custom attributes (attr.NAME that is no column above)
        "first_seen_at": "timestamptz",
        "updated_at": "timestamptz",
        "updated_by": "text",
    },
    "events": {
        "contact_key": "text",
        "contact_id": "bigint",
        "type": "text",
        "occurred_at": "timestamptz",
        "source": "text",
        "source_event_id": "text",
        "value": "double precision",
        "currency": "text",
        "url": "text",
        "category": "text",
        "properties": "jsonb",
        "campaign_key": "text",  # properties.campaign_id, or source || source_event_id
        "run_id": "bigint",
    },
    "consent_ledger": {
        "id": "bigint",
        "contact_key": "text",
        "channel": "text",
        "purpose": "text",
        "status": "text",
        "recorded_at": "timestamptz",
        "source": "text",
        "method": "text",
        "evidence": "text",
        "ingested_at": "timestamptz",
        "run_id": "bigint",
    },
    # segsync's own (small) consent state, copied to the engine before consent is derived.
    "suppressions": {
        "id": "bigint",
        "contact_key": "text",
        "address_hash": "text",
        "channel": "text",
        "reason": "text",
        "source": "text",
        "note": "text",
        "created_at": "timestamptz",
        "removed_at": "timestamptz",
        "removed_by": "text",
        "removal_note": "text",
    },
    "status_changes": {
        "id": "bigint",
        "run_id": "bigint",
        "destination": "text",
        "contact_key": "text",
        "channel": "text",
        "purpose": "text",
        "action": "text",
        "before_status": "text",
        "after_status": "text",
        "ledger_id": "bigint",
        "suppression_id": "bigint",
        "policy": "text",
        "outcome": "text",
        "reason": "text",
        "changed_at": "timestamptz",
    },
}

# The tables a user may map onto their own (read-only for segsync); the other two are segsync's
# state and always live in segsync's schema.
USER_TABLES = ("contacts", "events", "consent_ledger")
STATE_TABLES = ("suppressions", "status_changes")

# What an engine keeps of each evaluation and of what segsync last received, in segsync's schema
# (written only by segsync).
RESULT_TABLES: dict[str, dict[str, str]] = {
    # The latest evaluation's members.
    "segment_membership": {"segment": "text", "contact_key": "text"},
    # Every run's members (the snapshot `segments history/preview` read).
    "segment_snapshots": {"run_id": "bigint", "segment": "text", "contact_key": "text",
                          "as_of": "timestamptz"},
    # Effective consent of the latest derivation, per consent policy (its key: a fingerprint of
    # the policy and the rule), and what segsync's embedded mirror holds of it: only the rows
    # that differ cross the wire (segsync.engines.mirror).
    "consent_current": {"policy_key": "text", "contact_key": "text", "status": "text",
                        "ledger_id": "bigint", "method": "text", "suppression_id": "bigint",
                        "policy": "text"},
    "consent_seen": {"run_id": "bigint", "policy_key": "text", "contact_key": "text",
                     "status": "text", "ledger_id": "bigint", "method": "text",
                     "suppression_id": "bigint", "policy": "text"},
    # With contacts mapped onto the user's table: a hash of each contact's row as the mirror
    # last received it.
    "contacts_seen": {"run_id": "bigint", "contact_key": "text", "row_hash": "text"},
    # Per-contact scores computed in the embedded store (segsync.scores), every run's, and the
    # runs that computed each model: what rules reading scores read (segsync.engines.scores).
    "score_runs": {"run_id": "bigint", "model": "text", "as_of": "timestamptz"},
    "contact_scores": {"run_id": "bigint", "model": "text", "contact_key": "text",
                       "score": "double precision"},
}


def missing_columns(found: dict[str, set[str]], tables: dict[str, str] | None = None) -> list[str]:
    """Problems with the tables ``found`` (table as read -> its columns): one line per missing
    table or column, naming the canonical table and, when mapped, the user's."""
    tables = tables or {}
    problems = []
    for table, columns in CANONICAL_TABLES.items():
        name = tables.get(table, table)
        shown = table if name == table else f"{table} (mapped to {name})"
        if name not in found:
            problems.append(f"table {shown} is missing")
            continue
        absent = [c for c in columns if c not in found[name]]
        if absent:
            problems.append(f"table {shown} lacks column{'s' if len(absent) > 1 else ''} "
                            f"{', '.join(absent)}")
    return problems

"""The per-person views of consent and its audit (``consent show``, ``consent export``).

Every push that changes a destination's subscription status for a person is a row of
``status_changes``: run, destination, before and after, the ledger record (or suppression) that
decided the new status, the policy, and the outcome (``acknowledged``, ``rejected``: written by
the acknowledge stage, :mod:`segsync.sync.ack`; ``blocked``: by the gate, :mod:`segsync.sync.gate`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import duckdb

from segsync.config import ConsentSettings
from segsync.consent import rules
from segsync.consent.policies import ConsentPolicy
from segsync.engines.base import Source, source_rows
from segsync.engines.transfer import copy_state
from segsync.store.sql import literal
from segsync.store.store import dicts

if TYPE_CHECKING:
    from segsync.engines import Engine


_LEDGER_COLUMNS = ("id", "channel", "purpose", "status", "recorded_at", "ingested_at", "source",
                  "method", "evidence", "run_id")


def _ledger(source: Source, key: str) -> list[dict[str, Any]]:
    rows = source_rows(source, f"SELECT {', '.join(_LEDGER_COLUMNS)} FROM consent_ledger "
                               f"WHERE contact_key = {literal(key)} ORDER BY recorded_at, id")
    return [dict(zip(_LEDGER_COLUMNS, r)) for r in rows]


def show(
    con: duckdb.DuckDBPyConnection,
    key: str,
    settings: ConsentSettings,
    destinations: Iterable[str] = (),
    as_of: datetime | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """The ledger (echoes flagged), the effective status per channel and purpose with the record
    that decided it, and per destination its policy's verdict and what it was last sent.

    With an external ``engine`` (docs/scale.md) the ledger, the person's country, the echoes
    and the effective status are read there (segsync's suppressions and status audit copied
    there first, as a sync does); suppressions and what each destination holds are segsync's
    own state, read from ``con``."""
    source: Source = con if engine is None else engine
    if engine is not None:
        copy_state(con, engine)
    ledger = _ledger(source, key)
    country = source_rows(source, f"SELECT country FROM contacts WHERE contact_key = {literal(key)}")
    country_policy = settings.countries.get(country[0][0]) if country and country[0][0] else None
    pairs = sorted({(r["channel"], r["purpose"]) for r in ledger} | {("email", "marketing")})
    echoes: set[int] = set()
    for channel, purpose in pairs:
        echoes |= {r[0] for r in source_rows(source, rules.echo_ids_sql(
            channel, purpose, contact_key=key, clock_skew=settings.clock_skew,
            portable=engine is not None and engine.dialect != "duckdb"))}
    by_id = {r["id"]: r for r in ledger}
    for record in ledger:
        record["echo"] = record["id"] in echoes

    def verdict(policy: ConsentPolicy, channel: str, purpose: str) -> dict[str, Any]:
        policies = [policy] + ([country_policy] if country_policy and country_policy is not policy else [])
        results = []
        for p in policies:
            if engine is None:
                rows = dicts(con, rules.effective_status_sql(
                    p, channel=channel, purpose=purpose, as_of=as_of, clock_skew=settings.clock_skew,
                    contact_key=key), [])
            else:
                names = ("contact_key", "status", "ledger_id", "method", "suppression_id", "policy")
                rows = [dict(zip(names, r)) for r in engine.effective_consent(
                    p, as_of=as_of or datetime.now(timezone.utc), clock_skew=settings.clock_skew,
                    contact_key=key, channel=channel, purpose=purpose)]
            row = rows[0] if rows else {"status": "none", "ledger_id": None, "suppression_id": None}
            results.append((rules.RESTRICTIVENESS.get(row["status"], 0), p.name, row))
        rank, name, row = max(results, key=lambda r: r[0])
        decided: Any = None
        if row.get("suppression_id") is not None:
            decided = {"suppression": _suppression(con, row["suppression_id"])}
        elif row.get("ledger_id") is not None:
            decided = {"ledger": by_id.get(row["ledger_id"])}
        return {"channel": channel, "purpose": purpose, "status": row["status"], "policy": name,
                "decided_by": decided}

    effective = [verdict(settings.policy, c, p) for c, p in pairs]
    known = sorted(set(destinations) | {r[0] for r in con.execute(
        "SELECT destination FROM acknowledged WHERE contact_key = ? UNION "
        "SELECT destination FROM status_changes WHERE contact_key = ?", [key, key]).fetchall()})
    per_destination = []
    for destination in known:
        acked = dicts(con, "SELECT status, acked_at, run_id FROM acknowledged "
                            "WHERE destination = ? AND contact_key = ?", [destination, key])
        last = dicts(con, "SELECT run_id, action, before_status, after_status, ledger_id, suppression_id, "
                           "policy, outcome, reason, changed_at FROM status_changes "
                           "WHERE destination = ? AND contact_key = ? ORDER BY changed_at DESC, id DESC LIMIT 1",
                      [destination, key])
        per_destination.append({
            "destination": destination,
            "policy": settings.for_connection(destination).name,
            "should_hold": verdict(settings.for_connection(destination), "email", "marketing")["status"],
            "holds": acked[0] if acked else None,
            "last_status_change": last[0] if last else None,
        })
    return {
        "email": key,
        "ledger": ledger,
        "effective": effective,
        "suppressions": dicts(con, "SELECT id, channel, reason, source, note, created_at, removed_at, removed_by "
                                    "FROM suppressions WHERE contact_key = ? ORDER BY created_at, id", [key]),
        "destinations": per_destination,
    }


def _suppression(con: duckdb.DuckDBPyConnection, suppression_id: int) -> dict[str, Any] | None:
    rows = dicts(con, "SELECT id, channel, reason, source, note, created_at FROM suppressions WHERE id = ?",
                  [suppression_id])
    return rows[0] if rows else None


def export(con: duckdb.DuckDBPyConnection, key: str) -> dict[str, Any] | None:
    """Everything the store holds about one person, for an access request (GDPR Art. 15)."""
    contact = dicts(con, "SELECT * FROM contacts WHERE contact_key = ?", [key])
    suppressions = dicts(con, "SELECT id, channel, reason, source, note, created_at, removed_at, removed_by, "
                               "removal_note FROM suppressions WHERE contact_key = ? ORDER BY id", [key])
    if not contact and not suppressions:
        return None
    attributes: dict[str, Any] = {}
    if contact:
        row = contact[0]
        attributes = {k: v for k, v in row.items() if k not in ("contact_key", "custom") and v is not None}
        attributes["custom"] = json.loads(row["custom"] or "{}")

    def identities() -> list[dict[str, Any]]:
        rows = dicts(con, "SELECT connection, external_id, properties, seen_at FROM identities "
                           "WHERE contact_key = ? ORDER BY connection", [key])
        for r in rows:
            r["properties"] = json.loads(r["properties"] or "{}")
        return rows

    events = dicts(con, "SELECT type, occurred_at, source, source_event_id, value, currency, url, category, "
                         "properties, run_id FROM events WHERE contact_key = ? ORDER BY occurred_at", [key])
    for e in events:
        e["properties"] = json.loads(e["properties"] or "{}")
    return {
        "email": key,
        "attributes": attributes,
        "identities": identities(),
        "events": events,
        "consent_ledger": _ledger(con, key),
        "suppressions": suppressions,
        "segment_history": dicts(
            con, "SELECT s.run_id, s.segment, s.as_of FROM segment_snapshots s WHERE s.contact_key = ? "
                 "ORDER BY s.run_id, s.segment", [key]),
        "destinations": {
            "acknowledged": dicts(con, "SELECT destination, status, acked_at, run_id FROM acknowledged "
                                        "WHERE contact_key = ? ORDER BY destination", [key]),
            "memberships": dicts(con, "SELECT destination, segment, acked_at, run_id FROM acknowledged_memberships "
                                       "WHERE contact_key = ? ORDER BY destination, segment", [key]),
            "status_changes": dicts(con, "SELECT run_id, destination, action, before_status, after_status, "
                                          "ledger_id, suppression_id, policy, outcome, reason, changed_at "
                                          "FROM status_changes WHERE contact_key = ? ORDER BY changed_at, id", [key]),
            "rejected": dicts(con, "SELECT destination, reason, rejected_at, run_id FROM rejected "
                                    "WHERE contact_key = ? ORDER BY destination", [key]),
        },
    }

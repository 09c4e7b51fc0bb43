"""Erasure (GDPR Art. 17): ``segsync forget`` and the retries of later runs.

For each address:

1. every connection that can delete (``Capability.DELETE_CONTACTS``) gets a
   ``ContactChange(op="delete")`` — the connector deletes permanently where the system offers it,
   or archives and says so in the ``ok`` outcome's ``reason``; a connection that can write
   contacts but not delete, and holds the person, is told ``unsubscribed`` with no attributes
   (reported as "archived"); a source-only connection that holds the person is reported for
   removal by hand (segsync cannot write there; a re-import is dropped, see 3);
2. the person is removed from every table of the store (every table with a ``contact_key``
   column, plus record errors naming the address); suppression entries keep their reason but
   lose the address; a hash-only ``erasure`` suppression is added;
3. a later pull that brings the address back is dropped after the pull (:func:`purge_reimported`),
   and nothing is ever pushed for it (the gate checks the hash);
4. a system that failed stays ``pending`` and is retried at the start of every later run until
   it confirms; until then its ``erasure_targets`` row and the ``erasures`` row keep what a retry
   needs (address, the system's id); both are cleared once every system confirmed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from segsync.connector import READ_CAPABILITIES, Capability, Connector, ContactChange
from segsync.consent import suppression
from segsync.model import mask_email
from segsync.plugins import PluginHost
from segsync.store import Store

log = logging.getLogger(__name__)

# Tables with a contact_key column whose rows are not the person's data but the erasure's own
# accountability record (hash only, see above) or the suppression list (handled apart).
_KEEP = {"suppressions", "erasures", "erasure_targets"}


@dataclass
class TargetReport:
    connection: str
    method: str  # delete | archive | manual
    status: str  # done | pending
    action: str | None = None
    error: str | None = None


@dataclass
class ErasureReport:
    email: str
    erasure_id: int
    removed_rows: dict[str, int]
    targets: list[TargetReport]

    @property
    def done(self) -> bool:
        return all(t.status == "done" for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"email": self.email, "erasure_id": self.erasure_id, "removed_rows": self.removed_rows,
                "done": self.done, "systems": [vars(t) for t in self.targets]}


def _holds(store: Store, name: str, key: str) -> bool:
    return bool(store.scalar(
        """
        SELECT EXISTS (SELECT 1 FROM identities WHERE connection = $1 AND contact_key = $2)
            OR EXISTS (SELECT 1 FROM acknowledged WHERE destination = $1 AND contact_key = $2)
            OR EXISTS (SELECT 1 FROM consent_ledger WHERE source = $1 AND contact_key = $2)
            OR EXISTS (SELECT 1 FROM events WHERE source = $1 AND contact_key = $2)
            OR EXISTS (SELECT 1 FROM contacts WHERE updated_by = $1 AND contact_key = $2)
        """,
        [name, key],
    ))


def purge(store: Store, key: str) -> dict[str, int]:
    """Delete every row about ``key`` from the store (no transaction of its own)."""
    con = store.con
    removed: dict[str, int] = {}
    tables = [r[0] for r in con.execute(
        "SELECT DISTINCT table_name FROM information_schema.columns "
        "WHERE column_name = 'contact_key' AND table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()]
    for table in sorted(set(tables) - _KEEP):
        rows = con.execute(f'DELETE FROM "{table}" WHERE contact_key = ? RETURNING 1', [key]).fetchall()
        if rows:
            removed[table] = len(rows)
    errors = con.execute(
        "DELETE FROM record_errors WHERE contains(lower(record), ?) OR contains(lower(reason), ?) RETURNING 1",
        [key, key],
    ).fetchall()
    if errors:
        removed["record_errors"] = len(errors)
    # Keep the suppression entries' reasons, never the address.
    cleared = con.execute(
        "UPDATE suppressions SET contact_key = NULL, note = NULL WHERE contact_key = ? RETURNING 1", [key]
    ).fetchall()
    if cleared:
        removed["suppressions (address cleared)"] = len(cleared)
    return removed


def forget(
    store: Store, connectors: Mapping[str, Connector], host: PluginHost, keys: Sequence[str],
    run_id: int | None = None,
) -> list[ErasureReport]:
    reports = []
    for key in dict.fromkeys(keys):
        with store.transaction():
            targets = _targets(store, connectors, key)
            erasure_id = store.scalar(
                "INSERT INTO erasures (address_hash, address, requested_at) "
                "VALUES (sha256((SELECT salt FROM consent_salt) || ?), ?, now()) RETURNING id",
                [key, key],
            )
            for name, method, external_id, previous in targets:
                store.con.execute(
                    "INSERT INTO erasure_targets (erasure_id, connection, method, external_id, previous_status, "
                    "status, action, updated_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, now(), ?)",
                    [erasure_id, name, method, external_id, previous,
                     "done" if method == "manual" else "pending",
                     "segsync cannot write to this connection: remove the person from it by hand; "
                     "a re-import is dropped" if method == "manual" else None,
                     None],
                )
            removed = purge(store, key)
            store.con.execute(
                "INSERT INTO suppressions (contact_key, address_hash, channel, reason, source, created_at) "
                "VALUES (NULL, sha256((SELECT salt FROM consent_salt) || ?), 'all', 'erasure', 'forget', now())",
                [key],
            )
        log.info("erased %s from the store (%s)", mask_email(key), removed)
        reports.append(ErasureReport(key, erasure_id, removed, []))
    results = retry_pending(store, connectors, host, run_id, erasure_ids=[r.erasure_id for r in reports])
    for report in reports:
        report.targets = results.get(report.erasure_id, [])
    store.con.execute("CHECKPOINT")  # deleted rows leave the database file, not only the tables
    return reports


def _targets(store: Store, connectors: Mapping[str, Connector], key: str) -> list[tuple[str, str, Any, Any]]:
    targets = []
    for name, connector in connectors.items():
        enabled = connector.enabled_capabilities()
        held = _holds(store, name, key)
        if Capability.DELETE_CONTACTS in enabled:
            method = "delete"
        elif Capability.WRITE_CONTACTS in enabled and held:
            method = "archive"
        elif enabled & READ_CAPABILITIES and held:
            method = "manual"
        else:
            continue
        external_id = store.scalar(
            "SELECT external_id FROM identities WHERE connection = ? AND contact_key = ? ORDER BY seen_at DESC LIMIT 1",
            [name, key])
        previous = store.scalar(
            "SELECT status FROM acknowledged WHERE destination = ? AND contact_key = ?", [name, key])
        targets.append((name, method, external_id, previous))
    return targets


def retry_pending(
    store: Store, connectors: Mapping[str, Connector], host: PluginHost, run_id: int | None,
    erasure_ids: Sequence[int] | None = None,
) -> dict[int, list[TargetReport]]:
    """Send every pending deletion (of ``erasure_ids``, or all); returns reports per erasure."""
    rows = store.con.execute(
        """
        SELECT t.erasure_id, t.connection, t.method, t.external_id, t.previous_status, e.address
        FROM erasure_targets t JOIN erasures e ON e.id = t.erasure_id
        WHERE t.status = 'pending' AND (?::BIGINT[] IS NULL OR list_contains(?::BIGINT[], t.erasure_id))
        ORDER BY t.erasure_id, t.connection
        """,
        [erasure_ids, erasure_ids],
    ).fetchall()
    for erasure_id, name, method, external_id, previous, address in rows:
        connector = connectors.get(name)
        if connector is None or address is None:
            error = f"connection {name!r} is not configured any more; add it back or remove the person by hand"
            _update(store, erasure_id, name, "pending", None, error)
            continue
        if method == "delete":
            change = ContactChange(address, "delete", "none", previous_status=previous, external_id=external_id)
        else:
            change = ContactChange(address, "upsert", "unsubscribed", previous_status=previous,
                                   external_id=external_id)
        try:
            result = host.push(connector, (change,), run_id)
            outcome = next((o for o in result.outcomes if o.contact_key == address), None)
        except Exception as exc:  # a failing system is retried next run; the others go on
            outcome, error = None, f"{type(exc).__name__}: {exc}".replace(address, mask_email(address))
        else:
            error = None if outcome else "the connector returned no outcome"
        if outcome is not None and outcome.status == "ok":
            if method == "delete":
                action = outcome.reason or "deleted"
            else:
                action = ("archived: unsubscribed with no attributes (the connector cannot delete); "
                          "delete the person in that system by hand")
            _update(store, erasure_id, name, "done", action, None)
        else:
            if outcome is not None:
                error = f"{outcome.status}: {outcome.reason or ''}".replace(address, mask_email(address))
            _update(store, erasure_id, name, "pending", None, error)
            store.record_error(run_id, name, "erase", mask_email(address), None,
                               f"erasure not confirmed yet (retried next run): {error}", retryable=True)
    _complete(store)
    reports: dict[int, list[TargetReport]] = {}
    for erasure_id, name, method, status, action, error in store.con.execute(
        "SELECT erasure_id, connection, method, status, action, last_error FROM erasure_targets "
        "WHERE ?::BIGINT[] IS NULL OR list_contains(?::BIGINT[], erasure_id) ORDER BY erasure_id, connection",
        [erasure_ids, erasure_ids],
    ).fetchall():
        reports.setdefault(erasure_id, []).append(
            TargetReport(name, method, status, action, error if status == "pending" else None))
    return reports


def _update(store: Store, erasure_id: int, name: str, status: str, action: str | None, error: str | None) -> None:
    store.con.execute(
        "UPDATE erasure_targets SET status = ?, action = coalesce(?, action), last_error = ?, "
        "attempts = attempts + 1, updated_at = now(), done_at = CASE WHEN ? = 'done' THEN now() END "
        "WHERE erasure_id = ? AND connection = ?",
        [status, action, error, status, erasure_id, name],
    )


def _complete(store: Store) -> None:
    """Erasures every system confirmed keep no address and no system id any more."""
    store.con.execute(
        """
        UPDATE erasures SET address = NULL, completed_at = now()
        WHERE completed_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM erasure_targets t WHERE t.erasure_id = erasures.id AND t.status = 'pending')
        """
    )
    store.con.execute(
        "UPDATE erasure_targets SET external_id = NULL WHERE status = 'done' AND external_id IS NOT NULL"
    )


def pending(store: Store) -> int:
    return int(store.scalar("SELECT count(*) FROM erasure_targets WHERE status = 'pending'") or 0)


def purge_reimported(store: Store, run_id: int | None) -> int:
    """Drop people a pull brought back after they were erased (their hash is suppressed)."""
    keys = suppression.erased_contacts(store.con)
    for key in keys:
        purge(store, key)
        store.record_error(run_id, "segsync", "erase", mask_email(key), None,
                           "a forgotten person was pulled again; dropped (only the hashed suppression remains)")
    return len(keys)

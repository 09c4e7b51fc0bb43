"""Erasure (GDPR Art. 17): ``segsync forget`` and the retries of later runs.

For each address:

1. every connection that can delete (``Capability.DELETE_CONTACTS``) gets a
   ``ContactChange(op="delete")`` — the connector deletes permanently where the system offers it,
   or archives and says so in the ``ok`` outcome's ``reason``; a connection that can write
   contacts but not delete, and holds the person, is told ``unsubscribed`` with no attributes
   (reported as "archived"); a source-only connection that holds the person is reported for
   removal by hand (segsync cannot write there; a re-import is dropped, see 3);
2. the person is removed from every table of the store (every table with a ``contact_key``
   column, plus record errors naming the address), and the address is masked wherever else it
   is written (another person's event properties, a run's options, an error text), in any case
   and also percent-encoded or JSON-escaped; suppression entries keep their reason but lose the
   address; a hash-only ``erasure`` suppression is added;
3. the store file is rewritten (:meth:`Store.rewrite`): DuckDB leaves deleted rows in freed
   blocks, so only a copy of the live data keeps the address off the disk;
4. a later pull that brings the address back is dropped after the pull (:func:`purge_reimported`),
   and nothing is ever pushed for it (the gate checks the hash);
5. a system that failed stays ``pending`` and is retried at the start of every later run until
   it confirms; until then its ``erasure_targets`` row and the ``erasures`` row keep what a retry
   needs (address, the system's id); both are cleared (and the file rewritten) once no system
   is pending. A system that refused (a rejection) or a source segsync cannot write to is
   ``left``: reported with the reason, not retried, and ``forget`` exits non-zero;
6. on an external engine (``[store] engine``, docs/scale.md#erasure) the person is deleted
   from every table segsync writes there (:meth:`Engine.erase`), as a target named
   ``"<engine> engine"``: pending while the engine cannot be reached, retried by the next sync
   or ``forget`` that reaches it. A table mapped onto the user's own (``[store.tables]``) is only read by
   segsync: it is reported ``left`` for removal by hand, never claimed erased.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segsync.connector import READ_CAPABILITIES, Capability, Connector, ContactChange
from segsync.consent import suppression
from segsync.model import mask_email
from segsync.plugins import PluginHost
from segsync.redaction import redact
from segsync.statuses import OutcomeStatus, SubscriptionStatus
from segsync.store import Store
from segsync.store.sql import identifier

if TYPE_CHECKING:
    from segsync.engines.base import Engine

log = logging.getLogger(__name__)

# Tables with a contact_key column whose rows are not the person's data but the erasure's own
# accountability record (hash only, see above) or the suppression list (handled apart).
_KEEP = {"suppressions", "erasures", "erasure_targets"}


# A target's status: ``done`` (deleted, or archived where the system cannot delete),
# ``pending`` (the system failed; retried at the start of every later run) or ``left`` (the
# person is still there and segsync will not retry: a source it cannot write to, or a system
# that refused the deletion; it has to be removed by hand).
DONE, PENDING, LEFT = "done", "pending", "left"


@dataclass
class TargetReport:
    connection: str
    method: str  # delete | archive | manual
    status: str  # done | pending | left
    action: str | None = None
    error: str | None = None

    def describe(self) -> str:
        """One line for people: what happened there, or what is left and why."""
        if self.status == DONE:
            return self.action or "deleted"
        if self.status == PENDING:
            return f"NOT DELETED YET: {self.error} (retried on every sync until it confirms)"
        return f"NOT DELETED: {self.error}"


@dataclass
class ErasureReport:
    email: str
    erasure_id: int
    removed_rows: dict[str, int]
    targets: list[TargetReport]
    store_rewritten: bool = False
    store_error: str | None = None

    @property
    def left(self) -> list[TargetReport]:
        """Systems that still hold the person (now or until a retry succeeds)."""
        return [t for t in self.targets if t.status != DONE]

    @property
    def done(self) -> bool:
        return not self.left and self.store_rewritten

    def to_dict(self) -> dict[str, Any]:
        return {"email": self.email, "erasure_id": self.erasure_id, "removed_rows": self.removed_rows,
                "store_rewritten": self.store_rewritten, "store_error": self.store_error,
                "done": self.done, "left": [t.connection for t in self.left],
                "systems": [vars(t) for t in self.targets]}


_HELD_BY = {  # where the store says a connection holds the person -> how to say it
    "contacts": "SELECT 1 FROM contacts WHERE updated_by = $1 AND contact_key = $2",
    "identities": "SELECT 1 FROM identities WHERE connection = $1 AND contact_key = $2",
    "consent records": "SELECT 1 FROM consent_ledger WHERE source = $1 AND contact_key = $2",
    "events": "SELECT 1 FROM events WHERE source = $1 AND contact_key = $2",
    "an acknowledged audience entry": "SELECT 1 FROM acknowledged WHERE destination = $1 AND contact_key = $2",
}


def _held(store: Store, name: str, key: str) -> list[str]:
    """What of the person the store got from (or gave to) connection ``name``."""
    found = store.con.execute(
        " UNION ALL ".join(f"SELECT {i} AS i WHERE EXISTS ({sql})" for i, sql in enumerate(_HELD_BY.values())),
        [name, key],
    ).fetchall()
    labels = list(_HELD_BY)
    return [labels[r[0]] for r in sorted(found)]


def address_pattern(key: str) -> str:
    """A case-insensitive RE2 pattern for ``key`` as it may be written: plain, in any case,
    percent-encoded (``ann%40example.com``) or JSON-escaped (``ann\\u0040example.com``)."""
    local, _, domain = key.partition("@")
    return f"(?i){re.escape(local)}(?:@|%40|\\\\u0040){re.escape(domain)}"


def _text_columns(store: Store) -> list[tuple[str, str, str]]:
    """(table, column, type) of every text or JSON column of the store's own tables."""
    return [tuple(r) for r in store.con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_catalog = current_database() "
        "AND data_type IN ('VARCHAR', 'JSON') ORDER BY table_name, ordinal_position"
    ).fetchall()]


def _scrub(store: Store, key: str) -> int:
    """Mask the address wherever it is still written (another person's event properties, a
    run's options, an error text, a note…); returns how many cells changed."""
    pattern, masked = address_pattern(key), mask_email(key)
    changed = 0
    for table, column, data_type in _text_columns(store):
        if table in _KEEP - {"suppressions"}:
            continue  # the erasure's own record: its address is cleared by _complete
        cell = identifier(column)
        rows = store.con.execute(
            f"UPDATE {identifier(table)} SET {cell} = regexp_replace({cell}::VARCHAR, $1, $2, 'g')"
            f"{'::JSON' if data_type == 'JSON' else ''} WHERE regexp_matches({cell}::VARCHAR, $1) RETURNING 1",
            [pattern, masked],
        ).fetchall()
        changed += len(rows)
    return changed


def purge(store: Store, key: str) -> dict[str, int]:
    """Delete every row about ``key`` from the store and mask it wherever else it is written
    (no transaction of its own). The bytes leave the file only with :meth:`Store.rewrite`."""
    con = store.con
    removed: dict[str, int] = {}
    tables = [r[0] for r in con.execute(
        "SELECT DISTINCT table_name FROM information_schema.columns "
        "WHERE column_name = 'contact_key' AND table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()]
    for table in sorted(set(tables) - _KEEP):
        rows = con.execute(f"DELETE FROM {identifier(table)} WHERE contact_key = ? RETURNING 1", [key]).fetchall()
        if rows:
            removed[table] = len(rows)
    errors = con.execute(
        "DELETE FROM record_errors WHERE regexp_matches(record, $1) OR regexp_matches(reason, $1) RETURNING 1",
        [address_pattern(key)],
    ).fetchall()
    if errors:
        removed["record_errors"] = len(errors)
    # Keep the suppression entries' reasons, never the address.
    cleared = con.execute(
        "UPDATE suppressions SET contact_key = NULL, note = NULL WHERE contact_key = ? RETURNING 1", [key]
    ).fetchall()
    if cleared:
        removed["suppressions (address cleared)"] = len(cleared)
    masked = _scrub(store, key)
    if masked:
        removed["cells naming the address (masked)"] = masked
    return removed


_MANUAL = "segsync cannot write to this connection; its {held} still hold the person: remove them there by hand (a re-import is dropped)"
# A table of [store.tables]: segsync reads it on the engine and never writes it.
_MAPPED = "segsync reads this table and never writes it ([store.tables]): remove the person there by hand"
MANUAL, ENGINE = "manual", "engine"


def _manual_reason(held: Sequence[str]) -> str:
    return _MAPPED if not held else _MANUAL.format(held=_join(held))


def engine_target(name: str) -> str:
    """The ``connection`` of an erasure target that is the external engine ``name``."""
    return f"{name} engine"


def _engine_targets(engine: Engine | None) -> list[tuple[str, str, Any, Any, list[str]]]:
    """The engine (its own tables: deleted from, retried like a system) and each table mapped
    onto the user's (reported for removal by hand, never claimed erased)."""
    if engine is None:
        return []
    mapped = [(f"{table} (mapped to {source})", MANUAL, None, None, [])
              for table, source in sorted(engine.tables.items())]
    return [(engine_target(engine.name), ENGINE, None, None, []), *mapped]


def forget(
    store: Store, connectors: Mapping[str, Connector], host: PluginHost, keys: Sequence[str],
    run_id: int | None = None, *, engine: Engine | None = None, engine_error: str | None = None,
) -> list[ErasureReport]:
    """Erase each of ``keys`` (see the module's docstring). ``engine``: the project's external
    engine (open, unless ``engine_error`` says why it could not be); the person is deleted
    from segsync's tables there as from a connected system, and each table mapped onto the
    user's own is reported for removal by hand."""
    reports = []
    # Before the first delete commits: should this process die before the file is rewritten,
    # the next writer rewrites it.
    store.require_rewrite()
    for key in dict.fromkeys(keys):
        with store.transaction():
            targets = _targets(store, connectors, key) + _engine_targets(engine)
            erasure_id = store.scalar(
                "INSERT INTO erasures (address_hash, address, requested_at) "
                "VALUES (sha256((SELECT salt FROM consent_salt) || ?), ?, now()) RETURNING id",
                [key, key],
            )
            for name, method, external_id, previous, held in targets:
                manual = method == MANUAL
                store.con.execute(
                    "INSERT INTO erasure_targets (erasure_id, connection, method, external_id, previous_status, "
                    "status, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                    [erasure_id, name, method, external_id, previous, LEFT if manual else PENDING,
                     _manual_reason(held) if manual else None],
                )
            removed = purge(store, key)
            store.con.execute(
                "INSERT INTO suppressions (contact_key, address_hash, channel, reason, source, created_at) "
                "VALUES (NULL, sha256((SELECT salt FROM consent_salt) || ?), 'all', 'erasure', 'forget', now())",
                [key],
            )
        log.info("erased %s from the store (%s)", mask_email(key), removed)
        reports.append(ErasureReport(key, erasure_id, removed, []))
    results = retry_pending(store, connectors, host, run_id, erasure_ids=[r.erasure_id for r in reports],
                            rewrite=False, engine=engine, engine_error=engine_error)
    if engine is not None and engine_error is None:
        # Earlier erasures the engine could not take: this command reached it.
        retry_pending(store, connectors, host, run_id, rewrite=False, engine=engine, methods=[ENGINE])
    rewritten, error = _rewrite(store)
    for report in reports:
        report.targets = results.get(report.erasure_id, [])
        report.store_rewritten, report.store_error = rewritten, error
    return reports


def _rewrite(store: Store) -> tuple[bool, str | None]:
    """Rewrite the store file so deleted rows leave the disk; (done, why not)."""
    try:
        store.rewrite()
    except Exception as exc:  # the deletes stand; the marker makes the next writer try again
        log.error("the store file could not be rewritten: %s", exc)
        return False, (f"the store file could not be rewritten ({type(exc).__name__}: {exc}); deleted rows may "
                       "remain in its free space until the next segsync command that writes to the store")
    return True, None


def _join(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else "".join(items)


def _targets(store: Store, connectors: Mapping[str, Connector], key: str) -> list[tuple[str, str, Any, Any, list[str]]]:
    targets = []
    for name, connector in connectors.items():
        enabled = connector.enabled_capabilities()
        held = _held(store, name, key)
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
        targets.append((name, method, external_id, previous, held))
    return targets


def retry_pending(
    store: Store, connectors: Mapping[str, Connector], host: PluginHost, run_id: int | None,
    erasure_ids: Sequence[int] | None = None, *, rewrite: bool = True,
    engine: Engine | None = None, engine_error: str | None = None, methods: Sequence[str] | None = None,
) -> dict[int, list[TargetReport]]:
    """Send every pending deletion (of ``erasure_ids``, or all; of targets with one of
    ``methods``, or all); returns reports per erasure. ``engine``: the project's external
    engine, open (``engine_error``: why it is not).

    An erasure every system has answered loses its address; the store file is then rewritten
    (unless ``rewrite`` is False: the caller does it)."""
    rows = store.con.execute(
        """
        SELECT t.erasure_id, t.connection, t.method, t.external_id, t.previous_status, e.address
        FROM erasure_targets t JOIN erasures e ON e.id = t.erasure_id
        WHERE t.status = 'pending' AND (?::BIGINT[] IS NULL OR list_contains(?::BIGINT[], t.erasure_id))
          AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], t.method))
        ORDER BY t.erasure_id, t.connection
        """,
        [erasure_ids, erasure_ids, methods, methods],
    ).fetchall()
    for erasure_id, name, method, external_id, previous, address in rows:
        if method == ENGINE:
            status, action, error = _erase_on_engine(engine, engine_error, name, address)
        else:
            status, action, error = _send(connectors.get(name), host, run_id, name, method, external_id,
                                          previous, address)
        _update(store, erasure_id, name, status, action, error)
        if status == PENDING:
            store.record_error(run_id=run_id, connection=name, phase="erase",
                               record=mask_email(address or ""), field=None,
                               reason=f"erasure not confirmed yet (retried next run): {error}",
                               retryable=True)
        elif status == LEFT:
            store.record_error(run_id=run_id, connection=name, phase="erase",
                               record=mask_email(address or ""), field=None,
                               reason=f"erasure refused (not retried; remove the person there by hand): {error}")
    if _complete(store) and rewrite:
        _rewrite(store)
    reports: dict[int, list[TargetReport]] = {}
    for erasure_id, name, method, status, action, error in store.con.execute(
        "SELECT erasure_id, connection, method, status, action, last_error FROM erasure_targets "
        "WHERE ?::BIGINT[] IS NULL OR list_contains(?::BIGINT[], erasure_id) ORDER BY erasure_id, connection",
        [erasure_ids, erasure_ids],
    ).fetchall():
        reports.setdefault(erasure_id, []).append(
            TargetReport(name, method, status, action, error if status != DONE else None))
    return reports


def _send(
    connector: Connector | None, host: PluginHost, run_id: int | None, name: str, method: str,
    external_id: Any, previous: Any, address: str | None,
) -> tuple[str, str | None, str | None]:
    """Ask one system to delete (or archive) the person: (status, action, error)."""
    if connector is None or address is None:
        return PENDING, None, (f"connection {name!r} is not configured any more; "
                               "add it back or remove the person by hand")
    if method == "delete":
        change = ContactChange(address, "delete", SubscriptionStatus.NONE, previous_status=previous, external_id=external_id)
    else:
        change = ContactChange(address, "upsert", SubscriptionStatus.UNSUBSCRIBED, previous_status=previous, external_id=external_id)
    try:
        result = host.push(connector, (change,), run_id)
    except Exception as exc:  # a failing system is retried next run; the others go on
        return PENDING, None, redact(f"{type(exc).__name__}: {exc}")
    outcome = next((o for o in result.outcomes if o.contact_key == address), None)
    if outcome is None:
        return PENDING, None, "the connector returned no outcome"
    if outcome.status == OutcomeStatus.OK:
        if method == "delete":
            return DONE, outcome.reason or "deleted", None
        return DONE, ("archived: unsubscribed with no attributes (the connector cannot delete); "
                      "delete the person in that system by hand"), None
    error = redact(f"{outcome.status}: {outcome.reason or ''}")
    # A rejection is the system's final word (e.g. Brevo's 405 for the account's own address):
    # sending it again changes nothing, so it is reported as left rather than retried forever.
    return (LEFT if outcome.status == OutcomeStatus.REJECTED else PENDING), None, error


def _erase_on_engine(
    engine: Engine | None, engine_error: str | None, name: str, address: str | None,
) -> tuple[str, str | None, str | None]:
    """Delete the person from segsync's tables on the engine: (status, action, error)."""
    if engine is None or engine_target(engine.name) != name or address is None:
        return PENDING, None, (f"the {name} is not open in this command; "
                               "the next sync on it retries")
    if engine_error is not None:
        return PENDING, None, engine_error
    try:
        removed = engine.erase(address)
    except Exception as exc:  # unreachable, or a statement failed: retried by the next command
        return PENDING, None, redact(f"{type(exc).__name__}: {exc}")
    rows = ", ".join(f"{table} {n}" for table, n in sorted(removed.items())) or "none held the person"
    return DONE, f"deleted from segsync's tables there ({rows})", None


def _update(store: Store, erasure_id: int, name: str, status: str, action: str | None, error: str | None) -> None:
    store.con.execute(
        "UPDATE erasure_targets SET status = ?, action = coalesce(?, action), last_error = ?, "
        "attempts = attempts + 1, updated_at = now(), done_at = CASE WHEN ? = 'done' THEN now() END "
        "WHERE erasure_id = ? AND connection = ?",
        [status, action, error, status, erasure_id, name],
    )


def _complete(store: Store) -> int:
    """Erasures no system will be asked about again keep no address and no system id any more;
    returns how many lost their address now (the store file must then be rewritten)."""
    completing = """
        FROM erasures WHERE completed_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM erasure_targets t WHERE t.erasure_id = erasures.id AND t.status = 'pending')
    """
    count = int(store.scalar(f"SELECT count(*) {completing}") or 0)
    if count:
        store.require_rewrite()
        store.con.execute(f"UPDATE erasures SET address = NULL, completed_at = now() WHERE id IN (SELECT id {completing})")
    store.con.execute(
        "UPDATE erasure_targets SET external_id = NULL WHERE status <> 'pending' AND external_id IS NOT NULL"
    )
    return count


def pending(store: Store) -> int:
    return int(store.scalar("SELECT count(*) FROM erasure_targets WHERE status = 'pending'") or 0)


def purge_reimported(store: Store, run_id: int | None) -> int:
    """Drop people a pull brought back after they were erased (their hash is suppressed)."""
    keys = suppression.erased_contacts(store.con)
    if not keys:
        return 0
    if run_id is not None:  # a dry run (no run id) is rolled back: nothing reaches the file
        store.require_rewrite()
    for key in keys:
        purge(store, key)
        store.record_error(run_id=run_id, connection="segsync", phase="erase", record=mask_email(key),
                           field=None,
                           reason="a forgotten person was pulled again; dropped (only the hashed suppression remains)")
    if run_id is not None:
        _rewrite(store)  # the pull wrote the address into the file
    return len(keys)

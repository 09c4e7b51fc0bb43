"""The suppression list: global (every destination, every purpose of a channel) and sticky.

An entry holds the address (None once the person is erased), its salted hash, the channel
(``email``, ``sms`` or ``all``), a reason, the source (who added it) and the time. It stays in
force until ``segsync suppress remove``; removal keeps the row with who removed it and when.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import duckdb

from segsync.model import Channel
from segsync.store.store import dicts

REASONS = ("opt_out", "bounce", "complaint", "legal", "erasure", "other")
# "all": every channel.
CHANNELS = (*(c.value for c in Channel), "all")


def salt(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT salt FROM consent_salt").fetchall()[0][0]


def address_hash(con: duckdb.DuckDBPyConnection, contact_key: str) -> str:
    """sha256(salt || normalized address): how an erased person is recognised."""
    return con.execute("SELECT sha256((SELECT salt FROM consent_salt) || ?)", [contact_key]).fetchall()[0][0]


def add(
    con: duckdb.DuckDBPyConnection,
    contact_key: str,
    *,
    channel: str = "email",
    reason: str = "opt_out",
    source: str = "cli",
    note: str | None = None,
) -> tuple[int, bool]:
    """Suppress ``contact_key``; returns (entry id, created). An active entry for the same
    channel and reason is kept as it is (adding twice changes nothing)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}; one of {', '.join(REASONS)}")
    existing = con.execute(
        "SELECT id FROM suppressions WHERE contact_key = ? AND channel = ? AND reason = ? "
        "AND removed_at IS NULL", [contact_key, channel, reason],
    ).fetchall()
    if existing:
        return existing[0][0], False
    row = con.execute(
        """
        INSERT INTO suppressions (contact_key, address_hash, channel, reason, source, note, created_at)
        VALUES (?, sha256((SELECT salt FROM consent_salt) || ?), ?, ?, ?, ?, now()) RETURNING id
        """,
        [contact_key, contact_key, channel, reason, source, note],
    ).fetchall()
    return row[0][0], True


def remove(
    con: duckdb.DuckDBPyConnection,
    contact_key: str,
    *,
    channel: str | None = None,
    removed_by: str = "cli",
    note: str | None = None,
) -> int:
    """Lift every active entry for the address (also an erased person's hash); returns how many."""
    rows = con.execute(
        """
        UPDATE suppressions SET removed_at = now(), removed_by = ?, removal_note = ?
        WHERE removed_at IS NULL
          AND (contact_key = ? OR address_hash = sha256((SELECT salt FROM consent_salt) || ?))
          AND (? IS NULL OR channel = ?)
        RETURNING id
        """,
        [removed_by, note, contact_key, contact_key, channel, channel],
    ).fetchall()
    return len(rows)


def entries(con: duckdb.DuckDBPyConnection, *, include_removed: bool = False) -> list[dict[str, Any]]:
    return dicts(
        con,
        "SELECT id, contact_key, address_hash, channel, reason, source, note, created_at, removed_at, "
        "removed_by, removal_note FROM suppressions "
        + ("" if include_removed else "WHERE removed_at IS NULL ")
        + "ORDER BY created_at, id",
    )


def erased_sql(address: str) -> str:
    """SQL that is true when ``address`` (an SQL expression) matches an active hash-only
    (erased) entry."""
    return (f"sha256((SELECT salt FROM consent_salt) || {address}) IN ("
            "SELECT address_hash FROM suppressions WHERE contact_key IS NULL AND removed_at IS NULL)")


def erased(con: duckdb.DuckDBPyConnection, keys: Iterable[str]) -> set[str]:
    """The addresses among ``keys`` that match an active hash-only (erased) entry."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return set()
    return {r[0] for r in con.execute(
        f"SELECT k FROM (SELECT unnest(?::VARCHAR[]) AS k) WHERE {erased_sql('k')}", [keys]).fetchall()}


def erased_contacts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Contacts in the store that match an erased person's hash (brought back by a re-import)."""
    if not con.execute(
        "SELECT count(*) FROM suppressions WHERE contact_key IS NULL AND removed_at IS NULL"
    ).fetchall()[0][0]:
        return []  # skip hashing every contact when nobody was ever erased
    return [
        r[0] for r in con.execute(
            """
            SELECT contact_key FROM contacts
            WHERE sha256((SELECT salt FROM consent_salt) || contact_key) IN (
                SELECT address_hash FROM suppressions WHERE contact_key IS NULL AND removed_at IS NULL)
            """
        ).fetchall()
    ]

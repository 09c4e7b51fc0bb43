"""What segsync last saw of an external engine, kept in step by diffs computed in the engine.

Two things the diff stage reads locally come from the engine (docs/scale.md#what-crosses-the-wire):

* **effective consent** (one row per contact with a decision, per consent policy), derived in
  the engine each run;
* **contacts**, when ``contacts`` is mapped onto the user's own table or view: people who never
  came through a connector must still be planned for every destination, like those who did.

Both are mirrored in the embedded store (``engine_consent``, and ``contacts`` itself). The engine
keeps what the mirror holds (``consent_seen``, ``contacts_seen``: a hash per contact), so each
run computes *in the engine* the rows that differ from it and only those cross the wire. Each
side records the run the other was last brought to (``engine_seen`` here, ``run_id`` there): when
they disagree (a crash between the two writes, a store restored from a backup, a new consent
policy) the mirror is rebuilt from everything the engine holds, so a missed diff can never
leave it stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb

from segsync.consent.policies import ConsentPolicy
from segsync.consent.rules import combined_status_sql
from segsync.engines.base import Engine, Received
from segsync.engines.layout import CANONICAL_TABLES, RESULT_TABLES
from segsync.segments import dialects
from segsync.store.sql import identifier, literal

CONSENT_MIRROR = "engine_consent"
SEEN = "engine_seen"
CONSENT_COLUMNS = tuple(c for c in RESULT_TABLES["consent_current"])  # policy_key first
CONTACT_COLUMNS = tuple(CANONICAL_TABLES["contacts"])
# An instant that never changes, so the consent rule's text (and so its key) depends only on
# the policy, the country policies, the clock-skew allowance, the channel and the purpose.
_KEY_INSTANT = datetime(2000, 1, 1, tzinfo=timezone.utc)


def consent_key(policy: ConsentPolicy, countries: Mapping[str, ConsentPolicy], *,
                clock_skew: timedelta, channel: str = "email", purpose: str = "marketing") -> str:
    """A short fingerprint of how consent is derived: a change of policy (or of segsync's
    consent rule itself) gives a new key, and that key's mirror starts from scratch."""
    sql = combined_status_sql(policy, countries, as_of=_KEY_INSTANT, clock_skew=clock_skew,
                              channel=channel, purpose=purpose, portable=True)
    return f"{policy.name}:{hashlib.sha256(sql.encode()).hexdigest()[:16]}"


def _seen_here(con: duckdb.DuckDBPyConnection, what: str) -> tuple[int, int] | None:
    row = con.execute(f"SELECT run_id, rows FROM {SEEN} WHERE what = ?", [what]).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _record_here(con: duckdb.DuckDBPyConnection, what: str, run_id: int, rows: int) -> None:
    con.execute(f"INSERT OR REPLACE INTO {SEEN} (what, run_id, rows) VALUES (?, ?, ?)",
                [what, run_id, rows])


class _Transaction:
    """BEGIN/COMMIT around the mirror's writes in a run; nothing in a dry run, which is one
    transaction already (rolled back at its end)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: int | None) -> None:
        self.con, self.active = con, run_id is not None

    def __enter__(self) -> None:
        if self.active:
            self.con.execute("BEGIN TRANSACTION")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.active:
            self.con.execute("COMMIT" if exc_type is None else "ROLLBACK")


# -- effective consent ----------------------------------------------------------------------


def sync_consent(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    policies: Mapping[str, ConsentPolicy],
    countries: Mapping[str, ConsentPolicy],
    *,
    as_of: datetime,
    clock_skew: timedelta,
    run_id: int | None,
    received: Received,
) -> dict[str, str]:
    """Derive effective consent under each of ``policies`` (by name) in ``engine`` into its
    ``consent_current``, bring the rows that differ from ``consent_seen`` into the mirror, and
    (in a run) move ``consent_seen`` on. Return policy name → its key in the mirror."""
    keys = {name: consent_key(p, countries, clock_skew=clock_skew) for name, p in policies.items()}
    selects = []
    for name, policy in policies.items():
        sql = combined_status_sql(policy, countries, as_of=as_of, clock_skew=clock_skew,
                                  portable=engine.dialect != dialects.DUCKDB)
        selects.append(f"SELECT {literal(keys[name])} AS policy_key, e.* FROM ({sql}) AS e")
    engine.replace_rows("consent_current", engine.transpile(" UNION ALL ".join(selects)))

    counts = {k: int(n) for k, n in engine.rows(
        "SELECT policy_key, count(*) FROM consent_current GROUP BY policy_key")}
    seen = {k: (int(r), int(n)) for k, r, n in engine.rows(
        "SELECT policy_key, max(run_id), count(*) FROM consent_seen GROUP BY policy_key")}
    cols = ", ".join(CONSENT_COLUMNS)
    with _Transaction(con, run_id):
        # Keys no destination uses any more (a policy changed): their mirror goes.
        con.execute(f"DELETE FROM {CONSENT_MIRROR} WHERE policy_key NOT IN "
                    "(SELECT unnest(?::VARCHAR[]))", [list(keys.values())])
        con.execute(f"DELETE FROM {SEEN} WHERE what LIKE 'consent:%' AND what NOT IN "
                    "(SELECT unnest(?::VARCHAR[]))", [[f"consent:{k}" for k in keys.values()]])
        for key in dict.fromkeys(keys.values()):
            here = _seen_here(con, f"consent:{key}")
            if here is not None and seen.get(key) == here:
                # The changed rows only: a decision that moved, a contact without one now.
                rows = engine.rows(engine.transpile(
                    f"SELECT coalesce(c.policy_key, s.policy_key), coalesce(c.contact_key, s.contact_key), "
                    f"c.status, c.ledger_id, c.method, c.suppression_id, c.policy "
                    f"FROM (SELECT * FROM consent_current WHERE policy_key = {literal(key)}) AS c "
                    f"FULL OUTER JOIN (SELECT * FROM consent_seen WHERE policy_key = {literal(key)}) AS s "
                    "ON c.contact_key = s.contact_key "
                    "WHERE c.contact_key IS NULL OR s.contact_key IS NULL "
                    "OR c.status IS DISTINCT FROM s.status OR c.ledger_id IS DISTINCT FROM s.ledger_id "
                    "OR c.method IS DISTINCT FROM s.method "
                    "OR c.suppression_id IS DISTINCT FROM s.suppression_id "
                    "OR c.policy IS DISTINCT FROM s.policy"))
                _apply_consent(con, key, rows)
            else:
                received.rebuilt.append(f"consent {key}: " + (
                    "never mirrored" if here is None else "the mirror and the engine disagree"))
                con.execute(f"DELETE FROM {CONSENT_MIRROR} WHERE policy_key = ?", [key])
                rows = engine.rows(engine.transpile(
                    f"SELECT {cols} FROM consent_current WHERE policy_key = {literal(key)}"))
                _apply_consent(con, key, rows)
            received.add("consent", len(rows))
            if run_id is not None:
                _record_here(con, f"consent:{key}", run_id, counts.get(key, 0))
    if run_id is not None:
        # After the mirror committed: a crash before this line leaves the two sides on
        # different runs, and the next run rebuilds the mirror.
        engine.replace_rows("consent_seen", f"SELECT {run_id}, {cols} FROM consent_current")
    return keys


def _apply_consent(con: duckdb.DuckDBPyConnection, key: str, rows: Sequence[Sequence[Any]]) -> None:
    """Replace the mirror's rows of ``rows``' contacts (a row whose status is None: gone)."""
    if not rows:
        return
    con.execute(f"DELETE FROM {CONSENT_MIRROR} WHERE policy_key = ? AND contact_key IN "
                "(SELECT unnest(?::VARCHAR[]))", [key, [r[1] for r in rows]])
    kept = [r for r in rows if r[2] is not None]
    if kept:
        columns = list(zip(*kept))
        con.execute(
            f"INSERT INTO {CONSENT_MIRROR} ({', '.join(CONSENT_COLUMNS)}) SELECT unnest($a::VARCHAR[]), "
            "unnest($k::VARCHAR[]), unnest($s::VARCHAR[]), unnest($l::BIGINT[]), unnest($m::VARCHAR[]), "
            "unnest($x::BIGINT[]), unnest($p::VARCHAR[])",
            dict(zip(("a", "k", "s", "l", "m", "x", "p"), (list(c) for c in columns))))


# -- contacts mapped onto the user's table --------------------------------------------------


def _row_hash(alias: str) -> str:
    """DuckDB text (transpiled for the engine) of a hash of every canonical contact column: two
    runs of one engine compare it, so only its own stability matters."""
    parts = ", ".join(f"coalesce(CAST({alias}.{identifier(c)} AS VARCHAR), '∅')" for c in CONTACT_COLUMNS)
    return f"md5(concat_ws('|', {parts}))"


def sync_contacts(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    *,
    as_of: datetime,
    run_id: int | None,
    received: Received,
) -> None:
    """With ``contacts`` mapped onto the user's table: bring the contacts added, changed or
    removed there since the mirror was last brought up to date into the embedded ``contacts``,
    so the diff plans them like contacts a connector pulled."""
    if "contacts" not in engine.tables:
        return
    seen = engine.rows("SELECT max(run_id), count(*) FROM contacts_seen")
    there = None if not seen or seen[0][0] is None else (int(seen[0][0]), int(seen[0][1]))
    here = _seen_here(con, "contacts")
    cols = ", ".join(f"c.{identifier(c)}" for c in CONTACT_COLUMNS)
    marker = f"engine:{engine.name}"
    with _Transaction(con, run_id):
        if here is not None and here == there:
            changed = engine.rows(engine.transpile(
                f"SELECT {cols} FROM contacts AS c LEFT JOIN contacts_seen AS s "
                f"ON s.contact_key = c.contact_key WHERE s.contact_key IS NULL "
                f"OR s.row_hash <> {_row_hash('c')}"))
            gone = [r[0] for r in engine.rows(engine.transpile(
                "SELECT s.contact_key FROM contacts_seen AS s WHERE NOT EXISTS "
                "(SELECT 1 FROM contacts AS c WHERE c.contact_key = s.contact_key)"))]
        else:
            received.rebuilt.append("contacts: " + (
                "never mirrored" if here is None else "the mirror and the engine disagree"))
            changed = engine.rows(engine.transpile(f"SELECT {cols} FROM contacts AS c"))
            present = {r[0] for r in changed}
            gone = [k for (k,) in con.execute(
                "SELECT contact_key FROM contacts WHERE updated_by = ?", [marker]).fetchall()
                if k not in present]
        _apply_contacts(con, changed, gone, as_of, marker)
        received.add("contacts", len(changed) + len(gone))
        if run_id is not None:
            total = engine.rows(engine.transpile("SELECT count(*) FROM contacts"))[0][0]
            _record_here(con, "contacts", run_id, int(total))
    if run_id is not None:
        engine.replace_rows("contacts_seen", engine.transpile(
            f"SELECT {run_id}, c.contact_key, {_row_hash('c')} FROM contacts AS c"))


def _apply_contacts(con: duckdb.DuckDBPyConnection, rows: Sequence[Sequence[Any]], gone: Sequence[str],
                    as_of: datetime, marker: str) -> None:
    """Upsert the engine's contact rows into the store's ``contacts`` (its own ``contact_id``
    kept) and delete those the engine no longer holds, unless a connector brought them."""
    if gone:
        con.execute("DELETE FROM contacts WHERE contact_key IN (SELECT unnest(?::VARCHAR[])) "
                    "AND contact_key NOT IN (SELECT contact_key FROM identities)", [list(gone)])
    if not rows:
        return
    names = [c for c in CONTACT_COLUMNS if c != "contact_id"]
    position = {c: i for i, c in enumerate(CONTACT_COLUMNS)}
    columns = {c: [r[position[c]] for r in rows] for c in names}
    # The user's table may leave segsync's bookkeeping columns empty; updated_by names the
    # engine, so a rebuild knows which contacts came from it.
    columns["custom"] = [None if v is None else v if isinstance(v, str) else _json(v)
                         for v in columns["custom"]]
    types = {"company_size": "INTEGER", "created_at": "TIMESTAMPTZ", "first_seen_at": "TIMESTAMPTZ",
             "updated_at": "TIMESTAMPTZ"}
    select = ", ".join(f"unnest(${c}::{types.get(c, 'VARCHAR')}[]) AS {identifier(c)}" for c in names)
    con.execute(
        f"""
        INSERT INTO contacts ({', '.join(identifier(c) for c in names)})
        SELECT contact_key, first_name, last_name, company, job_title, department, industry,
               company_size, country, timezone, lifecycle_stage, created_at,
               coalesce(json(custom), '{{}}'), coalesce(first_seen_at, $as_of),
               coalesce(updated_at, $as_of), $marker
        FROM (SELECT {select})
        ON CONFLICT (contact_key) DO UPDATE SET
            {', '.join(f'{identifier(c)} = excluded.{identifier(c)}' for c in names if c != 'contact_key')}
        """,
        {**columns, "as_of": as_of, "marker": marker})


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)

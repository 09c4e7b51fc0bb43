"""Effective consent: one SQL statement over the append-only ledger and the suppression list.

For one channel and purpose, per contact (docs/consent.md states the same rules in words):

1. **Echoes are ignored.** A record a connected system reports that only repeats what segsync
   itself last pushed there (same kind — mailable or opted out — as segsync's latest acknowledged
   status change to that system before the record arrived, and not newer than that push by more
   than the clock-skew allowance) is not new information: Mailchimp's ``opted_in`` at the moment
   segsync subscribed someone must not outrank an older opt-out that arrived late.
2. **Times are capped** at when segsync received the record: a system whose clock runs ahead
   cannot date a record into the future and win with it.
3. **Opt-out, complaint and hard bounce are sticky.** The latest of them (on equal times the
   more restrictive: complaint, then bounce, then opt-out) stands until an opt-in (or a pending
   request) made by one of the policy's *explicit* methods — those that carry the person's own
   consent: by default a form or a double opt-in confirmation — is newer than it: strictly newer
   from the same system, newer by more than the clock-skew allowance from another system.
   API writes, imports, syncs, admin actions, purchases and inquiries never lift it.
4. **Otherwise** an opt-in that counts under the policy is consent (``subscribed``); only
   pending records (awaiting double opt-in) give ``pending``, which is not consent; no record
   gives no row (``none`` downstream).
5. **Suppressions win over everything**: an active entry for the channel (or ``all``) makes the
   contact ``unsubscribed`` (``cleaned`` for bounces, ``complained`` for complaints).

Policies (:mod:`.policies`) change which opt-ins count, which methods are explicit and when
implied consent expires; everything is inlined as quoted constants, never user text.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import duckdb
from segsync.consent.policies import DEFAULT, DEFAULT_CLOCK_SKEW, ConsentPolicy
from segsync.statuses import MAILABLE_STATUSES, OPT_OUT_STATUSES
from segsync.store.sql import literal, literal_list
from segsync.store.temp_tables import OwnsTempTables

# Ledger status → the status a destination should hold.
DESTINATION_STATUS = {
    "opted_in": "subscribed",
    "opted_out": "unsubscribed",
    "pending": "pending",
    "bounced": "cleaned",
    "complained": "complained",
}
STICKY = ("opted_out", "bounced", "complained")
# The ledger statuses that give a mailable destination status.
LEDGER_MAILABLE = tuple(k for k, v in DESTINATION_STATUS.items() if v in MAILABLE_STATUSES)
# Suppression reason → destination status.
SUPPRESSION_STATUS = {"bounce": "cleaned", "complaint": "complained"}
# Destination statuses from most to least restrictive ("none": no consent on record).
RESTRICTIVENESS = {"complained": 6, "cleaned": 5, "unsubscribed": 4, "none": 3, "pending": 2, "subscribed": 1}


def _interval(delta: timedelta) -> str:
    return f"to_microseconds({int(delta / timedelta(microseconds=1))})"


def _case(column: str, mapping: Mapping[str, object], default: str = "NULL") -> str:
    whens = " ".join(
        f"WHEN {literal(k)} THEN {literal(v) if isinstance(v, str) else v}" for k, v in mapping.items()
    )
    return f"CASE {column} {whens} ELSE {default} END"


def effective_status_sql(
    policy: ConsentPolicy = DEFAULT,
    *,
    channel: str = "email",
    purpose: str = "marketing",
    as_of: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    contact_key: str | None = None,
    records_until: datetime | None = None,
    portable: bool = False,
    keys: str | None = None,
) -> str:
    """SQL selecting ``(contact_key, status, ledger_id, method, suppression_id, policy)``.

    ``records_until`` ignores ledger records made later (segment evaluation at a past
    ``as_of``); the gate never sets it: a newer opt-out always counts.

    ``status`` is in the destination vocabulary; ``ledger_id`` is the record that decided it
    (None when a suppression did: then ``suppression_id``). Contacts with no counted record and
    no suppression have no row. ``contact_key`` restricts it to one person (``consent show``),
``keys`` (SQL selecting ``contact_key``) to those people: each person's status depends only on
their own rows, so the restriction changes nobody's result.

    The text is DuckDB's; ``portable=True`` avoids DuckDB's ``ASOF JOIN`` (the same result with a
    join and ``row_number()``), so :func:`segsync.segments.dialects.transpile` can render it for
    another engine (docs/scale.md).
    """
    only = _only(contact_key, keys)
    return _ctes(policy, channel, purpose, as_of, clock_skew, only, records_until, portable) + _final(
        policy, channel, only
    )


def _only(contact_key: str | None, keys: str | None = None) -> str:
    """The condition restricting a table with ``contact_key`` to the requested people."""
    only = ""
    if contact_key is not None:
        only += f" AND contact_key = {literal(contact_key)}"
    if keys is not None:
        only += f" AND contact_key IN ({keys})"
    return only


def consent_moves_sql(
    policy: ConsentPolicy = DEFAULT,
    *,
    channel: str = "email",
    purpose: str = "marketing",
    since: datetime,
    until: datetime,
) -> str:
    """SQL selecting the ``contact_key`` of everyone whose :func:`effective_status_sql` with
    ``records_until = as_of`` may differ between ``as_of = since`` and ``as_of = until`` when
    no row was added: a record made in ``(since, until]``, or an implied opt-in expiring then."""
    start, end = (f"{literal(t.isoformat())}::TIMESTAMPTZ" for t in (since, until))
    moves = [f"(recorded_at > {start} AND recorded_at <= {end})"]
    for method, lasts in sorted(policy.implied.items()):
        expires = f"least(recorded_at, ingested_at) + {_interval(lasts)}"
        moves.append(f"(method = {literal(method)} AND {expires} > {start} AND {expires} <= {end})")
    return (
        f"SELECT contact_key FROM consent_ledger WHERE channel = {literal(channel)} "
        f"AND purpose = {literal(purpose)} AND ({' OR '.join(moves)})"
    )


def echo_ids_sql(
    channel: str = "email", purpose: str = "marketing", *, contact_key: str | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW, portable: bool = False,
) -> str:
    """SQL selecting the ``id`` of every ledger record treated as an echo (rule 1);
    ``portable``: without DuckDB's ``ASOF JOIN`` (as :func:`effective_status_sql`)."""
    return _ctes(DEFAULT, channel, purpose, None, clock_skew, _only(contact_key),
                 portable=portable) + " SELECT id FROM echoes"


def _ctes(policy, channel, purpose, as_of, clock_skew, only, records_until=None,
          portable=False) -> str:
    until = (
        f" AND recorded_at <= {literal(records_until.isoformat())}::TIMESTAMPTZ" if records_until else ""
    )
    now = f"{literal(as_of.isoformat())}::TIMESTAMPTZ" if as_of else "now()"
    skew = _interval(clock_skew)
    ch, pu = literal(channel), literal(purpose)
    counted = (
        "true" if policy.counted_opt_in_methods is None
        else f"l.method IN ({literal_list(sorted(policy.counted_opt_in_methods))})"
    )
    if policy.implied:
        expiry = " ".join(
            f"WHEN {literal(m)} THEN l.t + {_interval(d)} > {now}" for m, d in sorted(policy.implied.items())
        )
        counted = f"({counted}) AND (CASE l.method {expiry} ELSE true END)"
    severity = _case("status", {"complained": 3, "bounced": 2, "opted_out": 1}, "0")
    return f"""
        WITH l AS (
            SELECT id, contact_key, status, method, source, ingested_at,
                   least(recorded_at, ingested_at) AS t, {severity} AS severity
            FROM consent_ledger WHERE channel = {ch} AND purpose = {pu}{only}{until}
        ),
        pushes AS (
            SELECT destination, contact_key, changed_at, after_status IN ({literal_list(sorted(MAILABLE_STATUSES))}) AS mailable
            FROM status_changes
            WHERE outcome = 'acknowledged' AND channel = {ch} AND purpose = {pu}{only}
        ),
        echoes AS ({_echoes(skew, portable)}),
        counted AS (
            SELECT l.* FROM l
            WHERE l.id NOT IN (SELECT id FROM echoes)
              AND (l.status <> 'opted_in' OR ({counted}))
        ),
        last_sticky AS (
            SELECT * FROM counted WHERE status IN ({literal_list(sorted(STICKY))})
            QUALIFY row_number() OVER (PARTITION BY contact_key ORDER BY t DESC, severity DESC, id DESC) = 1
        ),
        open AS (
            SELECT c.* FROM counted c LEFT JOIN last_sticky s ON s.contact_key = c.contact_key
            WHERE c.status IN ({literal_list(LEDGER_MAILABLE)})
              AND (s.id IS NULL OR (
                   c.method IN ({literal_list(sorted(policy.explicit_methods))})
                   AND c.t > s.t + CASE WHEN c.source = s.source THEN to_microseconds(0) ELSE {skew} END))
            QUALIFY row_number() OVER (
                PARTITION BY c.contact_key ORDER BY (c.status = 'opted_in') DESC, c.t DESC, c.id DESC) = 1
        ),
        decided AS (
            SELECT contact_key, status, id, method FROM open
            UNION ALL
            SELECT s.contact_key, s.status, s.id, s.method FROM last_sticky s
            WHERE NOT EXISTS (SELECT 1 FROM open o WHERE o.contact_key = s.contact_key)
        )
    """


def _echoes(skew: str, portable: bool) -> str:
    """Rule 1: each record against segsync's latest acknowledged push to its source before it
    arrived (DuckDB's ASOF JOIN; elsewhere the latest match by row_number())."""
    if not portable:
        return f"""
            SELECT l.id FROM l ASOF JOIN pushes p
              ON p.destination = l.source AND p.contact_key = l.contact_key
             AND l.ingested_at >= p.changed_at
            WHERE p.mailable = (l.status IN ({literal_list(LEDGER_MAILABLE)}))
              AND l.t <= p.changed_at + {skew}"""
    return f"""
            SELECT id FROM (
                SELECT l.id, l.status, l.t, p.mailable, p.changed_at,
                       row_number() OVER (PARTITION BY l.id ORDER BY p.changed_at DESC) AS latest
                FROM l JOIN pushes p
                  ON p.destination = l.source AND p.contact_key = l.contact_key
                 AND l.ingested_at >= p.changed_at
            ) AS matched
            WHERE latest = 1 AND mailable = (status IN ({literal_list(LEDGER_MAILABLE)}))
              AND t <= changed_at + {skew}"""


def _final(policy: ConsentPolicy, channel: str, only: str) -> str:
    return f"""
        , suppressed AS (
            SELECT contact_key, id, reason FROM suppressions
            WHERE contact_key IS NOT NULL AND removed_at IS NULL AND channel IN ({literal(channel)}, 'all'){only}
            QUALIFY row_number() OVER (PARTITION BY contact_key ORDER BY created_at DESC, id DESC) = 1
        )
        SELECT coalesce(x.contact_key, d.contact_key) AS contact_key,
               CASE WHEN x.id IS NOT NULL THEN {_case('x.reason', SUPPRESSION_STATUS, "'unsubscribed'")}
                    ELSE {_case('d.status', DESTINATION_STATUS)} END AS status,
               CASE WHEN x.id IS NULL THEN d.id END AS ledger_id,
               CASE WHEN x.id IS NULL THEN d.method END AS method,
               x.id AS suppression_id,
               {literal(policy.name)} AS policy
        FROM decided d FULL OUTER JOIN suppressed x ON x.contact_key = d.contact_key
    """


def combined_status_sql(
    policy: ConsentPolicy,
    countries: Mapping[str, ConsentPolicy],
    *,
    as_of: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    channel: str = "email",
    purpose: str = "marketing",
    portable: bool = False,
    keys: str | None = None,
) -> str:
    """``policy`` for everyone, plus each contact's country policy: the more restrictive wins.

    A country's policy is a legal floor for its residents and the connection's (or project's)
    policy the business's own rule; both must allow a contact. ``keys`` (SQL selecting
    ``contact_key``): only those people's rows.
    """
    def one(p: ConsentPolicy) -> str:
        return effective_status_sql(p, channel=channel, purpose=purpose, as_of=as_of,
                                    clock_skew=clock_skew, portable=portable, keys=keys)
    only = f" AND c.contact_key IN ({keys})" if keys is not None else ""

    base = one(policy)
    if not countries:
        return base
    by_policy: dict[str, tuple[ConsentPolicy, list[str]]] = defaultdict(lambda: (policy, []))
    for code, p in sorted(countries.items()):
        by_policy[p.name] = (p, [*by_policy[p.name][1], code])
    parts = [
        f"SELECT * FROM base",
        # Contacts of those countries without a row under the base policy: "none" there too.
        f"SELECT c.contact_key, 'none', NULL, NULL, NULL, {literal(policy.name)} FROM contacts c "
        f"WHERE c.country IN ({literal_list(sorted(countries))}){only} AND NOT EXISTS "
        f"(SELECT 1 FROM base b WHERE b.contact_key = c.contact_key)",
    ]
    for name, (p, codes) in sorted(by_policy.items()):
        parts.append(
            f"SELECT c.contact_key, coalesce(p.status, 'none'), p.ledger_id, p.method, p.suppression_id, "
            f"{literal(name)} FROM contacts c LEFT JOIN ({one(p)}) p ON p.contact_key = c.contact_key "
            f"WHERE c.country IN ({literal_list(sorted(codes))}){only}"
        )
    rank = _case("status", RESTRICTIVENESS, "0")
    return f"""
        WITH base AS ({base})
        SELECT contact_key, status, ledger_id, method, suppression_id, policy FROM (
            {' UNION ALL '.join(parts)}
        )
        QUALIFY row_number() OVER (PARTITION BY contact_key ORDER BY {rank} DESC, policy) = 1
    """


class Decision(NamedTuple):
    """A contact's effective status for one destination and what decided it."""

    status: str
    ledger_id: int | None
    suppression_id: int | None
    policy: str | None


NO_DECISION = Decision("none", None, None, None)  # no counted record and no suppression


class PolicyInputs(NamedTuple):
    """What one destination's effective consent is derived from (besides the store's rows)."""

    policy: ConsentPolicy
    countries: Mapping[str, ConsentPolicy]
    clock_skew: timedelta

    def fingerprint(self) -> str:
        """A digest of the derivation, independent of ``as_of`` (the SQL compiled at a fixed
        instant: a change to the policies or to the rules' implementation changes it)."""
        sql = combined_status_sql(self.policy, self.countries, as_of=_FINGERPRINT_AS_OF,
                                  clock_skew=self.clock_skew)
        return hashlib.sha256(sql.encode()).hexdigest()

    def moves_sql(self, since: datetime, until: datetime) -> str:
        """SQL selecting the ``contact_key`` of everyone whose status may differ between
        ``as_of = since`` and ``as_of = until`` with no row added (implied consent expiring)."""
        policies = {p.name: p for p in (self.policy, *self.countries.values())}
        return " UNION ALL ".join(consent_moves_sql(p, since=since, until=until)
                                  for _, p in sorted(policies.items()))


_FINGERPRINT_AS_OF = datetime(2200, 1, 1, tzinfo=timezone.utc)


class EffectiveConsent(OwnsTempTables):
    """Effective email/marketing consent of every contact under each destination's policy,
    built once per run (:meth:`build`) and handed to the diff, the gate and the acknowledgement.

    It owns its temp tables (one per distinct policy, uniquely named so two can coexist);
    other stages read them only through :meth:`status_sql` and :meth:`decisions`. After
    :meth:`close` every read raises.

    Built ``lazy``, nobody's consent is derived up front: each read derives it for the people it
    asks about (and keeps it for the rest of the run), so a run that plans changes for a few
    people derives consent for those few (``status_sql`` without ``keys`` derives everyone's).
    """

    _numbers = itertools.count(1)

    def __init__(self, con: duckdb.DuckDBPyConnection, tables: dict[str, str], run_id: int | None,
                 derive: Mapping[str, Callable[[str | None], str]] | None = None,
                 inputs: Mapping[str, PolicyInputs] | None = None) -> None:
        self._con = con
        self._tables = tables  # destination → its policy's table
        self.run_id = run_id
        # destination → what its consent was derived from (None: not known, e.g. rows given).
        self.inputs = dict(inputs or {})
        self._open = True
        # Lazy: table → SQL deriving its rows (for the people ``keys`` selects; None: everyone).
        self._derive = dict(derive or {})
        self._covered = {table: f"{table}_covered" for table in self._derive}

    @classmethod
    def build(
        cls,
        con: duckdb.DuckDBPyConnection,
        policies: Mapping[str, ConsentPolicy],
        countries: Mapping[str, ConsentPolicy],
        *,
        as_of: datetime,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        run_id: int | None = None,
        lazy: bool = False,
    ) -> EffectiveConsent:
        """Derive consent for each destination of ``policies`` (destination → its policy), with
        each contact's country policy in ``countries`` (the more restrictive wins). Destinations
        sharing a policy share one table. ``lazy``: derive it as it is read (see the class)."""
        number = next(cls._numbers)
        by_policy: dict[str, str] = {}
        tables: dict[str, str] = {}
        derive: dict[str, Callable[[str | None], str]] = {}
        inputs = {d: PolicyInputs(p, countries, clock_skew) for d, p in policies.items()}
        for destination, policy in policies.items():
            if policy.name not in by_policy:
                table = f"_effective_consent_{number}_{len(by_policy)}"

                def sql(keys: str | None, policy: ConsentPolicy = policy) -> str:
                    return combined_status_sql(policy, countries, as_of=as_of, clock_skew=clock_skew, keys=keys)

                if lazy:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} (contact_key VARCHAR, status VARCHAR, "
                                "ledger_id BIGINT, method VARCHAR, suppression_id BIGINT, policy VARCHAR)")
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_covered (contact_key VARCHAR)")
                    derive[table] = sql
                else:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql(None)}")
                by_policy[policy.name] = table
            tables[destination] = by_policy[policy.name]
        return cls(con, tables, run_id, derive, inputs)

    @classmethod
    def from_rows(
        cls,
        con: duckdb.DuckDBPyConnection,
        decided: Mapping[str, tuple[str, Sequence[Sequence[object]]]],
        run_id: int | None = None,
        inputs: Mapping[str, PolicyInputs] | None = None,
    ) -> EffectiveConsent:
        """Consent derived elsewhere (an external engine, docs/scale.md): destination →
        (policy name, rows of :func:`combined_status_sql`). Destinations sharing a policy
        share one table. ``inputs``: what each destination's rows were derived from."""
        number = next(cls._numbers)
        by_policy: dict[str, str] = {}
        tables: dict[str, str] = {}
        for destination, (policy, rows) in decided.items():
            if policy not in by_policy:
                table = f"_effective_consent_{number}_{len(by_policy)}"
                columns = list(zip(*rows)) if rows else [[]] * 6
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT unnest($k::VARCHAR[]) AS contact_key, "
                    "unnest($s::VARCHAR[]) AS status, unnest($l::BIGINT[]) AS ledger_id, "
                    "unnest($m::VARCHAR[]) AS method, unnest($x::BIGINT[]) AS suppression_id, "
                    "unnest($p::VARCHAR[]) AS policy",
                    dict(zip("kslmxp", (list(c) for c in columns))))
                by_policy[policy] = table
            tables[destination] = by_policy[policy]
        return cls(con, tables, run_id, inputs=inputs)

    def _table(self, destination: str) -> str:
        if not self._open:
            raise RuntimeError(f"the effective consent of run {self.run_id} is closed; the run has ended")
        if destination not in self._tables:
            raise KeyError(f"no effective consent was built for destination {destination!r}")
        return self._tables[destination]

    def status_sql(self, destination: str, keys: str | None = None) -> str:
        """SQL selecting ``(contact_key, status, ledger_id, method, suppression_id, policy)`` for
        ``destination``: one row per contact with a decision. ``keys`` (SQL selecting
        ``contact_key``): at least those people's rows (others may be there too)."""
        table = self._table(destination)
        self._derive_for(table, keys)
        return f"SELECT contact_key, status, ledger_id, method, suppression_id, policy FROM {table}"

    def decisions(self, destination: str, keys: Sequence[str]) -> dict[str, Decision]:
        """The decision for each of ``keys`` that has one (absent: :data:`NO_DECISION`)."""
        table = self._table(destination)
        if table in self._derive:
            self._con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_asked AS "
                              "SELECT unnest(?::VARCHAR[]) AS contact_key", [list(keys)])
            self._derive_for(table, f"SELECT contact_key FROM {table}_asked")
            self._con.execute(f"DROP TABLE IF EXISTS {table}_asked")
        rows = self._con.execute(
            f"SELECT contact_key, status, ledger_id, suppression_id, policy FROM {table} "
            "WHERE contact_key IN (SELECT unnest(?::VARCHAR[]))",
            [list(keys)],
        ).fetchall()
        return {r[0]: Decision(*r[1:]) for r in rows}

    def _derive_for(self, table: str, keys: str | None) -> None:
        """Lazy: derive the rows of the people ``keys`` selects (None: everyone) not derived yet."""
        derive = self._derive.get(table)
        if derive is None:
            return  # derived in full already
        covered = self._covered[table]
        if keys is None:
            self._con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {derive(None)}")
            self._con.execute(f"DROP TABLE IF EXISTS {covered}")
            del self._derive[table], self._covered[table]
            return
        self._con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table}_new AS SELECT DISTINCT contact_key FROM ({keys}) k "
            f"WHERE contact_key IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {covered} c WHERE c.contact_key = k.contact_key)")
        self._con.execute(f"INSERT INTO {covered} SELECT contact_key FROM {table}_new")
        self._con.execute(f"INSERT INTO {table} {derive(f'SELECT contact_key FROM {table}_new')}")
        self._con.execute(f"DROP TABLE {table}_new")

    def _owned_tables(self) -> set[str]:
        return set(self._tables.values()) | set(self._covered.values())

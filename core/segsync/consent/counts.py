"""How many people stand at each email consent status, per system: aggregates only.

Three views, each a count of contacts per destination status (``subscribed``, ``pending``,
``unsubscribed``, ``cleaned``, ``complained``, ``none``):

* ``reported``: per system that sent consent records, the latest email/marketing record it sent
  about each person (ledger statuses read as destination statuses: ``opted_in`` → subscribed,
  ``bounced`` → cleaned, …). What that system last said, echoes of segsync's own pushes included.
* ``holds``: per destination, the status it acknowledged from segsync (``acknowledged``).
* ``effective``: every contact in the store under the project's policy and the country
  policies (:func:`segsync.consent.rules.combined_status_sql`); ``none`` for a contact without
  a counted record. What segsync would send a destination that uses the project's policy.

With an external engine (docs/scale.md) ``reported`` and ``effective`` are counted there, over
its contacts and consent ledger (segsync's suppressions and status audit copied there first, as
a sync does); ``holds`` is segsync's own state, in the embedded store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from segsync.config import ConsentSettings
from segsync.consent.rules import DESTINATION_STATUS, combined_status_sql
from segsync.engines.base import source_rows
from segsync.store.sql import literal

if TYPE_CHECKING:
    from segsync.engines import Engine

# Columns in the order a reader scans them: mailable first, then ever more restrictive.
STATUS_ORDER = ("subscribed", "pending", "none", "unsubscribed", "cleaned", "complained")
BASES = ("reported", "holds", "effective")


@dataclass(frozen=True)
class ConsentCount:
    """``contacts`` people at ``status`` in ``system``'s view ``basis`` (see the module)."""

    system: str
    basis: str
    status: str
    contacts: int


def _status_case(column: str) -> str:
    cases = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in DESTINATION_STATUS.items())
    return f"CASE {column} {cases} ELSE {column} END"


def status_counts(
    con: duckdb.DuckDBPyConnection, settings: ConsentSettings, as_of: datetime | None = None,
    engine: Engine | None = None,
) -> list[ConsentCount]:
    """Every non-zero count, sorted by basis (:data:`BASES`), system, then :data:`STATUS_ORDER`;
    ``effective`` as of ``as_of`` (default: now); ``engine``: the project's external engine."""
    from segsync.engines.transfer import copy_state

    source = con if engine is None else engine
    if engine is not None:
        copy_state(con, engine)  # what the consent rule reads besides the ledger
    reported = source_rows(source, f"""
        SELECT source, {_status_case('status')} AS status, count(*)
        FROM (
            SELECT source, contact_key, status FROM consent_ledger
            WHERE channel = 'email' AND purpose = 'marketing'
            QUALIFY row_number() OVER (PARTITION BY source, contact_key
                                       ORDER BY recorded_at DESC, id DESC) = 1
        ) AS latest
        GROUP BY 1, 2
        """)
    holds = con.execute("SELECT destination, status, count(*) FROM acknowledged GROUP BY ALL").fetchall()
    status = combined_status_sql(settings.policy, settings.countries, as_of=as_of,
                                 clock_skew=settings.clock_skew,
                                 portable=engine is not None and engine.dialect != "duckdb")
    effective = source_rows(source, f"""
        SELECT coalesce(e.status, 'none'), count(*)
        FROM contacts c LEFT JOIN ({status}) e ON e.contact_key = c.contact_key
        GROUP BY 1
        """)
    rows = [ConsentCount(s, "reported", st, int(n)) for s, st, n in reported]
    rows += [ConsentCount(d, "holds", st, n) for d, st, n in holds]
    rows += [ConsentCount(f"policy {settings.policy.name}", "effective", st, int(n)) for st, n in effective]
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    return sorted(rows, key=lambda r: (BASES.index(r.basis), r.system, rank.get(r.status, len(rank)), r.status))


__all__ = ["BASES", "STATUS_ORDER", "ConsentCount", "status_counts"]

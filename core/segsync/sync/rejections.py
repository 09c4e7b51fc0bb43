"""Remembered refusals: a destination's refusal of a desired state is not sent again on every run.

The ``rejected`` table holds each refused state (written by the acknowledgement,
:mod:`segsync.sync.ack`; the diff does not plan a refused state again). A refusal holds only
while what caused it cannot have changed: each destination's refusals live under a fingerprint of
its settings, its segment mapping and the schema it reports (``Connector.schema_version``: e.g.
Brevo's contact attributes). When the fingerprint moves (an attribute created by
`segsync check --fix` or by hand, a mapping edited), every remembered refusal of that
destination is planned again (:func:`renew_rejections`, before the diff). `segsync check --fix`
and `segsync retry-rejected` forget them outright. Refusals by the consent gate depend on
consent only (part of the state hash) and are never lifted here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import duckdb

from segsync.connector import Connector
from segsync.segments.definitions import SegmentDef

log = logging.getLogger(__name__)


class RememberedRejections:
    """One destination's remembered refusals around one push: renewed before the diff when
    the destination changed (:meth:`renew`), and the fingerprint they hold under recorded after
    the push when the first ones were remembered (:meth:`keep`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, connector: Connector, segments: Sequence[SegmentDef]) -> None:
        self._con = con
        self._connector = connector
        self._segments = segments
        self._checked = False

    def renew(self) -> int:
        """Forget refusals made before the destination changed; return how many."""
        destination = self._connector.connection
        if not remembered_rejections(self._con, destination):
            return 0
        self._checked = True
        fingerprint = fingerprint_of(self._connector, self._segments)
        return 0 if fingerprint is None else renew_rejections(self._con, destination, fingerprint)

    def keep(self) -> None:
        """Record the fingerprint of refusals remembered for the first time in this push."""
        destination = self._connector.connection
        if not self._checked and remembered_rejections(self._con, destination):
            fingerprint = fingerprint_of(self._connector, self._segments)
            if fingerprint is not None:
                record_fingerprint(self._con, destination, fingerprint)


def fingerprint_of(connector: Connector, segments: Sequence[SegmentDef]) -> str | None:
    """What ``connector``'s remembered refusals hold under; None when it cannot report its
    schema now (its refusals are then kept)."""
    name = connector.connection
    try:
        schema = connector.schema_version()
    except Exception as exc:  # e.g. the service is down: the push will say so
        log.warning("connection %r could not report its schema (%s); its remembered "
                    "rejections are kept", name, type(exc).__name__)
        return None
    mapping = [
        (s.name, s.destinations[name].model_dump() if name in s.destinations else None)
        for s in segments
        if not s.destinations or name in s.destinations
    ]
    return destination_fingerprint(connector.settings.model_dump(mode="json"), mapping, schema)



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

"""The core's implementation of ``segsync_push``: hand the batch to the connector."""

from __future__ import annotations

from segsync.hookspecs import hookimpl


@hookimpl(trylast=True)
def segsync_push(connector, changes, run_id):
    return connector.write(changes)

"""One throwaway PostgreSQL cluster for the plugin's tests, started and stopped here.

When it cannot start (no server binaries, initdb refusing, no free port) every test that needs
it FAILS with the reason: a silent skip would let CI pass without ever running PostgreSQL.
"""

from __future__ import annotations

import pytest

from segsync.engines import EngineUnavailable
from segsync_postgres.cluster import LocalCluster


@pytest.fixture(scope="session")
def cluster():
    try:
        local = LocalCluster()
        local.start()
    except EngineUnavailable as exc:
        pytest.fail(f"the PostgreSQL test cluster cannot start: {exc}", pytrace=False)
    yield local
    local.stop()

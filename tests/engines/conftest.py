"""Engines for the equivalence suite: each is loaded from one embedded store and compared with
DuckDB's results.

``ENGINES`` maps an engine's name to a factory ``(source store, tmp folder) -> context manager
yielding an open Engine holding the store's rows``; another engine joins the suite by adding an
entry (and its session fixture). When an engine cannot start, its tests fail with the reason.
"""

from __future__ import annotations

import itertools
import os
from contextlib import contextmanager

import pytest

from segsync.engines import EngineUnavailable
from segsync.engines.duckdb import DuckDBEngine
from segsync.engines.transfer import transfer

_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster():
    from segsync_postgres.cluster import LocalCluster

    try:
        cluster = LocalCluster()
        cluster.start()
    except EngineUnavailable as exc:
        pytest.fail(f"the PostgreSQL test cluster cannot start: {exc}", pytrace=False)
    yield cluster
    cluster.stop()


@contextmanager
def _duckdb(request, store, tmp_path):
    # The reference: the embedded store itself.
    with DuckDBEngine(DuckDBEngine.Settings(), tmp_path, store=store) as engine:
        yield engine


@contextmanager
def _postgres(request, store, tmp_path):
    from segsync_postgres.engine import PostgresEngine, PostgresSettings

    cluster = request.getfixturevalue("postgres_cluster")
    schema = f"eq{os.getpid()}_{next(_schemas)}"
    with PostgresEngine(PostgresSettings(url=cluster.url, schema_name=schema), tmp_path) as engine:
        engine.create_tables()
        transfer(store.con, engine)
        try:
            yield engine
        finally:
            engine.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="session")
def spark_session():
    from segsync_spark.testing import spark_for_tests

    yield from spark_for_tests()  # fails the Spark tests with the reason when it cannot start


@pytest.fixture
def spark_engine(spark_session, tmp_path):
    """A Spark engine keeping its tables under ``tmp_path``, created as a sync creates them."""
    from segsync_spark.engine import SparkEngine, SparkSettings
    from segsync_spark.testing import TEST_CONF

    with SparkEngine(SparkSettings(conf=TEST_CONF), tmp_path) as engine:
        engine.create_tables()
        yield engine


@contextmanager
def _spark(request, store, tmp_path):
    from segsync_spark.engine import SparkEngine, SparkSettings

    request.getfixturevalue("spark_session")  # one local[2] session for the whole test run
    with SparkEngine(SparkSettings(location=str(tmp_path / "spark-tables")), tmp_path) as engine:
        engine.create_tables()
        transfer(store.con, engine)
        yield engine


ENGINES = {"duckdb": _duckdb, "postgres": _postgres, "spark": _spark}

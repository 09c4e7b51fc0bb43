"""Fixtures of the Spark engine's tests: one local Spark session for the whole test run.

Spark allows one session per process and its JVM takes seconds to start, so the session is
started once (``local[2]``, few shuffle partitions) and stopped when the run ends. When it
cannot start (no Java 17, pyspark missing) every test that needs it fails with the reason:
nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from segsync_spark.engine import SparkEngine, SparkSettings
from segsync_spark.session import SparkUnavailable, start_session, stop_session

# Few partitions: the test data is small, and each partition is a task to schedule.
TEST_CONF = {"spark.sql.shuffle.partitions": "2"}


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    try:
        session = start_session("local[2]", app_name="segsync-tests", conf=TEST_CONF)
    except SparkUnavailable as e:
        pytest.fail(f"the Spark engine's tests need Spark, which did not start: {e}", pytrace=False)
    yield session
    stop_session()


@pytest.fixture
def engine(spark, tmp_path: Path) -> Iterator[SparkEngine]:
    """A Spark engine keeping its tables under ``tmp_path`` (the session stays up after it)."""
    spark_engine = SparkEngine(SparkSettings(conf=TEST_CONF), tmp_path)
    with spark_engine:
        yield spark_engine

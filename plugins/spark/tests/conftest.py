"""Fixtures of the Spark engine's tests: one local Spark session for the whole test run
(:func:`segsync_spark.testing.spark_for_tests`; it fails the tests with the reason when Spark
cannot start), and an engine per test keeping its tables under the test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from segsync_spark.engine import SparkEngine, SparkSettings
from segsync_spark.testing import TEST_CONF, spark_for_tests

spark = pytest.fixture(scope="session")(spark_for_tests)


@pytest.fixture
def engine(spark, tmp_path: Path) -> Iterator[SparkEngine]:
    """A Spark engine keeping its tables under ``tmp_path`` (the session stays up after it)."""
    spark_engine = SparkEngine(SparkSettings(conf=TEST_CONF), tmp_path)
    with spark_engine:
        spark_engine.create_tables()  # as a sync does before its first write
        yield spark_engine

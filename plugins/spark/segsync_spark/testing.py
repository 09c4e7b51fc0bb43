"""Spark for tests: one ``local[2]`` session for a whole test run, shared by every test (and by
engines opened in it), stopped at the end. When Spark cannot start, the tests that need it fail
with the reason: nothing is skipped silently.

In a ``conftest.py``::

    spark_session = pytest.fixture(scope="session")(segsync_spark.testing.spark_for_tests)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from segsync_spark.session import SparkUnavailable, start_session, stop_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Few shuffle partitions: test data is small, and each partition is a task to schedule.
TEST_CONF = {"spark.sql.shuffle.partitions": "2"}


def spark_for_tests() -> Iterator[SparkSession]:
    try:
        session = start_session("local[2]", app_name="segsync-tests", conf=TEST_CONF)
    except SparkUnavailable as e:
        pytest.fail(f"the Spark engine's tests need Spark, which did not start: {e}", pytrace=False)
    yield session
    stop_session()

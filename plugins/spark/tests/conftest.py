"""The Spark plugin's own tests: one local Spark session for the whole test run
(:func:`segsync_spark.testing.spark_for_tests` fails the tests with the reason when Spark cannot
start). The engine's tests against the embedded store are in tests/engines/ (they read the
core's internals, which a distribution's tests may not)."""

from __future__ import annotations

import pytest

from segsync_spark.testing import spark_for_tests

spark = pytest.fixture(scope="session")(spark_for_tests)

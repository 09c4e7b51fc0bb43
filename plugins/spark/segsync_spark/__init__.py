"""segsync on Apache Spark: segments, effective consent and the membership diff in Spark SQL
(``[store] engine = "spark"``, docs/scale.md#spark).

The plugin host imports this module at every start (``segsync --help`` included); pyspark and
its Java gateway are imported and started only when the Spark engine is opened.
"""

from segsync import hookimpl, lazy_exports

__all__ = ["SparkEngine", "SparkSettings", "SparkUnavailable", "start_session", "stop_session"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "SparkEngine": "segsync_spark.engine",
    "SparkSettings": "segsync_spark.engine",
    "SparkUnavailable": "segsync_spark.session",
    "start_session": "segsync_spark.session",
    "stop_session": "segsync_spark.session",
})


@hookimpl
def segsync_register_engines(register):
    from segsync_spark.engine import SparkEngine

    register(SparkEngine)

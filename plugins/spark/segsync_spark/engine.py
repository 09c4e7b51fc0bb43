"""The Spark engine: segments, effective consent and the membership diff in Spark SQL.

Tables (docs/scale.md#spark):

* segsync's own tables (the canonical ``contacts``, ``events``, ``consent_ledger`` unless
  mapped, ``suppressions``, ``status_changes``, ``segment_snapshots``) are Parquet folders
  under ``location`` (a local folder, ``hdfs://…``, ``s3a://…``), registered in every session
  as external tables, so they outlive the session whether or not the cluster has a metastore.
  A table is replaced (upsert, overwrite) by writing a new folder beside it and renaming it
  into place; :meth:`SparkEngine.open` finishes or discards a replacement a killed process left;
* ``segment_membership`` (the latest evaluation) is a cached temporary view of the engine's
  own Spark session, as PostgreSQL's is a temporary table of its connection: two runs or
  commands never see each other's members;
* ``[store.tables]`` maps ``contacts``, ``events`` or ``consent_ledger`` onto the user's data:
  ``parquet:PATH``, ``orc:PATH`` or a catalog table ``db.name`` (Delta is not supported:
  docs/scale.md#spark). Each is registered as a temporary view of the engine's session under
  the canonical name, so the SQL segsync renders reads the canonical names whatever the mapping.

Every statement is SQL segsync built and rendered for Spark (:mod:`segsync.segments.dialects`);
writes are DataFrame writes of whole batches, never a statement per row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator
from sqlglot import exp

from segsync.engines import CANONICAL_TABLES, RESULT_TABLES, Engine, EngineSettings, EngineUnavailable

from .session import LOCAL, SparkUnavailable, start_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The canonical layout's types (PostgreSQL spelling) in Spark SQL.
SPARK_TYPES = {"text": "STRING", "bigint": "BIGINT", "integer": "INT", "timestamptz": "TIMESTAMP",
               "jsonb": "STRING", "double precision": "DOUBLE"}
# Formats a mapped table may be read in: "FORMAT:PATH".
FORMATS = ("parquet", "orc")
# Why "delta:" is refused: its jars come from Maven at run time (the delta-spark wheel carries
# none), which CI cannot reach, so segsync never ran against Delta tables.
DELTA_UNSUPPORTED = ("Delta tables are not supported (segsync's Spark engine is untested with "
                     "Delta Lake); map a Parquet or ORC copy, or a catalog table or view your "
                     "cluster reads (docs/scale.md#spark)")
# The latest evaluation's members: a temporary view of each engine's session, never a file.
MEMBERSHIPS = "segment_membership"
# Beside a table's folder while it is being replaced (see SparkEngine._replace).
NEW, OLD = ".new", ".old"
# Rows per DataFrame write of append().
BATCH = 100_000
# Every table segsync reads or writes, with its columns.
ALL_TABLES: dict[str, dict[str, str]] = {**CANONICAL_TABLES, **RESULT_TABLES}


class SparkSettings(EngineSettings):
    """``[store]`` of ``engine = "spark"``.

    ``master``: ``local[N]`` (Spark inside segsync's process; needs Java 17+), or a cluster's
    master URL (``spark://host:7077``, ``yarn``, ``k8s://…``). ``location``: where segsync's
    own tables live (relative to the project folder, or a URI the cluster can write), registered
    in the catalog database ``database`` (created when missing). ``conf``:
    further Spark settings (executor memory, a metastore, …); credentials for object stores
    come from the environment or the cluster's own configuration, never from segsync.toml.
    """

    master: str = Field(default=LOCAL, min_length=1)
    location: str = Field(default="spark-tables", min_length=1)
    database: str = Field(default="segsync", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _known_sources(cls, tables: dict[str, str]) -> dict[str, str]:
        for table, source in tables.items():
            fmt, sep, path = source.partition(":")
            if sep and fmt.lower() == "delta":
                raise ValueError(f"{table}: {source!r}: {DELTA_UNSUPPORTED}")
            if sep and "/" not in fmt and fmt not in FORMATS:
                raise ValueError(f"{table}: {source!r} names format {fmt!r}; use one of "
                                 f"{', '.join(f + ':PATH' for f in FORMATS)} or a catalog table "
                                 "db.name")
            if sep and fmt in FORMATS and not path:
                raise ValueError(f"{table}: {source!r} has no path after {fmt}:")
        return tables

    @field_validator("conf")
    @classmethod
    def _no_secrets(cls, conf: dict[str, str]) -> dict[str, str]:
        secret = [k for k in conf if any(w in k.lower() for w in ("secret", "password", "token",
                                                                  "access.key", "credential"))]
        if secret:
            raise ValueError(f"{', '.join(sorted(secret))}: credentials do not belong in "
                             "segsync.toml; give them to Spark through the environment or "
                             "spark-defaults.conf (docs/scale.md#spark)")
        return conf


class SparkEngine(Engine):
    name = "spark"
    dialect = "spark"
    description = "Apache Spark (local[N] or a cluster): Spark SQL over Parquet, Delta or catalog tables"
    Settings = SparkSettings

    def __init__(self, settings: EngineSettings, project_dir: Path) -> None:
        super().__init__(settings, project_dir)
        self._spark: SparkSession | None = None
        self._started = False
        self._unreadable: dict[str, str] = {}  # mapped table -> why it cannot be read

    @property
    def spark_settings(self) -> SparkSettings:
        assert isinstance(self.settings, SparkSettings)
        return self.settings

    def renamed_tables(self) -> Mapping[str, str]:
        # Mapped tables are temporary views under the canonical names: no renaming needed.
        return {}

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            raise RuntimeError("open() the Spark engine first")
        return self._spark

    def location(self, table: str) -> str:
        """Where segsync's own ``table`` is kept (a folder or URI)."""
        base = self.spark_settings.location
        if "://" not in base and not Path(base).is_absolute():
            base = str(self.project_dir / base)
        return f"{base.rstrip('/')}/{table}"

    # -- connection ------------------------------------------------------------------------

    def open(self) -> None:
        from pyspark.sql import SparkSession

        settings = self.spark_settings
        self._started = SparkSession.getActiveSession() is None
        try:
            # A session of its own on the process's Spark context: its temporary views (the
            # memberships, the mapped tables) are seen by no other engine or command.
            self._spark = start_session(settings.master, conf=settings.conf).newSession()
        except SparkUnavailable as e:
            raise EngineUnavailable(f"spark: {e}") from None
        self._unreadable = {}
        for table, source in settings.tables.items():
            try:
                self._read_source(source).createOrReplaceTempView(table)
            except Exception as e:  # AnalysisException and friends: reported by check()
                self._unreadable[table] = _first_line(e)
        self._register()

    def close(self) -> None:
        if self._spark is not None:
            for table in [*self.spark_settings.tables, MEMBERSHIPS]:
                self._spark.catalog.dropTempView(table)  # also uncaches the memberships
            if self._started:
                self._spark.stop()
        self._spark = None

    def _read_source(self, source: str) -> DataFrame:
        fmt, sep, path = source.partition(":")
        if sep and fmt in FORMATS:
            return self.spark.read.format(fmt).load(path)
        return self.spark.table(source)

    # -- statements ------------------------------------------------------------------------

    def execute(self, sql: str) -> None:
        self.spark.sql(sql).collect()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(_aware(v) for v in row) for row in self.spark.sql(sql).collect()]

    def table_columns(self) -> dict[str, set[str]]:
        # Mapped tables under their source's name, as Engine.check() expects.
        sources = self.spark_settings.tables
        found: dict[str, set[str]] = {}
        for table in ALL_TABLES:
            if table not in self._unreadable and self.spark.catalog.tableExists(table):
                found[sources.get(table, table)] = set(self.spark.table(table).columns)
        return found

    def check(self) -> list[str]:
        sources = self.spark_settings.tables
        unreadable = [f"table {t} (mapped to {sources[t]}) " for t in sorted(self._unreadable)]
        return [f"{line}cannot be read: {self._unreadable[t]}"
                for t, line in zip(sorted(self._unreadable), unreadable)] + [
            p for p in super().check() if not p.startswith(tuple(unreadable))]

    def create_tables(self) -> None:
        """Create the folders of segsync's tables that have none yet, and register them."""
        for table in self._own_tables():
            self._filesystem_path(table, create=True)
        self._register()

    def _own_tables(self) -> list[str]:
        return [t for t in ALL_TABLES if t not in self.spark_settings.tables and t != MEMBERSHIPS]

    def _register(self) -> None:
        """(Re-)register each of segsync's tables whose folder exists, in segsync's database.

        External tables: dropping a registration (this session's earlier one, or one pointing
        at another location) keeps the files. A table whose folder does not exist yet stays
        unregistered (``check`` reports it; the first sync creates it)."""
        database = self.spark_settings.database
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        self.execute(f"USE `{database}`")
        for table, columns in ALL_TABLES.items():
            self.execute(f"DROP TABLE IF EXISTS `{database}`.`{table}`")
            if table not in self._own_tables():
                continue  # a mapped table is read from the user's data alone; memberships: a view
            self._recover(table)
            if not self._filesystem_path(table):
                continue
            cols = ", ".join(f"`{c}` {SPARK_TYPES[t]}" for c, t in columns.items())
            location = exp.Literal.string(self.location(table)).sql(dialect="spark")
            self.execute(f"CREATE TABLE `{database}`.`{table}` ({cols}) USING parquet LOCATION {location}")

    def _filesystem_path(self, table: str, *, create: bool = False) -> bool:
        """Whether ``table``'s folder exists (made first with ``create``)."""
        fs, path = self._hadoop(self.location(table))
        if create and not fs.exists(path):
            fs.mkdirs(path)
        return bool(fs.exists(path))

    def _hadoop(self, location: str) -> tuple[Any, Any]:
        """Hadoop's ``(FileSystem, Path)`` of ``location``: Spark's own filesystem layer, so
        hdfs://, s3a:// and local folders alike."""
        jvm = self.spark.sparkContext._jvm  # noqa: SLF001 - Hadoop's FileSystem has no Python API
        path = jvm.org.apache.hadoop.fs.Path(location)
        return path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration()), path  # noqa: SLF001

    def _replace(self, table: str, frame: DataFrame) -> None:
        """Make ``frame`` (the table's columns) the whole of segsync's ``table``, atomically for
        readers that open it afterwards: the rows are written to a new folder beside the
        table's, which then takes the table's place by two renames (the old folder aside, the
        new one in), and the old folder is deleted. A process killed on the way leaves one of
        three states, which :meth:`_recover` resolves on the next open: a partial new folder
        (discarded: the table is intact), the old folder aside and the complete new one
        (renamed in), or the old folder aside alone (deleted)."""
        current = self.location(table)
        fs, target = self._hadoop(current)
        _, new = self._hadoop(current + NEW)
        _, old = self._hadoop(current + OLD)
        fs.delete(new, True)
        fs.delete(old, True)
        frame.write.mode("overwrite").parquet(current + NEW)
        if fs.exists(target) and not fs.rename(target, old):
            raise OSError(f"spark: cannot move {current} aside to replace table {table}")
        if not fs.rename(new, target):
            raise OSError(f"spark: cannot rename {current + NEW} to {current} (table {table}; "
                          "the next start finishes the replacement)")
        fs.delete(old, True)
        self.spark.catalog.refreshTable(table)

    def _recover(self, table: str) -> None:
        """Finish or discard a replacement of ``table`` that a killed process left
        (:meth:`_replace`)."""
        current = self.location(table)
        fs, target = self._hadoop(current)
        _, new = self._hadoop(current + NEW)
        _, old = self._hadoop(current + OLD)
        if fs.exists(target):
            fs.delete(new, True)  # a write that never reached its swap
        elif fs.exists(new):
            fs.rename(new, target)  # killed between the renames: the new folder is complete
        fs.delete(old, True)

    # -- bulk writes -----------------------------------------------------------------------

    def _writable(self, table: str, columns: Sequence[str]) -> dict[str, str]:
        """The column types of segsync's ``table``; refuses a mapped table or unknown columns."""
        if table in self.spark_settings.tables:
            raise PermissionError(f"table {table} is mapped to {self.spark_settings.tables[table]}: "
                                  "segsync reads it and never writes it")
        types = ALL_TABLES[table]
        unknown = [c for c in columns if c not in types]
        if unknown:
            raise ValueError(f"table {table} has no column {', '.join(unknown)}")
        return types

    def _frame(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> DataFrame:
        types = self._writable(table, columns)
        schema = ", ".join(f"`{c}` {SPARK_TYPES[types[c]]}" for c in columns)
        frame = self.spark.createDataFrame([tuple(r) for r in rows], schema=schema)
        return _in_table_order(frame, types)

    def append(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        # One DataFrame write per batch of rows: the rows cross from Python to the JVM once,
        # and the caller's iterator is never held in memory whole.
        self._writable(table, columns)
        count, rows = 0, iter(rows)
        while batch := list(itertools.islice(rows, BATCH)):
            self._frame(table, columns, batch).write.insertInto(table)
            count += len(batch)
        return count

    def upsert(self, table: str, key: Sequence[str], columns: Sequence[str],
               rows: Iterable[Sequence[Any]]) -> int:
        new = self._frame(table, columns, rows).localCheckpoint()
        count = new.count()
        if not count:
            return 0
        kept = self.spark.table(table).join(new.select(*key), list(key), "left_anti")
        self._replace(table, kept.unionByName(new))
        return count

    def delete_rows(self, table: str, column: str, value: Any) -> int:
        """Parquet folders have no DELETE: ``table`` is rewritten without the rows by the atomic
        replacement (:meth:`_replace`), which deletes the old folder. (The latest evaluation's
        members are this session's view, evaluated again by the next command: left alone.)"""
        from pyspark.sql import functions as F

        if table == MEMBERSHIPS or not self.spark.catalog.tableExists(table):
            return 0  # no folder yet: nothing written
        rows = self.spark.table(table)
        match = F.col(column).eqNullSafe(F.lit(value))
        n = rows.where(match).count()
        if n:
            # Null-safe: rows whose column is NULL (an erased person's suppression) are kept.
            self._replace(table, rows.where(~match))
        return n

    def replace_rows(self, table: str, select_sql: str | None) -> None:
        # Parquet tables have no DELETE: the table is replaced whole (no rows: an empty frame).
        types = ALL_TABLES[table]
        if select_sql is None:
            frame = self.spark.createDataFrame(
                [], ", ".join(f"`{c}` {SPARK_TYPES[t]}" for c, t in types.items()))
        else:
            frame = _in_table_order(self.spark.sql(select_sql).toDF(*types), types)
        if table == MEMBERSHIPS:
            # This session's view, computed once and cached (memory, then disk) for the sizes,
            # the snapshot, the changes and the commands that read it.
            self.spark.catalog.dropTempView(MEMBERSHIPS)
            frame.createTempView(MEMBERSHIPS)
            self.spark.catalog.cacheTable(MEMBERSHIPS)
            self.spark.table(MEMBERSHIPS).count()
            return
        self._writable(table, list(types))
        self._replace(table, frame)


def _in_table_order(frame: DataFrame, types: Mapping[str, str]) -> DataFrame:
    """``frame`` with the table's columns in its order and types (columns it lacks: NULL)."""
    from pyspark.sql import functions as F

    return frame.select(*[
        F.col(f"`{c}`").cast(SPARK_TYPES[t]).alias(c) if c in frame.columns
        else F.lit(None).cast(SPARK_TYPES[t]).alias(c)
        for c, t in types.items()
    ])


def _aware(value: Any) -> Any:
    # pyspark hands TIMESTAMP values back as naive datetimes in the Python process's local zone.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.astimezone(timezone.utc)
    return value


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

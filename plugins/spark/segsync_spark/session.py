"""Starting and stopping the Spark session segsync evaluates in.

One session per process (Spark allows no more): :func:`start_session` starts it, or returns the
running one when its master is the one asked for. Local mode (``local[N]``) needs only a Java
runtime (17 or newer) beside pyspark; a cluster needs its master URL (docs/scale.md#spark).
When Spark cannot start, :class:`SparkUnavailable` says why in one sentence: no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOCAL = "local[2]"
_LOG_CONFIG = Path(__file__).with_name("log4j2.properties")

# Settings segsync's SQL relies on, whatever the master: timestamps are instants read and shown
# in UTC (as in the embedded store), a failed cast is NULL as with TRY_CAST (ANSI mode off),
# and no web UI or console progress bar.
REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
# Local mode only: few shuffle partitions (the default, 200, is for clusters and costs seconds
# on small data), loopback only, no Hive metastore, and a scratch warehouse folder rather than
# spark-warehouse/ in the working directory.
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.adaptive.enabled": "true",
}


class SparkUnavailable(RuntimeError):
    """Spark could not start (no Java, a Java too old, pyspark missing, the master unreachable)."""


def java_problem() -> str | None:
    """Why no usable Java runtime was found, or None when one was."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    where = f"JAVA_HOME={home}" if home else "PATH"
    if not java or not Path(java).exists():
        return (f"no Java runtime found (looked in {where}); Spark needs Java 17 or newer, e.g. "
                "apt-get install openjdk-17-jre-headless")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{java} -version failed: {e}"
    first = (out.stderr or out.stdout).strip().splitlines()[:1]
    version = first[0].split('"')[1] if first and first[0].count('"') >= 2 else ""
    major = version.split(".")[0]
    if out.returncode != 0 or not major.isdigit():
        return f"{java} -version did not report a version: {' '.join(first) or out.returncode}"
    if int(major) < 17:
        return f"Java {version} at {java} is too old; Spark 3.5 on segsync needs Java 17 or newer"
    return None


def start_session(
    master: str = LOCAL, *, app_name: str = "segsync", conf: Mapping[str, str] | None = None
) -> SparkSession:
    """The Spark session on ``master`` (``local[N]``, ``spark://host:7077``, ``yarn``, …), started
    if needed; ``conf`` adds Spark settings (table locations' credentials, executor sizes).

    Raises :class:`SparkUnavailable` naming the reason when Spark cannot start.
    """
    problem = java_problem()
    if problem:
        raise SparkUnavailable(problem)
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise SparkUnavailable(f"pyspark is not installed ({e}); pip install segsync-spark") from None
    running = SparkSession.getActiveSession()
    if running is not None:
        current = running.sparkContext.master
        if current != master:
            raise SparkUnavailable(f"a Spark session on {current} is already running in this "
                                   f"process; Spark allows one, so {master} cannot start")
        return running
    local = master.startswith("local")
    settings = {**(LOCAL_CONF if local else {}), **dict(conf or {}), **REQUIRED_CONF}
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.setdefault("spark.sql.warehouse.dir",
                            tempfile.mkdtemp(prefix="segsync-spark-warehouse-"))
    quiet = f"-Dlog4j2.configurationFile={_LOG_CONFIG.as_uri()}"
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        settings[key] = f"{settings[key]} {quiet}" if key in settings else quiet
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as e:  # pyspark raises its own types, or a bare Exception from the gateway
        raise SparkUnavailable(f"Spark did not start on {master}: {_first_line(e)}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def stop_session() -> None:
    """Stop the running session, if any (its JVM exits with it)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    running = SparkSession.getActiveSession()
    if running is not None:
        running.stop()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]

"""Starting Spark: the settings segsync's SQL relies on, and a clear reason when it cannot."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from segsync_spark.session import SparkUnavailable, java_problem, start_session


def test_no_java_is_a_clear_reason_not_a_traceback(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    assert java_problem() == (
        f"no Java runtime found (looked in JAVA_HOME={tmp_path / 'no-jdk'}); Spark needs Java 17 "
        "or newer, e.g. apt-get install openjdk-17-jre-headless")
    with pytest.raises(SparkUnavailable) as raised:
        start_session()
    assert str(raised.value) == java_problem()


def _fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n", encoding="utf-8")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return home


def test_a_java_older_than_17_is_refused_by_name(monkeypatch, tmp_path: Path) -> None:
    home = _fake_java(tmp_path, 'openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert java_problem() == (f"Java 11.0.2 at {home / 'bin' / 'java'} is too old; Spark 3.5 on "
                              "segsync needs Java 17 or newer")
    home17 = _fake_java(tmp_path / "new", 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("JAVA_HOME", str(home17))
    assert java_problem() is None


def test_the_session_reads_timestamps_in_utc_and_a_bad_cast_is_null(spark) -> None:
    assert spark.sparkContext.master == "local[2]"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    row = spark.sql("SELECT CAST('x' AS DOUBLE) AS bad, "
                    "CAST(CAST('2024-06-01 02:00:00+02:00' AS TIMESTAMP) AS STRING) AS at").collect()[0]
    assert (row.bad, row.at) == (None, "2024-06-01 00:00:00")


def test_a_second_session_on_another_master_is_refused(spark) -> None:
    with pytest.raises(SparkUnavailable) as raised:
        start_session("local[1]")
    assert str(raised.value) == ("a Spark session on local[2] is already running in this process; "
                                 "Spark allows one, so local[1] cannot start")
    assert start_session("local[2]") is spark

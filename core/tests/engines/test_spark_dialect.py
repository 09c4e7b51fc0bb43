"""Spark SQL rendering (segments/dialects.py): what sqlglot's "spark" dialect alone would get
wrong. The Spark engine's own tests run these queries on Spark (plugins/spark/tests)."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlglot

from segsync.segments import SegmentDef
from segsync.segments.builtins import default_registry
from segsync.segments.dialects import render, transpile
from segsync.segments.evaluate import membership_select
from segsync.segments.query import build_query

AS_OF = datetime(2024, 6, 1, tzinfo=timezone.utc)


def test_the_membership_unnest_is_an_aliased_explode() -> None:
    query = build_query([SegmentDef(name="a", rule="opens() > 0"), SegmentDef(name="b", rule="clicks() > 0")],
                        {}, AS_OF, default_registry(), dialect="spark")
    sql = render(membership_select(query), "spark")
    assert ("SELECT contact_key, EXPLODE(ARRAY(CASE WHEN m_0 THEN 'a' END, CASE WHEN m_1 THEN 'b' END)) "
            "AS segment FROM") in sql
    # sqlglot by itself passes the alias to EXPLODE as an argument, which Spark rejects.
    assert "EXPLODE(ARRAY(CASE WHEN m_0 THEN 'a' END, CASE WHEN m_1 THEN 'b' END), segment)" in \
        membership_select(query).sql("spark")
    sqlglot.parse_one(sql, read="spark")


def test_epoch_seconds_keep_their_fraction_on_spark() -> None:
    duck = "SELECT 1717200000.0 - EPOCH(occurred_at) AS s FROM events"
    assert transpile(duck, "spark") == \
        "SELECT 1717200000.0 - (CAST(UNIX_MICROS(occurred_at) AS DOUBLE) / 1000000) AS s FROM events"
    assert sqlglot.transpile(duck, read="duckdb", write="spark")[0] == \
        "SELECT 1717200000.0 - UNIX_TIMESTAMP(occurred_at) AS s FROM events"  # whole seconds


def test_spark_gets_the_portable_consent_rule_with_intervals_and_windows() -> None:
    query = build_query([SegmentDef(name="c", rule='consentable("email")')], {}, AS_OF,
                        default_registry(), dialect="spark")
    sql = render(membership_select(query), "spark")
    assert "ASOF" not in sql and "QUALIFY" not in sql and "TO_MICROSECONDS" not in sql.upper()
    assert "ROW_NUMBER() OVER (PARTITION BY l.id ORDER BY p.changed_at DESC) AS latest" in sql
    assert "INTERVAL '300000000' MICROSECOND" in sql


def test_two_consent_features_keep_their_ctes_apart_on_spark() -> None:
    """sqlglot lifts every WITH to the top of a Spark statement: the consent rule's CTEs of
    consentable("email") and consentable("sms") would clash (Spark: "CTE definition can't have
    duplicate names") without numbering."""
    query = build_query([SegmentDef(name="e", rule='consentable("email")'),
                         SegmentDef(name="s", rule='consentable("sms")')], {}, AS_OF,
                        default_registry(), dialect="spark")
    plain = membership_select(query).sql("spark")
    assert plain.count(" pushes AS (") == 2  # the clash, as sqlglot alone renders it
    sql = render(membership_select(query), "spark")
    tree = sqlglot.parse_one(sql, read="spark")
    names = [cte.alias_or_name for cte in tree.find_all(sqlglot.exp.CTE)]
    assert len(names) == len(set(names)) == 16
    assert {"pushes_0", "pushes_1", "l_0", "l_1"} <= set(names)
    # A renamed table keeps its old name as alias for the columns qualified with it.
    assert "FROM l_0 AS l WHERE NOT l.id IN (SELECT id FROM echoes_0 AS echoes)" in sql

"""Compilation: semantic errors, injection safety, SQL rendering across dialects."""

from __future__ import annotations

import pytest
import sqlglot
from segtestkit import AS_OF, EVE, members

from segsync.segments import RuleError, SegmentDef, compile_rule, compile_sql, default_registry

REG = default_registry()


def compile_error(rule: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        compile_rule(rule, registry=REG, as_of=AS_OF)
    return info.value


@pytest.mark.parametrize(
    "rule, column, fragment",
    [
        ("opnes(30d) > 1", 1, "unknown function opnes(); did you mean 'opens'?"),
        ("spend(365d) > 1 and vistd(\"/x\")", 21, "unknown function vistd(); did you mean 'visited'?"),
        ('attr.departmnt == "HR"', 1, "unknown attribute 'departmnt'; did you mean 'department'?"),
        ("opens(30d)", 1, "expected a condition but 'opens(30d)' is a number"),
        ('attr.country', 1, "is a string; compare it"),
        ('opens(30d) > "5"', 12, "cannot compare a number with a string"),
        ("opens(30) > 1", 7, "must be a duration such as 24h, 30d or 2w"),
        ("opens(30d, 2d) > 1", 1, "opens() takes 0 to 1 arguments: opens([window]); got 2"),
        ("count() > 1", 1, "count() takes 1 to 2 arguments"),
        ("visited(/x)", 9, "unexpected character '/'"),
        ("visited(url) > 1", 9, "must be a string in quotes"),
        ("email.opened > 1", 1, "unknown name 'email.opened'"),
        ("opens(30d) > 1d", 14, "a duration (1d) is only meaningful"),
        ("(opens() > 1) > true", 15, "conditions can only be compared with == or !="),
        ('days_since(attr.country) > 1', 1, "attr.country is not a date"),
        ('attr.created_at > "yesterday"', 19, "expected an ISO date"),
        ('attr.created_at > 5', 17, "cannot compare a timestamp with a number"),
        ("in_segment(\"x\")", 1, "in_segment() is not available here"),
        ('sum(order.completed, "a b", 1d) > 0', 1, "property names are identifiers"),
        ('attr.a.b == "x"', 1, "attribute names have one part"),
    ],
)
def test_semantic_errors_point_at_the_node(rule, column, fragment):
    err = compile_error(rule)
    if err.line == 0:
        pytest.fail(str(err))
    assert fragment in err.message, str(err)
    assert err.column == column, str(err)
    assert str(err).splitlines()[-1].index("^") == 4 + column - 1


def _all_literals(tree: sqlglot.exp.Expression) -> list[str]:
    return [lit.this for lit in tree.find_all(sqlglot.exp.Literal) if lit.is_string]


@pytest.mark.parametrize(
    "payload",
    [
        "'; DROP TABLE contacts; --",
        '"); DROP TABLE contacts; --',
        "\\'; SELECT 1; --",
        "x' OR '1'='1",
        "$.a') || (SELECT 1",
    ],
)
def test_injection_attempts_stay_literals(store, payload):
    from segsync.segments.ast import quote

    rule = (f"attr.last_name == {quote(payload)} or visited({quote(payload)}) or "
            f"count({quote(payload)}) > 0 or bucket({quote(payload)}) < 0 or "
            f"consentable({quote(payload)})")
    seg = SegmentDef(name="inj", rule=rule)
    sql = compile_sql(seg, as_of=AS_OF)
    # The payload round-trips as a string literal in the parsed SQL, never as syntax.
    parsed = sqlglot.parse_one(sql, read="duckdb")
    assert payload in _all_literals(parsed)
    assert len(sqlglot.parse(sql, read="duckdb")) == 1
    expected = {EVE} if payload == "'; DROP TABLE contacts; --" else set()
    assert members(store, rule) == expected
    assert store.execute("SELECT count(*) FROM contacts").fetchone()[0] == 5


def test_custom_attribute_names_cannot_smuggle_sql():
    with pytest.raises(RuleError, match="attribute names have one part"):
        compile_rule('attr.custom.x.y == "a"', registry=REG, as_of=AS_OF)
    # Names are identifiers by construction (the tokenizer only makes [A-Za-z0-9_.] names);
    # the JSON key reaches SQL inside a string literal.
    sql = compile_sql(SegmentDef(name="c", rule='attr.tier == "gold"'), as_of=AS_OF)
    assert "custom ->> '$.tier'" in sql


SAMPLE = [
    SegmentDef(name="vip", rule='opens(30d) >= 5 and spend(365d) > 500 and visited("/vip-rewards")'),
    SegmentDef(name="mix", rule='days_since(email.opened) > 90 or attr.department in ("HR", "People")'
                                ' or open_rate(90d) >= 0.5 and bucket("t") < 0.1'),
    SegmentDef(name="rank", rule='rfm_monetary() >= 4 and consentable("email") and in_segment("vip")'),
    SegmentDef(name="custom", rule="attr.score > 5 and avg(order.completed.value) > 10"),
]


@pytest.mark.parametrize("name", [s.name for s in SAMPLE])
@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_renders_and_reparses_in_dialects(name, dialect):
    sql = compile_sql(name, SAMPLE, as_of=AS_OF, dialect=dialect)
    sqlglot.parse_one(sql, read=dialect)  # valid in that dialect's grammar
    assert "FILTER(WHERE" in sql.replace("FILTER (WHERE", "FILTER(WHERE") or name == "custom"


def test_postgres_rendering_keeps_meaning():
    sql = compile_sql("mix", SAMPLE, as_of=AS_OF, dialect="postgres")
    assert "MD5('t' || ':' || contact_key)" in sql
    assert "POSITION(SUBSTRING(" in sql  # hex digit arithmetic, same as DuckDB's STRPOS
    assert "CAST('Infinity' AS DOUBLE PRECISION)" in sql
    assert "DATE_PART('epoch'" in sql
    # Ratios divide as floating point in both engines.
    assert "CAST(COALESCE(" in sql and "AS DOUBLE PRECISION) / CAST(" in sql


def test_compiled_sql_runs_in_duckdb(store):
    sql = compile_sql("rank", SAMPLE, as_of=AS_OF)
    assert store.execute(sql).fetchall() == [("alice@example.com",)]
    keys = {k for (k,) in store.execute(compile_sql("vip", SAMPLE, as_of=AS_OF)).fetchall()}
    assert keys == {"alice@example.com"}

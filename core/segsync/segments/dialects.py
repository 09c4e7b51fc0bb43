"""Rendering segsync's SQL for another engine: one place for every dialect difference.

Rules compile to sqlglot trees and the consent rule is written in DuckDB's SQL; both are
rendered for the engine the data lives in (docs/scale.md). sqlglot translates most of it (FILTER,
QUALIFY, UNNEST, md5, epoch arithmetic); what it cannot translate by itself is rewritten here,
never by the user:

* ``TRY_CAST`` (a custom JSON attribute read as a number, a flag or a date): PostgreSQL has no
  cast that yields NULL on bad input, so it calls ``segsync_try_<type>(text)``, functions the
  PostgreSQL engine creates in its schema (:data:`POSTGRES_FUNCTIONS`).
* JSON access: DuckDB's ``custom ->> '$.key'`` becomes ``custom ->> 'key'`` (works on json and
  jsonb), not ``JSON_EXTRACT_PATH_TEXT`` (json only).
* ``to_microseconds(n)`` (DuckDB's interval constructor, used by the consent rule) becomes an
  ``INTERVAL``.
* A subquery in ``FROM`` gets a name (PostgreSQL 15 requires one).
* Ties broken by ``contact_key`` sort by code point as in DuckDB (``COLLATE "C"`` in
  PostgreSQL, whose default collation orders text by language rules), so NTILE ranks agree.
* The canonical table names are replaced by the user's tables or views (``[store.tables]``).
* Spark SQL: the membership query's ``UNNEST`` in a projection becomes ``EXPLODE(…) AS
  segment``, and epoch seconds (``days_since``) are ``UNIX_MICROS(…) / 1e6``, since
  ``UNIX_TIMESTAMP`` drops the fraction of a second DuckDB keeps. Spark orders strings by code
  point already, and with ANSI mode off (the Spark engine's session sets it) its ``CAST`` of
  bad input is NULL, as ``TRY_CAST`` is in DuckDB.

The consent rule's ``ASOF JOIN`` has no portable translation; :mod:`segsync.consent.rules`
writes the portable form itself for other engines (``portable=True``).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp

DUCKDB = "duckdb"
SPARK = "spark"

# TRY_CAST target -> the PostgreSQL function that does it.
_POSTGRES_TRY = {"DOUBLE": "segsync_try_double", "BOOLEAN": "segsync_try_boolean",
                 "TIMESTAMPTZ": "segsync_try_timestamptz"}
# CREATE statements for those functions (the PostgreSQL engine runs them in its schema).
POSTGRES_FUNCTIONS = tuple(
    f"CREATE OR REPLACE FUNCTION {name}(v text) RETURNS {pg_type} LANGUAGE plpgsql IMMUTABLE "
    f"AS $$ BEGIN RETURN v::{pg_type}; EXCEPTION WHEN others THEN RETURN NULL; END $$"
    for name, pg_type in (("segsync_try_double", "double precision"),
                          ("segsync_try_boolean", "boolean"),
                          ("segsync_try_timestamptz", "timestamptz"))
)


def render(
    expr: exp.Expression, dialect: str, tables: Mapping[str, str] | None = None, *,
    pretty: bool = False,
) -> str:
    """``expr`` (a tree segsync built, DuckDB semantics) as SQL text for ``dialect``."""
    if dialect == DUCKDB and not tables:
        return expr.sql(DUCKDB, pretty=pretty)
    return _rewrite(expr.copy(), dialect, tables or {}).sql(dialect, pretty=pretty)


def transpile(
    sql: str, dialect: str, tables: Mapping[str, str] | None = None, *, pretty: bool = False
) -> str:
    """DuckDB SQL text (e.g. the consent rule) as SQL text for ``dialect``."""
    if dialect == DUCKDB and not tables:
        return sql
    return render(sqlglot.parse_one(sql, read=DUCKDB), dialect, tables, pretty=pretty)


def _rewrite(tree: exp.Expression, dialect: str, tables: Mapping[str, str]) -> exp.Expression:
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    if dialect == "postgres":
        # Set in place first: transform() does not descend into a node it replaced.
        for json in tree.find_all(exp.JSONExtractScalar):
            json.set("only_json_types", True)
        # PostgreSQL (before 16) wants every subquery in FROM named; DuckDB does not.
        for n, sub in enumerate(tree.find_all(exp.Subquery)):
            if not sub.alias and isinstance(sub.parent, (exp.From, exp.Join)):
                sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_subquery_{n}")))

    if dialect == SPARK:
        _number_ctes(tree)

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name in tables \
                and node.name not in ctes:
            mapped = exp.to_table(tables[node.name], dialect=dialect)
            mapped.set("alias", node.args.get("alias") or exp.TableAlias(
                this=exp.to_identifier(node.name)))
            return mapped
        if dialect == DUCKDB:
            return node
        if isinstance(node, exp.Anonymous) and node.name.lower() == "to_microseconds":
            return exp.paren(exp.Interval(this=exp.Literal.string(node.expressions[0].sql()),
                                          unit=exp.var("MICROSECOND")))
        if dialect == SPARK:
            return _spark(node)
        if dialect != "postgres":
            return node
        if isinstance(node, exp.TryCast):
            target = node.to.sql(DUCKDB).upper()
            if target in _POSTGRES_TRY:
                text = exp.cast(node.this, exp.DataType.build("text"))
                return exp.Anonymous(this=_POSTGRES_TRY[target], expressions=[text])
        if isinstance(node, exp.Ordered) and isinstance(node.this, exp.Column) \
                and node.this.name == "contact_key":
            node.set("this", exp.Collate(this=node.this, expression=exp.to_identifier("C", quoted=True)))
        return node

    return tree.transform(fix, copy=False)


def _number_ctes(tree: exp.Expression) -> None:
    """Give the CTEs of each WITH their own names (``l`` → ``l_0``, ``l_1``, …).

    sqlglot's Spark output lifts every WITH to the top of the statement; two ``consentable()``
    features each carry the consent rule's CTEs, which would then clash. A renamed table keeps
    its old name as alias, so columns qualified with it still resolve. Innermost WITHs first:
    a name an inner WITH shadows is renamed in its own scope before the outer one's."""
    for n, with_ in enumerate(reversed(list(tree.find_all(exp.With)))):
        names = {cte.alias_or_name for cte in with_.expressions}
        for table in with_.parent.find_all(exp.Table):
            if not table.args.get("db") and table.name in names:
                if not table.args.get("alias"):
                    table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
                table.set("this", exp.to_identifier(f"{table.name}_{n}"))
        for cte in with_.expressions:
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(f"{cte.alias_or_name}_{n}")))


def _spark(node: exp.Expression) -> exp.Expression:
    """Spark SQL: what sqlglot's "spark" dialect would render with another meaning."""
    if isinstance(node, exp.Unnest) and len(node.expressions) == 1:
        # UNNEST in a projection is Spark's EXPLODE (sqlglot would pass the alias to EXPLODE
        # as a second argument).
        explode = exp.Explode(this=node.expressions[0])
        alias = node.args.get("alias")
        return exp.alias_(explode, alias.copy()) if alias is not None else explode
    if isinstance(node, exp.TimeToUnix):
        # UNIX_TIMESTAMP() drops the fraction of a second that DuckDB's epoch() keeps.
        micros = exp.cast(exp.Anonymous(this="UNIX_MICROS", expressions=[node.this]), "double")
        return exp.paren(exp.Div(this=micros, expression=exp.Literal.number(1_000_000)))
    return node

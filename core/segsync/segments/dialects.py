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

The consent rule's ``ASOF JOIN`` has no portable translation; :mod:`segsync.consent.rules`
writes the portable form itself for other engines (``portable=True``).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp

DUCKDB = "duckdb"

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

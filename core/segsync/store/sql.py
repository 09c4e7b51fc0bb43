"""The one way segsync writes a value or a name into SQL text: sqlglot renders it for DuckDB.

Values are bound as DuckDB parameters (``?``, ``$name``) wherever a statement takes them; these
helpers are for SQL that is composed before it runs (a CTE shared by several statements, a
table function such as ``read_csv`` whose arguments cannot be bound, a table or column named at
run time). Never quote by hand (``f"'{value}'"``): ``core/tests/test_sql_style.py`` refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable

# sqlglot is imported by each call: opening the store (`segsync runs`) must not pay for it.


def literal(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled)."""
    from sqlglot import exp

    return exp.Literal.string(value).sql("duckdb")


def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (a table or column)."""
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql("duckdb")


def literal_list(values: Iterable[str]) -> str:
    """The items of an ``IN (...)`` list, in the order given; ``NULL`` (matching nothing) when
    there are none, since ``IN ()`` is not SQL."""
    return ", ".join(literal(v) for v in values) or "NULL"

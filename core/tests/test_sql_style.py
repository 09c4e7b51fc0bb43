"""One SQL style: values and names reach SQL text only through segsync.store.sql (sqlglot) or as
bound DuckDB parameters, never quoted by hand in an f-string, a concatenation or a format."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from segsync.store.sql import identifier, literal, literal_list

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    p for p in (*ROOT.glob("core/segsync/**/*.py"), *ROOT.glob("connectors/*/segsync_*/**/*.py"),
                *ROOT.glob("plugins/*/segsync_*/**/*.py"))
)
# A string that reads as SQL: only there is a double-quoted interpolation a hand-quoted name
# (elsewhere it is a message: `plugin "{name}" failed`).
SQL_WORDS = re.compile(r"\b(SELECT|FROM|INSERT|UPDATE|DELETE|WHERE|CREATE|JOIN|ALTER|DROP|ATTACH)\b")


def _text(node: ast.AST | None) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


def hand_quoted(source: str) -> list[tuple[int, str]]:
    """``(line, code)`` of every value or name quoted by hand in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            sql = SQL_WORDS.search("".join(_text(p) for p in parts))
            for i, part in enumerate(parts):
                if not isinstance(part, ast.FormattedValue):
                    continue
                before = _text(parts[i - 1]) if i else ""
                after = _text(parts[i + 1]) if i + 1 < len(parts) else ""
                quotes = ("'", '"') if sql else ("'",)
                if any(before.endswith(q) and after.startswith(q) for q in quotes):
                    found.append((node.lineno, ast.unparse(node)))
                    break
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            # "'" + value + "'" parses as ("'" + value) + "'"
            left = node.left
            if (_text(node.right).startswith("'") and isinstance(left, ast.BinOp)
                    and isinstance(left.op, ast.Add) and _text(left.left).endswith("'")):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            if re.search(r"'\{[^{}]*\}'", _text(node.func.value)):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and "'%s'" in _text(node.left):
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize(
    "code",
    [
        "opt_outs = ', '.join(f\"'{s}'\" for s in STATUSES)",
        "sql = f\"SELECT * FROM t WHERE status = '{status}'\"",
        "sql = f'DELETE FROM \"{table}\" WHERE contact_key = ?'",
        "sql = \"WHERE name = '\" + name + \"'\"",
        "sql = \"WHERE name = '{}'\".format(name)",
        "sql = \"WHERE name = '%s'\" % name",
    ],
)
def test_the_scan_finds_each_way_of_quoting_by_hand(code: str) -> None:
    assert [line for line, _ in hand_quoted(code)] == [1]


@pytest.mark.parametrize(
    "code",
    [
        "sql = f'SELECT * FROM t WHERE status = {literal(status)}'",
        "sql = f'DELETE FROM {identifier(table)} WHERE contact_key = ?'",
        "message = f'plugin \"{name}\" failed'",  # not SQL: a message may quote a name
        "message = f'connection {name!r} failed'",
        "sql = \"SELECT '{}'::JSON\"",  # an empty JSON object, no formatting
        "cell = \"'\" + cell",  # a formula-safe CSV cell: one quote, not a pair
    ],
)
def test_the_scan_leaves_sql_built_by_the_helpers_and_messages_alone(code: str) -> None:
    assert hand_quoted(code) == []


def test_no_value_or_name_is_quoted_by_hand_in_segsync_or_its_connectors() -> None:
    assert len(SOURCES) > 40  # the globs still find the tree
    found = [
        f"{path.relative_to(ROOT)}:{line}: {code}"
        for path in SOURCES
        for line, code in hand_quoted(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "quote with segsync.store.sql (literal, identifier) or bind a parameter"


def test_the_helpers_quote_what_they_are_given(store) -> None:
    hostile = "it's \"here\"; DROP TABLE contacts; --"
    assert literal(hostile) == "'it''s \"here\"; DROP TABLE contacts; --'"
    assert identifier(hostile) == '"it\'s ""here""; DROP TABLE contacts; --"'
    assert literal_list(["b", "a'"]) == "'b', 'a'''"
    assert literal_list([]) == "NULL"
    quote = "a'"
    # DuckDB reads each back as exactly the value given.
    assert store.scalar(f"SELECT {literal(hostile)}") == hostile
    assert store.scalar(f"SELECT 1 AS {identifier(hostile)}") == 1
    assert store.con.execute(f"SELECT 1 AS {identifier(hostile)}").description[0][0] == hostile
    assert store.scalar(f"SELECT 'a''' IN ({literal_list(['b', quote])})") is True
    assert store.scalar(f"SELECT 'a' IN ({literal_list([])})") is None

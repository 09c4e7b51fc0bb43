"""Tokenizer and parser: valid input, canonical text, and error messages with carets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segsync.segments import RuleError, ast, parse, to_text
from segsync.segments.ast import And, Bool, Call, Compare, Duration, In, Name, Not, Number, Or, String


def test_spec_examples_parse_to_expected_trees():
    tree = parse('opens(30d) >= 5 and spend(365d) > 500 and visited("/vip-rewards")')
    assert tree == And(
        And(
            Compare(">=", Call("opens", (Duration(30, "d"),)), Number(5)),
            Compare(">", Call("spend", (Duration(365, "d"),)), Number(500)),
        ),
        Call("visited", (String("/vip-rewards"),)),
    )
    assert parse("days_since(email.opened) > 90") == Compare(
        ">", Call("days_since", (Name(("email", "opened")),)), Number(90)
    )
    assert parse('attr.department in ("HR", "People")') == In(
        Name(("attr", "department")), (String("HR"), String("People"))
    )
    assert parse('bucket("spring-test") < 0.10') == Compare(
        "<", Call("bucket", (String("spring-test"),)), Number(0.1)
    )


def test_precedence_not_and_or():
    assert parse("a() or b() and not c()") == Or(
        Call("a"), And(Call("b"), Not(Call("c")))
    )
    assert parse("(a() or b()) and c()") == And(Or(Call("a"), Call("b")), Call("c"))
    assert parse("not a() == 1") == Not(Compare("==", Call("a"), Number(1)))


def test_literals_and_misc_syntax():
    assert parse("x() == -2.5") == Compare("==", Call("x"), Number(-2.5))
    assert parse("x() == true") == Compare("==", Call("x"), Bool(True))
    assert parse("f(2w, 24h, 1e3)") == Call("f", (Duration(2, "w"), Duration(24, "h"), Number(1000.0)))
    assert parse("attr.x not in ('a',)") == In(Name(("attr", "x")), (String("a"),), negated=True)
    assert parse("f(\"a\\\"b\\\\c'\")") == Call("f", (String('a"b\\c\''),))
    # Newlines and comments, as in multi-line TOML strings.
    assert parse("opens(30d) > 1  # engaged\n  and clicks(30d) > 0") == And(
        Compare(">", Call("opens", (Duration(30, "d"),)), Number(1)),
        Compare(">", Call("clicks", (Duration(30, "d"),)), Number(0)),
    )


def test_positions_are_recorded():
    tree = parse("a() and\n  b() > 1")
    assert isinstance(tree, And)
    assert (tree.right.line, tree.right.column) == (2, 7)
    assert (tree.right.left.line, tree.right.left.column) == (2, 3)


@pytest.mark.parametrize(
    "text, line, column, fragment",
    [
        ("opens(30d >= 5", 1, 15, "expected ',' or ')' closing the arguments of opens()"),
        ("opens(30d) >=", 1, 14, "expected a value, a function call, an attribute or '('"),
        ("x() = 3", 1, 5, "write '==' to compare"),
        ("a() && b()", 1, 5, "write 'and'"),
        ("a() AND b()", 1, 5, "keywords are lowercase"),
        ("opens(30days)", 1, 9, "unknown duration unit 'days'"),
        ("opens(1.5d)", 1, 7, "a duration takes a whole number"),
        ('visited("/vip)', 1, 9, "unterminated string"),
        ("a() < b() < c()", 1, 11, "comparisons do not chain"),
        ("a() b()", 1, 5, "expected 'and', 'or' or the end of the rule but found 'b'"),
        ("(a()", 1, 5, "expected ')' but found the end of the rule"),
        ("a())", 1, 4, "unmatched ')'"),
        ("", 1, 1, "expected a condition"),
        ("attr.x in (y(),)", 1, 12, "expected a literal value"),
        ("a() not b()", 1, 9, "expected 'in' after 'not'"),
        ("x() > 1 and\n   y() >", 2, 9, "expected a value"),
        ("f(x.)", 1, 5, "expected a name after '.'"),
        ("a.b() > 1", 1, 1, "function names have no dots"),
        ("x() == 1 ; DROP TABLE contacts", 1, 10, "unexpected character ';'"),
    ],
)
def test_errors_point_at_line_and_column(text, line, column, fragment):
    with pytest.raises(RuleError) as info:
        parse(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert fragment in err.message
    rendered = str(err).splitlines()
    assert rendered[0].startswith(f"line {line}, column {column}: ")
    # The source line, then a caret under the offending column.
    assert rendered[-1] == "    " + " " * (column - 1) + "^"
    assert rendered[-2] == "    " + (text.splitlines() or [""])[line - 1]


def test_error_message_names_segment():
    with pytest.raises(RuleError) as info:
        parse("x(")
    assert str(info.value.with_segment("vip")).startswith("segment 'vip': line 1, column 3")


def test_deep_nesting_is_a_rule_error_not_a_crash():
    with pytest.raises(RuleError, match="nests deeper"):
        parse("(" * 500 + "a()" + ")" * 500)
    with pytest.raises(RuleError, match="nests deeper"):
        parse("not " * 500 + "a()")


# -- round trips ---------------------------------------------------------------------------
_ident = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("and", "or", "not", "in", "true", "false")
)
_literal = st.one_of(
    st.integers(min_value=-10**12, max_value=10**12).map(Number),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(Number),
    st.text(max_size=12).map(String),
    st.booleans().map(Bool),
    st.builds(Duration, st.integers(min_value=0, max_value=10**6), st.sampled_from("hdw")),
)
_name = st.lists(_ident, min_size=1, max_size=3).map(lambda p: Name(tuple(p)))


def _extend(children):
    operand = st.one_of(_literal, _name, st.builds(Call, _ident, st.lists(children, max_size=3).map(tuple)))
    return st.one_of(
        st.builds(Call, _ident, st.lists(children, max_size=3).map(tuple)),
        st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), children, children),
        st.builds(In, operand, st.lists(_literal, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(Not, children),
        st.builds(And, children, children),
        st.builds(Or, children, children),
    )


trees = st.recursive(st.one_of(_literal, _name, st.builds(Call, _ident)), _extend, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(trees)
def test_round_trip_ast_text_ast(tree):
    text = to_text(tree)
    assert parse(text) == tree, text
    assert to_text(parse(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_rule_error(text):
    try:
        tree = parse(text)
    except RuleError as e:
        assert e.line >= 1 and e.column >= 1
    else:
        assert parse(to_text(tree)) == tree


def test_walk_visits_parents_first():
    tree = parse("a(1) and not b()")
    kinds = [type(n).__name__ for n in ast.walk(tree)]
    assert kinds == ["And", "Call", "Number", "Not", "Call"]

"""Recursive-descent parser of the rule language.

Grammar (lowest precedence first; see docs/rules.md)::

    rule       := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [ CMP operand | ["not"] "in" "(" literal ("," literal)* [","] ")" ]
    operand    := NUMBER | "-" NUMBER | DURATION | STRING | "true" | "false"
                | NAME "(" [or_expr ("," or_expr)* [","]] ")" | NAME | "(" or_expr ")"

The parser is purely syntactic: which names are functions, attributes or event types, and
whether types fit, is decided by the compiler.
"""

from __future__ import annotations

from . import ast
from .errors import RuleError
from .tokens import COMPARISON_OPS, Kind, Token, tokenize

# Deep nesting would hit Python's recursion limit with an unhelpful RecursionError: parentheses,
# `not` and call arguments nest at most MAX_DEPTH deep, and the whole tree (where a chain of
# N conditions joined by and/or is N levels) is at most MAX_HEIGHT levels, which the compiler,
# sqlglot and the engines all handle (see docs/rules.md, "Limits").
MAX_DEPTH = 100
MAX_HEIGHT = 200


def parse(text: str) -> ast.Node:
    """Parse one rule; raises :class:`RuleError` pointing at the first problem."""
    tree = _Parser(text).parse()
    _check_height(tree, text)
    return tree


def _check_height(tree: ast.Node, text: str) -> None:
    """Raise at the first node (in source order) whose subtree is deeper than MAX_HEIGHT.

    Iterative, since the tree may be far deeper than the recursion limit.
    """
    height: dict[int, int] = {}
    stack: list[tuple[ast.Node, bool]] = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        kids = ast.children(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((kid, False) for kid in reversed(kids))
            continue
        h = 1 + max((height[id(k)] for k in kids), default=0)
        if h > MAX_HEIGHT:
            raise RuleError(
                f"rule is too deep: more than {MAX_HEIGHT} levels (e.g. {MAX_HEIGHT} conditions "
                "joined by and/or); split it into segments combined with in_segment(), or "
                "match many values with 'in (...)'",
                text, node.line, node.column,
            )
        height[id(node)] = h


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- helpers ---------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        if t.kind is not Kind.EOF:
            self.i += 1
        return t

    def at_keyword(self, word: str) -> bool:
        return self.tok.kind is Kind.KEYWORD and self.tok.text == word

    def error(self, expected: str, tok: Token | None = None) -> RuleError:
        tok = tok or self.tok
        return RuleError(
            f"expected {expected} but found {tok.describe()}", self.text, tok.line, tok.column
        )

    def expect(self, kind: Kind, expected: str) -> Token:
        if self.tok.kind is not kind:
            raise self.error(expected)
        return self.advance()

    @staticmethod
    def _pos(tok: Token) -> dict[str, int]:
        return {"line": tok.line, "column": tok.column}

    # -- grammar ---------------------------------------------------------------------------
    def parse(self) -> ast.Node:
        if self.tok.kind is Kind.EOF:
            raise self.error("a condition, e.g. opens(30d) > 0,")
        node = self.or_expr()
        if self.tok.kind is not Kind.EOF:
            if self.tok.kind is Kind.RPAREN:
                raise RuleError(
                    "unmatched ')'", self.text, self.tok.line, self.tok.column
                )
            raise self.error("'and', 'or' or the end of the rule")
        return node

    def or_expr(self) -> ast.Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleError(f"rule nests deeper than {MAX_DEPTH} levels", self.text,
                            self.tok.line, self.tok.column)
        left = self.and_expr()
        while self.at_keyword("or"):
            op = self.advance()
            left = ast.Or(left, self.and_expr(), **self._pos(op))
        self.depth -= 1
        return left

    def and_expr(self) -> ast.Node:
        left = self.not_expr()
        while self.at_keyword("and"):
            op = self.advance()
            left = ast.And(left, self.not_expr(), **self._pos(op))
        return left

    def not_expr(self) -> ast.Node:
        if self.at_keyword("not"):
            op = self.advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise RuleError(f"rule nests deeper than {MAX_DEPTH} levels", self.text,
                                op.line, op.column)
            node = ast.Not(self.not_expr(), **self._pos(op))
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> ast.Node:
        left = self.operand()
        tok = self.tok
        if tok.kind is Kind.OP and tok.text in COMPARISON_OPS:
            self.advance()
            right = self.operand()
            nxt = self.tok
            if nxt.kind is Kind.OP and nxt.text in COMPARISON_OPS:
                raise RuleError(
                    "comparisons do not chain; combine them with 'and'",
                    self.text, nxt.line, nxt.column,
                )
            return ast.Compare(tok.text, left, right, **self._pos(tok))
        negated = False
        if self.at_keyword("not"):
            # Only 'not in' may follow an operand.
            nxt = self.tokens[self.i + 1]
            if not (nxt.kind is Kind.KEYWORD and nxt.text == "in"):
                raise self.error("'in' after 'not'", nxt)
            self.advance()
            negated = True
        if self.at_keyword("in"):
            self.advance()
            self.expect(Kind.LPAREN, "'(' starting the list of values after 'in'")
            options = [self.literal()]
            while self.tok.kind is Kind.COMMA:
                self.advance()
                if self.tok.kind is Kind.RPAREN:
                    break
                options.append(self.literal())
            self.expect(Kind.RPAREN, "',' or ')' closing the list of values")
            return ast.In(left, tuple(options), negated, **self._pos(tok))
        return left

    def literal(self) -> ast.Node:
        node = self.operand()
        if not isinstance(node, ast.LITERALS):
            raise RuleError(
                "expected a literal value (string, number, duration, true or false) in the "
                "'in' list", self.text, node.line, node.column,
            )
        return node

    def operand(self) -> ast.Node:
        tok = self.tok
        pos = self._pos(tok)
        if tok.kind is Kind.NUMBER:
            self.advance()
            return ast.Number(tok.value, **pos)  # type: ignore[arg-type]
        if tok.kind is Kind.OP and tok.text == "-":
            self.advance()
            num = self.expect(Kind.NUMBER, "a number after '-'")
            return ast.Number(-num.value, **pos)  # type: ignore[operator]
        if tok.kind is Kind.DURATION:
            self.advance()
            amount, unit = tok.value  # type: ignore[misc]
            return ast.Duration(amount, unit, **pos)
        if tok.kind is Kind.STRING:
            self.advance()
            return ast.String(tok.value, **pos)  # type: ignore[arg-type]
        if tok.kind is Kind.KEYWORD and tok.text in ("true", "false"):
            self.advance()
            return ast.Bool(tok.text == "true", **pos)
        if tok.kind is Kind.NAME:
            self.advance()
            if self.tok.kind is Kind.LPAREN:
                if "." in tok.text:
                    raise RuleError(
                        f"function names have no dots: {tok.text!r}", self.text,
                        tok.line, tok.column,
                    )
                return self.call(tok)
            return ast.Name(tuple(tok.text.split(".")), **pos)
        if tok.kind is Kind.LPAREN:
            self.advance()
            node = self.or_expr()
            self.expect(Kind.RPAREN, "')'")
            return node
        raise self.error("a value, a function call, an attribute or '('")

    def call(self, name: Token) -> ast.Call:
        self.expect(Kind.LPAREN, "'('")
        args: list[ast.Node] = []
        if self.tok.kind is not Kind.RPAREN:
            args.append(self.or_expr())
            while self.tok.kind is Kind.COMMA:
                self.advance()
                if self.tok.kind is Kind.RPAREN:
                    break
                args.append(self.or_expr())
        self.expect(Kind.RPAREN, f"',' or ')' closing the arguments of {name.text}()")
        return ast.Call(name.text, tuple(args), **self._pos(name))

"""Syntax tree of a rule, and its canonical text form.

Nodes are frozen dataclasses compared by content only: ``line``/``column`` are excluded from
equality so ``parse(to_text(tree)) == tree`` holds (the parser tests rely on it). Parentheses
are not nodes; :func:`to_text` adds exactly the ones precedence requires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from .tokens import DURATION_UNITS


@dataclass(frozen=True)
class Node:
    line: int = field(default=0, compare=False, kw_only=True, repr=False)
    column: int = field(default=0, compare=False, kw_only=True, repr=False)


@dataclass(frozen=True)
class Number(Node):
    value: int | float


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class Duration(Node):
    amount: int
    unit: str  # one of tokens.DURATION_UNITS

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.amount * DURATION_UNITS[self.unit])


@dataclass(frozen=True)
class Name(Node):
    """A dotted name: ``attr.country`` (attribute) or ``email.opened`` (an event type argument)."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Compare(Node):
    op: str  # one of tokens.COMPARISON_OPS
    left: Node
    right: Node


@dataclass(frozen=True)
class In(Node):
    operand: Node
    options: tuple[Node, ...]
    negated: bool = False


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class And(Node):
    left: Node
    right: Node


@dataclass(frozen=True)
class Or(Node):
    left: Node
    right: Node


LITERALS = (Number, String, Bool, Duration)

# Binding strength, loosest first; atoms bind tightest.
_PREC_OR, _PREC_AND, _PREC_NOT, _PREC_CMP, _PREC_ATOM = 1, 2, 3, 4, 5


def _prec(node: Node) -> int:
    if isinstance(node, Or):
        return _PREC_OR
    if isinstance(node, And):
        return _PREC_AND
    if isinstance(node, Not):
        return _PREC_NOT
    if isinstance(node, (Compare, In)):
        return _PREC_CMP
    return _PREC_ATOM


def quote(value: str) -> str:
    """A string literal in rule syntax that tokenizes back to ``value``."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def to_text(node: Node) -> str:
    """Canonical rule text of ``node``; parsing it gives an equal tree."""
    return _text(node, 0)


def _wrap(node: Node, minimum: int) -> str:
    text = _text(node, minimum)
    return f"({text})" if _prec(node) < minimum else text


def _text(node: Node, minimum: int) -> str:
    if isinstance(node, Number):
        return repr(node.value)
    if isinstance(node, String):
        return quote(node.value)
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, Duration):
        return f"{node.amount}{node.unit}"
    if isinstance(node, Name):
        return node.dotted
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_text(a, 0) for a in node.args)})"
    if isinstance(node, Compare):
        # Comparisons do not chain, so both sides must be atoms.
        return f"{_wrap(node.left, _PREC_ATOM)} {node.op} {_wrap(node.right, _PREC_ATOM)}"
    if isinstance(node, In):
        opts = ", ".join(_text(o, 0) for o in node.options)
        if len(node.options) == 1:
            opts += ","  # keeps a one-element list visibly a list
        op = "not in" if node.negated else "in"
        return f"{_wrap(node.operand, _PREC_ATOM)} {op} ({opts})"
    if isinstance(node, Not):
        return f"not {_wrap(node.operand, _PREC_NOT)}"
    if isinstance(node, (And, Or)):
        prec = _prec(node)
        word = "and" if isinstance(node, And) else "or"
        # Left-associative: a right operand of the same strength needs parentheses.
        return f"{_wrap(node.left, prec)} {word} {_wrap(node.right, prec + 1)}"
    raise TypeError(f"not a rule node: {node!r}")


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of ``node``, left to right."""
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.operand, *node.options)
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, (And, Or)):
        return (node.left, node.right)
    return ()


def walk(node: Node):
    """Yield ``node`` and its descendants, parents before children, left to right."""
    stack = [node]
    while stack:  # iterative: a long and/or chain is a deep tree
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))

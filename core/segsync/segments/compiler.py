"""Type-checks a rule's AST and compiles it to a sqlglot boolean expression.

Every value has a type: ``bool``, ``number``, ``string``, ``timestamp`` or ``any`` (a custom
JSON attribute, which takes the type of what it is compared with). Comparisons are
two-valued: a comparison with a missing value is false, and ``!=``/``not in`` are exactly the
negation of ``==``/``in`` (so missing values satisfy them). The compiled rule is therefore
never NULL, and ``not`` means what users expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlglot import exp

from . import ast
from .attributes import resolve_attribute
from .errors import RuleError, did_you_mean
from .functions import Attribute, BuildContext, Feature, FunctionRegistry, SegmentFunction
from .parser import parse

_OPS = {"==": exp.EQ, "!=": exp.EQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_CASTS = {"number": "double", "bool": "boolean", "timestamp": "timestamptz"}


@dataclass
class Value:
    expr: exp.Expression
    type: str  # bool | number | string | timestamp | any


@dataclass
class CompiledRule:
    """A compiled rule.

    ``expr`` is boolean and never NULL; it reads ``features`` by name and other segments'
    membership through the resolver given to :func:`compile_rule` (``depends`` lists them).
    ``steps`` pairs each sub-expression (calls, attributes, comparisons, boolean operators)
    with its compiled value, parents first, for ``explain``.
    """

    tree: ast.Node
    expr: exp.Expression
    features: dict[str, Feature] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)
    steps: list[tuple[int, ast.Node, exp.Expression]] = field(default_factory=list)


def _false() -> exp.Expression:
    return exp.false()


def _paren_or(e: exp.Expression) -> exp.Expression:
    return exp.paren(e) if isinstance(e, exp.Or) else e


def _coalesce_false(e: exp.Expression) -> exp.Expression:
    return exp.func("COALESCE", e, _false())


def compile_rule(
    rule: str | ast.Node,
    *,
    registry: FunctionRegistry,
    as_of: datetime,
    segment_ref: Callable[[str], exp.Expression] | None = None,
    text: str | None = None,
    dialect: str = "duckdb",
) -> CompiledRule:
    """Compile ``rule`` (text or a parsed tree; pass ``text`` with a tree for error carets).

    ``segment_ref(name)`` returns the boolean membership column of another segment and raises
    ``KeyError`` for unknown names; without it ``in_segment`` is an error. ``dialect`` names
    the engine the SQL is for (:attr:`BuildContext.dialect`).
    """
    if isinstance(rule, str):
        text, tree = rule, parse(rule)
    else:
        tree = rule
    return _Compiler(text or ast.to_text(tree), registry, as_of, segment_ref, dialect).compile(tree)


class _Compiler:
    def __init__(self, text, registry, as_of, segment_ref, dialect="duckdb") -> None:
        self.text = text
        self.registry: FunctionRegistry = registry
        self.out: CompiledRule | None = None
        self.depth = 0
        self.ctx = BuildContext(as_of, self._segment, dialect)
        self._segment_ref = segment_ref
        self._node: ast.Node | None = None

    def error(self, node: ast.Node, message: str) -> RuleError:
        return RuleError(message, self.text, node.line, node.column)

    def compile(self, tree: ast.Node) -> CompiledRule:
        self.out = CompiledRule(tree, _false())
        value = self.value(tree)
        self.out.expr = self.as_condition(tree, value)
        return self.out

    def _segment(self, name: str) -> exp.Expression:
        assert self.out is not None and self._node is not None
        if self._segment_ref is None:
            raise self.error(self._node, "in_segment() is not available here")
        try:
            ref = self._segment_ref(name)
        except KeyError as e:
            raise self.error(self._node, str(e.args[0]) if e.args else f"unknown segment {name!r}")
        if name not in self.out.depends:
            self.out.depends.append(name)
        return ref

    # -- values ----------------------------------------------------------------------------
    def value(self, node: ast.Node) -> Value:
        self.depth += 1
        slot = len(self.out.steps)  # type: ignore[union-attr]
        v = self._value(node)
        self.depth -= 1
        if not isinstance(node, ast.LITERALS):
            self.out.steps.insert(slot, (self.depth, node, v.expr))  # type: ignore[union-attr]
        return v

    def _value(self, node: ast.Node) -> Value:
        if isinstance(node, ast.Number):
            return Value(exp.Literal.number(repr(node.value)), "number")
        if isinstance(node, ast.String):
            return Value(exp.Literal.string(node.value), "string")
        if isinstance(node, ast.Bool):
            return Value(exp.true() if node.value else exp.false(), "bool")
        if isinstance(node, ast.Duration):
            raise self.error(node, f"a duration ({ast.to_text(node)}) is only meaningful as a "
                                   "function's window argument, e.g. opens(30d)")
        if isinstance(node, ast.Name):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.In):
            return self.in_(node)
        if isinstance(node, ast.Not):
            inner = self.as_condition(node.operand, self.value(node.operand))
            return Value(exp.Not(this=exp.paren(inner)), "bool")
        if isinstance(node, (ast.And, ast.Or)):
            left = self.as_condition(node.left, self.value(node.left))
            right = self.as_condition(node.right, self.value(node.right))
            # Build the connective directly (exp.and_ parenthesizes every nested operand);
            # only an OR under an AND needs parentheses.
            if isinstance(node, ast.And):
                return Value(exp.And(this=_paren_or(left), expression=_paren_or(right)), "bool")
            return Value(exp.Or(this=left, expression=right), "bool")
        raise self.error(node, f"unsupported syntax {type(node).__name__}")

    def as_condition(self, node: ast.Node, v: Value) -> exp.Expression:
        if v.type == "bool":
            return v.expr
        if v.type == "any":
            # A bare custom attribute is a flag: true only when it reads as boolean true.
            return _coalesce_false(exp.TryCast(this=v.expr, to=exp.DataType.build("boolean")))
        text = ast.to_text(node)
        hint = f"{text} > 0" if v.type == "number" else f'{text} == "..."'
        raise self.error(
            node, f"expected a condition but {text!r} is a {v.type}; compare it, e.g. {hint}"
        )

    def attribute(self, node: ast.Name) -> Value:
        if node.parts[0] != "attr":
            close = did_you_mean(node.dotted, self.registry.names())
            if close:  # a function called without parentheses, or misspelled
                raise self.error(node, f"unknown name {node.dotted!r}: functions are called "
                                       f"with parentheses, e.g. opens(30d){close}")
            raise self.error(
                node,
                f"unknown name {node.dotted!r}: attributes are written attr.NAME (e.g. "
                "attr.country); event types are arguments of functions, e.g. "
                f"count({node.dotted}, 30d)",
            )
        attr = self.resolve(node)
        self.add_features((attr.feature(),))
        return Value(attr.expr(), attr.type)

    def resolve(self, node: ast.Name) -> Attribute:
        try:
            return resolve_attribute(node.parts[1:])
        except ValueError as e:
            raise self.error(node, str(e))

    def add_features(self, features) -> None:
        for f in features:
            self.out.features.setdefault(f.name, f)  # type: ignore[union-attr]

    # -- comparisons -----------------------------------------------------------------------
    def unify(
        self, node: ast.Node, lnode: ast.Node, rnode: ast.Node, left: Value, right: Value, op: str
    ) -> tuple[exp.Expression, exp.Expression]:
        lt, rt = left.type, right.type
        le, re_ = left.expr, right.expr
        if lt == "any" and rt == "any":
            lt = rt = "string"
        if lt == "any":
            le, lt = self.cast(le, rt), rt
        elif rt == "any":
            re_, rt = self.cast(re_, lt), lt
        # A date attribute compared with a literal date string.
        if lt == "timestamp" and rt == "string":
            re_, rt = self.date_literal(rnode), lt
        elif rt == "timestamp" and lt == "string":
            le, lt = self.date_literal(lnode), rt
        if lt != rt:
            raise self.error(node, f"cannot compare a {lt} with a {rt}: "
                                   f"{ast.to_text(node)!r}")
        if lt == "bool" and op not in ("==", "!="):
            raise self.error(node, f"conditions can only be compared with == or !=, not {op}")
        return le, re_

    def cast(self, e: exp.Expression, type_: str) -> exp.Expression:
        if type_ in _CASTS:
            return exp.TryCast(this=e, to=exp.DataType.build(_CASTS[type_]))
        return e

    def date_literal(self, node: ast.Node) -> exp.Expression:
        if not isinstance(node, ast.String):
            raise self.error(node, "a date attribute can only be compared with a date string "
                                   "such as \"2024-01-31\" or with days_since()")
        try:
            at = datetime.fromisoformat(node.value)
        except ValueError:
            raise self.error(node, f"expected an ISO date such as \"2024-01-31\", "
                                   f"not {node.value!r}")
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.ctx.as_of.tzinfo)  # dates without zone are UTC
        try:
            return BuildContext.timestamp(at)
        except OverflowError:
            raise self.error(node, f"date {node.value!r} is out of range") from None

    def compare(self, node: ast.Compare) -> Value:
        left, right = self.value(node.left), self.value(node.right)
        le, re_ = self.unify(node, node.left, node.right, left, right, node.op)
        cmp = _OPS[node.op](this=le, expression=re_)
        result = _coalesce_false(cmp)
        if node.op == "!=":
            result = exp.Not(this=result)
        return Value(result, "bool")

    def in_(self, node: ast.In) -> Value:
        operand = self.value(node.operand)
        options = [self.value(o) for o in node.options]
        if operand.type == "bool":
            raise self.error(node, "'in' takes a value, not a condition")
        first = node.options[0]
        for opt_node, opt in zip(node.options, options):
            if opt.type != options[0].type:
                raise self.error(
                    opt_node, f"the values of an 'in' list must have one type: "
                              f"{ast.to_text(first)} is a {options[0].type}, "
                              f"{ast.to_text(opt_node)} a {opt.type}")
        exprs, target = [], operand.expr
        for opt_node, opt in zip(node.options, options):
            target, right = self.unify(node, node.operand, opt_node, operand, opt, "==")
            exprs.append(right)
        result = _coalesce_false(exp.In(this=target, expressions=exprs))
        if node.negated:
            result = exp.Not(this=result)
        return Value(result, "bool")

    # -- calls -----------------------------------------------------------------------------
    def call(self, node: ast.Call) -> Value:
        try:
            fn = self.registry.get(node.name)
        except KeyError:
            raise self.error(node, f"unknown function {node.name}()"
                                   f"{did_you_mean(node.name, self.registry.names())}")
        args = self.bind(fn, node)
        self._node = node
        try:
            built = fn.build(self.ctx, args)
        except RuleError:
            raise
        except ValueError as e:
            raise self.error(node, f"{fn.name}(): {e}")
        except Exception as e:  # a plugin's builder broke: name it rather than crash the run
            raise self.error(node, f"{fn.name}() (from {fn.origin}) failed: "
                                   f"{type(e).__name__}: {e}")
        self.add_features(built.features)
        if fn.returns == "bool":
            return Value(_coalesce_false(built.expr), "bool")
        return Value(built.expr, fn.returns)

    def bind(self, fn: SegmentFunction, node: ast.Call) -> dict[str, object]:
        args = node.args
        if fn.rearrange is not None:
            args = fn.rearrange(args)
        required = sum(1 for p in fn.params if not p.optional)
        if not required <= len(args) <= len(fn.params):
            count = (f"{required}" if required == len(fn.params)
                     else f"{required} to {len(fn.params)}")
            raise self.error(node, f"{fn.name}() takes {count} argument"
                                   f"{'' if count == '1' else 's'}: {fn.signature()}; "
                                   f"got {len(args)}")
        bound: dict[str, object] = {p.name: None for p in fn.params}
        for param, arg in zip(fn.params, args):
            bound[param.name] = self.bind_one(fn, param.name, param.kind, arg)
        return bound

    def event_type(self, node: ast.Node, name: str) -> str:
        known = self.registry.event_types
        if known is None or name in known:
            return name
        hint = did_you_mean(name.lower(), known)
        raise self.error(node, f"unknown event type {name!r}{hint} (event types: "
                               "`segsync plugins`, docs/records.md)")

    def bind_one(self, fn: SegmentFunction, name: str, kind: str, arg: ast.Node) -> object:
        where = f"argument {name!r} of {fn.name}()"
        if kind == "event" or (kind == "event_or_attribute" and not (
                isinstance(arg, ast.Name) and arg.parts[0] == "attr")):
            if isinstance(arg, ast.Name):
                return self.event_type(arg, arg.dotted)
            if isinstance(arg, ast.String) and arg.value:
                return self.event_type(arg, arg.value)
            raise self.error(arg, f"{where} must be an event type such as email.opened or "
                                  '"order.completed"')
        if kind == "event_or_attribute" or kind == "attribute":
            if isinstance(arg, ast.Name) and arg.parts[0] == "attr":
                return self.resolve(arg)
            raise self.error(arg, f"{where} must be an attribute such as attr.created_at")
        if kind == "channel":
            if not isinstance(arg, ast.String):
                raise self.error(arg, f"{where} must be a channel in quotes, e.g. \"email\"")
            known = self.registry.channels
            if known is not None and arg.value not in known:
                raise self.error(arg, f"unknown channel {arg.value!r}"
                                      f"{did_you_mean(arg.value, known)} "
                                      f"(channels: {', '.join(sorted(known))})")
            return arg.value
        if kind in ("string", "segment"):
            if isinstance(arg, ast.String):
                return arg.value
            if isinstance(arg, ast.Name) and kind == "segment":
                return arg.dotted
            if isinstance(arg, ast.Name) and kind == "string" and name == "property":
                return arg.dotted
            raise self.error(arg, f"{where} must be a string in quotes")
        if kind == "number":
            if isinstance(arg, ast.Number):
                return arg.value
            raise self.error(arg, f"{where} must be a number")
        if kind == "duration":
            if isinstance(arg, ast.Duration):
                return arg.delta
            raise self.error(arg, f"{where} must be a duration such as 24h, 30d or 2w")
        raise self.error(arg, f"{where} has an unknown parameter kind {kind!r}")

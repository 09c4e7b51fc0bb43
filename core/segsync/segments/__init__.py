"""The segment engine: rule language, function registry, set-based evaluation.

Public API::

    parse(text) -> ast.Node                        to_text(node) -> str
    compile_rule(rule, registry=, as_of=) -> CompiledRule
    evaluate(con, segments, groups, as_of, registry=None) -> dict[str, int]
    snapshot(con, run_id, as_of) -> int
    diff(con, destination, segments=None) -> MembershipDiff        diff_sql(...) -> str
    explain(con, segment, contact_key, as_of, segments=, groups=) -> Explanation
    compile_sql(segment, segments=(), groups=None, as_of=None, dialect="duckdb", tables=None) -> str
    SegmentDef, GroupDef, Representation, SegmentsConfig     (pydantic models)
    SegmentFunction, Param, Built, Feature, BuildContext, FunctionRegistry, default_registry
    RuleError, SegmentConfigError, FunctionRegistryError
"""

from .ast import to_text
from .builtins import default_registry
from .compiler import CompiledRule, compile_rule
from .errors import FunctionRegistryError, RuleError, SegmentConfigError, SegmentError
from .evaluate import MembershipDiff, compile_sql, diff, diff_sql, evaluate, snapshot
from .explain import Explanation, Step, explain
from .functions import (
    Attribute,
    BuildContext,
    Built,
    Feature,
    FunctionRegistry,
    Param,
    SegmentFunction,
)
from .definitions import GroupDef, Representation, SegmentDef, SegmentsConfig, check_segments
from .parser import parse

__all__ = [
    "Attribute", "BuildContext", "Built", "CompiledRule", "Explanation", "Feature",
    "FunctionRegistry", "FunctionRegistryError", "GroupDef", "MembershipDiff", "Param",
    "Representation", "RuleError", "SegmentConfigError", "SegmentDef", "SegmentError",
    "SegmentFunction", "SegmentsConfig", "Step", "check_segments", "compile_rule", "compile_sql",
    "default_registry", "diff", "diff_sql", "evaluate", "explain", "parse", "snapshot", "to_text",
]

"""Hostile and random rules: every failure is a RuleError with a position, never a crash, and
every rule that compiles runs."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segtestkit import AS_OF, create_store, populate

from segsync.plugins import PluginHost
from segsync.segments import (
    FunctionRegistry,
    Param,
    RuleError,
    SegmentDef,
    SegmentFunction,
    compile_rule,
    evaluate,
    parse,
)
from segsync.segments.parser import MAX_HEIGHT

HOST = PluginHost(load_entry_points=False)
REG = HOST.segment_registry()  # with the event vocabulary and the channels, as sync uses it
UTC = timezone.utc


def rule_error(rule: str, as_of: datetime = AS_OF, registry: FunctionRegistry = REG) -> RuleError:
    with pytest.raises(RuleError) as caught:
        compile_rule(rule, registry=registry, as_of=as_of)
    return caught.value


def test_a_3000_term_and_is_a_rule_error_at_the_term_that_is_too_deep() -> None:
    rule = " and ".join(f"opens(30d) > {i}" for i in range(3000))
    error = rule_error(rule)
    # Each condition is 3 levels (compare, call, duration); the 198th 'and' makes 201.
    position = 0
    for _ in range(198):
        position = rule.index(" and ", position) + 1
    assert (error.line, error.column) == (1, position + 1)
    assert error.message.startswith(f"rule is too deep: more than {MAX_HEIGHT} levels")
    # Just under the bound compiles and runs.
    ok = " and ".join(f"opens(30d) > {i}" for i in range(197))
    con = create_store()
    assert evaluate(con, [SegmentDef(name="s", rule=ok)], {}, AS_OF, REG) == {"s": 0}


@pytest.mark.parametrize(("rule", "column", "message"), [
    ("opens(99999999999999999999d) > 1", 7,
     "duration '99999999999999999999d' is too long (at most 999999999d); "
     "leave the window out to mean all history"),
    ("opens(9999999w) > 1", 1,
     "opens(): a 69999993-day window before 2024-06-01 starts before year 1"),
    ("opens(30d) > 1e999", 14, "number '1e999' is out of range"),
    ("opens(30d) > " + "9" * 5000, 14,
     "number '99999999999999999999999…' is too large (at most 9223372036854775807; "
     "write larger numbers as decimals, e.g. 1e20)"),
    ('attr.country in ("DE", 3)', 24,
     "the values of an 'in' list must have one type: \"DE\" is a string, 3 a number"),
    ('attr.tier in ("DE", 3, true)', 21,
     "the values of an 'in' list must have one type: \"DE\" is a string, 3 a number"),
    ('attr.created_at > "9999-12-31T23:00:00-05:00"', 19,
     "date '9999-12-31T23:00:00-05:00' is out of range"),
])
def test_fuzzed_crashes_are_rule_errors_with_a_position(rule: str, column: int, message: str) -> None:
    error = rule_error(rule)
    assert (error.line, error.column, error.message) == (1, column, message)


def test_a_window_that_fits_today_but_not_an_early_as_of_is_a_rule_error() -> None:
    compile_rule("opens(500000d) > 1", registry=REG, as_of=AS_OF)
    error = rule_error("opens(500000d) > 1", as_of=datetime(1000, 1, 1, tzinfo=UTC))
    assert error.message == "opens(): a 500000-day window before 1000-01-01 starts before year 1"


@pytest.mark.parametrize(("rule", "column", "message"), [
    ("count(email.opend, 30d) > 0", 7,
     "unknown event type 'email.opend'; did you mean 'email.opened'? "
     "(event types: `segsync plugins`, docs/records.md)"),
    ('days_since("Order Completed") < 30', 12,
     "unknown event type 'Order Completed'; did you mean 'order.completed'? "
     "(event types: `segsync plugins`, docs/records.md)"),
    ('consentable("emial")', 13,
     "unknown channel 'emial'; did you mean 'email'? (channels: email, sms)"),
    ('visited("/x") and opnes(30d) > 1', 19, "unknown function opnes(); did you mean 'opens'?"),
    ("opnes > 1", 1,
     "unknown name 'opnes': functions are called with parentheses, e.g. opens(30d); "
     "did you mean 'opens'?"),
    ("attr.created_at > 5", 17, "cannot compare a timestamp with a number: 'attr.created_at > 5'"),
])
def test_typos_inside_rules_are_errors_not_empty_segments(rule: str, column: int, message: str) -> None:
    error = rule_error(rule)
    assert (error.line, error.column, error.message) == (1, column, message)


def test_a_plugin_function_that_raises_is_a_rule_error_naming_it() -> None:
    registry = HOST.segment_registry()

    def build(ctx, args):
        raise KeyError("oops")

    registry.register(SegmentFunction("churn", (), "number", "Churn risk.", build, origin="segsync-churn"))
    error = rule_error("churn() > 0.5", registry=registry)
    assert (error.column, error.message) == (1, "churn() (from segsync-churn) failed: KeyError: 'oops'")


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(RuleError) as caught:
        parse('visited("a\ud800")')
    assert (caught.value.column, caught.value.message) == (11, "invalid character U+D800 (a lone surrogate)")


# -- properties --------------------------------------------------------------------------------

_FRAGMENTS = [
    "opens(", "clicks(", "count(", "sum(", "days_since(", "consentable(", "in_segment(", "bucket(",
    "visited(", "rfm_recency(", "spend(", "max(", "attr.", "attr.custom.", "country", "created_at",
    "tier", "email.opened", "order.completed", "order.completed.value", ")", "(", ",", " and ",
    " or ", "not ", " in ", " not in ", "==", "!=", "<", "<=", ">", ">=", "-", "30d", "0d", "24h",
    "2w", "99999999999999999999d", "1e999", "1e308", "0.5", "5", "9223372036854775808", "true",
    "false", '"email"', '"DE"', '"2024-01-31"', '"0001-01-01"', '"x"', "'", '"', "\\", "#", "\n",
    " ", "=", "&&", "AND", ".", "_",
]
_AS_OFS = [AS_OF, datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)]

random_text = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=3)), max_size=25
).map("".join)


@settings(max_examples=600, deadline=None)
@given(random_text, st.sampled_from(_AS_OFS))
def test_random_text_raises_nothing_but_rule_errors(text: str, as_of: datetime) -> None:
    try:
        compile_rule(text, registry=REG, as_of=as_of,
                     segment_ref=lambda name: (_ for _ in ()).throw(KeyError(name)))
    except RuleError as error:
        assert error.line >= 1 or error.message  # a position, or a message for the whole rule


def _call(name: str, *args: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*args).map(lambda a: f"{name}({', '.join(a)})") if args else st.just(f"{name}()")


_window = st.one_of(st.sampled_from(["1h", "30d", "2w", "365d", "36500d"]),
                    st.integers(0, 10_000).map(lambda n: f"{n}d"))
_number = st.one_of(st.integers(-10**18, 10**18).map(str),
                    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
                    st.sampled_from(["1e308", "-1e308", "0.0"]))
_string = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"')
_event = st.sampled_from(["email.opened", "email.sent", "order.completed", '"page.viewed"', "cart.added"])
_numeric = st.one_of(
    _call("opens", _window), _call("clicks"), _call("count", _event, _window),
    _call("sum", st.just("order.completed.value"), _window),
    _call("max", st.just('"order.completed"'), st.just('"items"'), _window),
    _call("days_since", st.sampled_from(["email.opened", "attr.created_at", "attr.custom.joined"])),
    _call("open_rate", _window), _call("bucket", _string), _call("rfm_monetary"),
    _call("buyer_frequency", _window), _call("sends_since_open"),
    _call("category_events", _string, _window),
)
_condition = st.one_of(
    st.tuples(_numeric, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), _number).map(" ".join),
    st.tuples(st.sampled_from(["attr.country", "attr.tier", "attr.custom.x"]),
              st.sampled_from(["==", "!="]), _string).map(" ".join),
    st.tuples(st.sampled_from(["attr.country", "attr.tier"]),
              st.sampled_from(["in", "not in"]), st.lists(_string, min_size=1, max_size=4))
    .map(lambda t: f"{t[0]} {t[1]} ({', '.join(t[2])})"),
    st.sampled_from(['attr.created_at > "2024-01-01"', 'attr.created_at <= "0001-01-01T00:00:00Z"',
                     "attr.custom.vip", 'consentable("email")', 'consentable("sms")']),
    _call("visited", _string, _window),
)
valid_rules = st.recursive(
    _condition,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        inner.map(lambda r: f"not ({r})"),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_rules, st.sampled_from(_AS_OFS))
def test_compiled_sql_of_random_valid_rules_executes(rule: str, as_of: datetime) -> None:
    segment = SegmentDef(name="s", rule=rule)
    try:
        compile_rule(rule, registry=REG, as_of=as_of)
    except RuleError:
        return  # e.g. a window reaching before year 1 at the earliest as_of
    for con in (_EMPTY, _POPULATED):
        sizes = evaluate(con, [segment], {}, as_of, REG)
        assert set(sizes) == {"s"} and 0 <= sizes["s"] <= 5


_EMPTY = create_store()
_POPULATED = create_store()
populate(_POPULATED)


def test_a_group_of_only_its_catch_all_evaluates() -> None:
    from segsync.segments import GroupDef

    con = create_store()
    populate(con)
    sizes = evaluate(con, [SegmentDef(name="rest", group="g")], {"g": GroupDef(catch_all="rest")},
                     AS_OF, REG)
    assert sizes == {"rest": 5}

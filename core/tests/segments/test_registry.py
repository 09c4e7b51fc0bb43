"""The function registry and the plugin hook: adding, clashing, replacing."""

from __future__ import annotations

import pluggy
import pytest
from segtestkit import ALICE, AS_OF, BOB, DAVE

from segsync.segments import (
    Built,
    FunctionRegistry,
    FunctionRegistryError,
    Param,
    RuleError,
    SegmentDef,
    SegmentFunction,
    default_registry,
    evaluate,
)
from segsync.segments.builtins import event_feature, zero_if_null
from sqlglot import exp


def webinars_fn(origin: str = "segsync-webinars") -> SegmentFunction:
    def build(ctx, args):
        f = event_feature(ctx, "count", ("webinar.attended",), args["window"])
        return Built(zero_if_null(f), (f,))

    return SegmentFunction("webinars", (Param("window", "duration", optional=True),), "number",
                           "Webinars attended.", build, "webinars(90d) > 0", origin=origin)


def test_plugin_function_is_usable_in_rules(store):
    from segtestkit import add_event, day

    reg = default_registry()
    reg.register(webinars_fn())
    add_event(store, BOB, "webinar.attended", day(3))
    evaluate(store, [SegmentDef(name="w", rule="webinars(7d) > 0")], {}, AS_OF, reg)
    assert store.execute("SELECT contact_key FROM segment_membership").fetchall() == [(BOB,)]


def test_duplicates_name_both_registrants():
    reg = default_registry()
    reg.register(webinars_fn("plugin-a"))
    with pytest.raises(FunctionRegistryError) as info:
        reg.register(webinars_fn("plugin-b"))
    assert str(info.value) == (
        "segment function 'webinars' from 'plugin-b' clashes with the one registered by 'plugin-a'"
    )
    with pytest.raises(FunctionRegistryError, match="'opens' from 'x' clashes with the one registered by 'segsync'"):
        reg.register(SegmentFunction("opens", (), "number", "", lambda c, a: Built(exp.null()), origin="x"))


def test_replace_supersedes_a_builtin(store):
    # How the consent work can refine consentable(): same name, replace=True.
    reg = default_registry()
    reg.register(SegmentFunction(
        "consentable", (Param("channel", "string"),), "bool", "Everyone but Alice.",
        lambda ctx, a: Built(exp.NEQ(this=exp.column("contact_key"), expression=exp.Literal.string(ALICE)),
                             ()),
        origin="segsync-consent",
    ), replace=True)
    sizes = evaluate(store, [SegmentDef(name="c", rule='consentable("email")')], {}, AS_OF, reg)
    assert sizes == {"c": 4}


def test_unknown_function_lists_close_names_from_plugins_too():
    reg = default_registry()
    reg.register(webinars_fn())
    with pytest.raises(RuleError, match="did you mean 'webinars'"):
        from segsync.segments import compile_rule
        compile_rule("webinar(30d) > 0", registry=reg, as_of=AS_OF)


def test_bad_registrations():
    reg = FunctionRegistry()
    with pytest.raises(FunctionRegistryError, match="takes a SegmentFunction"):
        reg.register("opens")  # type: ignore[arg-type]
    with pytest.raises(FunctionRegistryError, match="not a usable name"):
        reg.register(SegmentFunction("and", (), "bool", "", lambda c, a: Built(exp.true())))


def test_builtins_register_through_the_pluggy_hook():
    from segsync.default_plugins import segment_functions as builtins

    class Spec:
        @pluggy.HookspecMarker("segsync")
        def segsync_register_segment_functions(self, register):
            ...

    pm = pluggy.PluginManager("segsync")
    pm.add_hookspecs(Spec)
    pm.register(builtins)
    reg = FunctionRegistry()
    pm.hook.segsync_register_segment_functions(register=reg.register)
    assert {"opens", "bucket", "consentable", "in_segment", "rfm_recency"} <= set(reg.names())


def test_every_builtin_has_doc_and_a_working_example(store):
    for fn in default_registry():
        assert fn.doc and fn.example, fn.name
        segs = [SegmentDef(name="vip", rule="true"), SegmentDef(name="ex", rule=fn.example)]
        evaluate(store, segs, {}, AS_OF)
    assert DAVE

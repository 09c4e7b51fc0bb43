"""The standard segment functions; :mod:`segsync.default_plugins.segment_functions` registers them
through the same hook plugins use.

Event-type conventions the shortcuts rely on (see docs/rules.md): ``email.sent``,
``email.opened``, ``email.clicked``, ``order.completed`` (``value`` = order total),
``page.viewed`` (``url``), ``product.viewed`` (``category``).

Semantics callers and users rely on:

* windows are ``(as_of - window, as_of]``; no window means all history up to ``as_of``;
* counts and sums are 0 when nothing matched; min/max/avg are missing (comparisons false);
* ``days_since`` is +infinity when the event never happened (so ``> N`` is true, ``< N`` false);
* rates are 0 when there were no sends;
* ``bucket(salt)`` = ``int(md5(f"{salt}:{contact_key}").hexdigest()[:8], 16) / 2**32``;
* ``sends_since_open()`` counts every send when the contact never opened;
* ``buyer_*`` ranks are missing (comparisons false) for contacts without an order in the window.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlglot
from sqlglot import exp

from . import ast
from .functions import (
    EVENTS_TABLE,
    Attribute,
    BuildContext,
    Built,
    Feature,
    FunctionRegistry,
    Param,
    SegmentFunction,
)

SENT, OPENED, CLICKED = "email.sent", "email.opened", "email.clicked"
ORDER, PAGE_VIEW, PRODUCT_VIEW = "order.completed", "page.viewed", "product.viewed"
MARKETING = "marketing"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_DOUBLE = exp.DataType.build("double")
_WINDOW = Param("window", "duration", optional=True)


# -- building blocks -------------------------------------------------------------------------
def event_feature(
    ctx: BuildContext,
    agg: str,
    types: tuple[str, ...],
    window: timedelta | None,
    *,
    value: exp.Expression | None = None,
    extra: exp.Expression | None = None,
) -> Feature:
    """An aggregate over the contact's events of ``types`` in ``window``.

    ``agg`` is count, sum, min, max, avg, last_at (latest ``occurred_at``) or campaigns (distinct
    emails acted on: ``properties.campaign_id``, or the event itself when it names none).
    """
    type_col = exp.column("type")
    conds: list[exp.Expression] = [
        exp.EQ(this=type_col, expression=exp.Literal.string(types[0]))
        if len(types) == 1
        else exp.In(this=type_col, expressions=[exp.Literal.string(t) for t in types])
    ]
    if (w := ctx.in_window(window)) is not None:
        conds.append(w)
    if extra is not None:
        conds.append(extra)
    if agg == "count":
        func: exp.Expression = exp.Count(this=exp.Star())
    elif agg == "campaigns":
        func = exp.Count(this=exp.Distinct(expressions=[_campaign_key()]))
    elif agg == "last_at":
        func = exp.Max(this=exp.column("occurred_at"))
    else:
        func = {"sum": exp.Sum, "min": exp.Min, "max": exp.Max, "avg": exp.Avg}[agg](this=value)
    filtered = exp.Filter(this=func, expression=exp.Where(this=exp.and_(*conds)))
    return Feature(
        "event", filtered, event_types=frozenset(types), since=ctx.window_start(window)
    )


def _campaign_key() -> exp.Expression:
    # properties.campaign_id, or the event itself when it names none; extracted from the JSON
    # once, at ingestion (store migration 4), rather than per open and click per evaluation.
    return exp.column("campaign_key")


def zero_if_null(feature: Feature) -> exp.Expression:
    return exp.func("COALESCE", feature.ref(), exp.Literal.number(0))


def property_value(prop: str) -> exp.Expression:
    """An event property as a number: the ``value`` column or a key of ``properties`` JSON."""
    if prop == "value":
        return exp.column("value")
    extracted = exp.JSONExtractScalar(
        this=exp.column("properties"),
        expression=exp.JSONPath(expressions=[exp.JSONPathRoot(), exp.JSONPathKey(this=prop)]),
    )
    return exp.TryCast(this=extracted, to=_DOUBLE)


def _ratio(num: exp.Expression, den: exp.Expression) -> exp.Expression:
    # Zero sends means a rate of 0, not NULL: "open_rate(90d) < 0.1" should catch the unmailed.
    return exp.Case(
        ifs=[exp.If(this=exp.EQ(this=den, expression=exp.Literal.number(0)),
                    true=exp.Literal.number(0))],
        default=exp.Div(this=exp.cast(num, _DOUBLE), expression=exp.cast(den, _DOUBLE)),
    )


def _count_fn(name: str, types: tuple[str, ...], doc: str, example: str) -> SegmentFunction:
    def build(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
        f = event_feature(ctx, "count", types, args["window"])
        return Built(zero_if_null(f), (f,))

    return SegmentFunction(name, (_WINDOW,), "number", doc, build, example)


# -- generic event aggregates ----------------------------------------------------------------
def _build_count(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    f = event_feature(ctx, "count", (args["event"],), args["window"])
    return Built(zero_if_null(f), (f,))


def _split_property(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``sum(order.completed.value[, w])`` → ``sum(order.completed, value[, w])``."""
    if (
        args
        and isinstance(args[0], ast.Name)
        and len(args[0].parts) >= 2
        and (len(args) == 1 or isinstance(args[1], ast.Duration))
    ):
        head = args[0]
        event = ast.Name(head.parts[:-1], line=head.line, column=head.column)
        prop = ast.String(head.parts[-1], line=head.line, column=head.column)
        return (event, prop, *args[1:])
    return args


def _agg_fn(agg: str, doc: str, example: str) -> SegmentFunction:
    def build(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
        prop = args["property"]
        if not _IDENT.match(prop):
            raise ValueError(f"property names are identifiers, not {prop!r}")
        f = event_feature(ctx, agg, (args["event"],), args["window"], value=property_value(prop))
        return Built(zero_if_null(f) if agg == "sum" else f.ref(), (f,))

    params = (Param("event", "event"), Param("property", "string"), _WINDOW)
    return SegmentFunction(agg, params, "number", doc, build, example, rearrange=_split_property)


# -- page views ------------------------------------------------------------------------------
def _build_visited(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    cond = exp.func("STARTS_WITH", exp.column("url"), exp.Literal.string(args["url"]))
    f = event_feature(ctx, "count", (PAGE_VIEW,), args["window"], extra=cond)
    return Built(exp.GT(this=zero_if_null(f), expression=exp.Literal.number(0)), (f,))


def _build_viewed_category(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    cond = exp.EQ(this=exp.column("category"), expression=exp.Literal.string(args["category"]))
    f = event_feature(ctx, "count", (PAGE_VIEW, PRODUCT_VIEW), args["window"], extra=cond)
    return Built(exp.GT(this=zero_if_null(f), expression=exp.Literal.number(0)), (f,))


def _build_category_events(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    cond = exp.EQ(this=exp.column("category"), expression=exp.Literal.string(args["category"]))
    f = event_feature(ctx, "count", (PAGE_VIEW, PRODUCT_VIEW, CLICKED), args["window"], extra=cond)
    return Built(zero_if_null(f), (f,))


# -- recency ---------------------------------------------------------------------------------
def _build_sends_since_open(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    # "No open in the last N sends" is "N or more sends since the latest open": one count
    # per contact, so no ranking of sends is needed and the result is the same in every engine.
    def upto(alias: str | None = None) -> exp.Expression:
        return exp.LTE(this=exp.column("occurred_at", alias), expression=ctx.as_of_literal())

    def is_type(name: str, alias: str | None = None) -> exp.Expression:
        return exp.EQ(this=exp.column("type", alias), expression=exp.Literal.string(name))

    last_open = (
        exp.select("contact_key", exp.Max(this=exp.column("occurred_at")).as_("opened_at"))
        .from_(EVENTS_TABLE)
        .where(exp.and_(is_type(OPENED), upto()))
        .group_by("contact_key")
    )
    after_open = exp.or_(
        exp.Is(this=exp.column("opened_at", "o"), expression=exp.null()),
        exp.GT(this=exp.column("occurred_at", "s"), expression=exp.column("opened_at", "o")),
    )
    sends = (
        exp.select(exp.column("contact_key", "s"), exp.Count(this=exp.Star()).as_("value"))
        .from_(exp.to_table(EVENTS_TABLE).as_("s"))
        .join(
            last_open.subquery("o"),
            on=exp.EQ(this=exp.column("contact_key", "o"), expression=exp.column("contact_key", "s")),
            join_type="left",
        )
        .where(exp.and_(is_type(SENT, "s"), upto("s"), after_open))
        .group_by(exp.column("contact_key", "s"))
    )
    f = Feature("joined", sends, moves=lambda t0, t1: _occurred_between((SENT, OPENED), t0, t1))
    return Built(zero_if_null(f), (f,))


def _occurred_between(types: tuple[str, ...], t0, t1) -> exp.Select:
    """Contacts with an event of ``types`` in ``(t0, t1]``: what the upper bound as_of admits
    as the clock moves from t0 to t1."""
    return (
        exp.select("contact_key").from_(EVENTS_TABLE)
        .where(exp.and_(
            exp.In(this=exp.column("type"), expressions=[exp.Literal.string(t) for t in types]),
            exp.GT(this=exp.column("occurred_at"), expression=BuildContext.timestamp(t0)),
            exp.LTE(this=exp.column("occurred_at"), expression=BuildContext.timestamp(t1)),
        ))
    )


def _build_days_since(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    target = args["what"]
    if isinstance(target, Attribute):
        if target.type not in ("timestamp", "any"):
            raise ValueError(f"attr.{target.name} is not a date; days_since() needs one")
        at: exp.Expression = target.expr()
        if target.type == "any":
            at = exp.TryCast(this=at, to=exp.DataType.build("timestamptz"))
        features: tuple[Feature, ...] = (target.feature(),)
    else:
        f = event_feature(ctx, "last_at", (target,), None)
        at, features = f.ref(), (f,)
    # Epoch arithmetic renders in every dialect; as_of is a constant folded in Python.
    seconds = exp.Sub(this=ctx.as_of_epoch(), expression=exp.TimeToUnix(this=at))
    days = exp.Div(this=exp.paren(seconds), expression=exp.Literal.number("86400.0"))
    never = exp.cast(exp.Literal.string("Infinity"), _DOUBLE)
    return Built(exp.func("COALESCE", days, never), features)


# -- rates -----------------------------------------------------------------------------------
def _rate_fn(
    name: str, numerator: str, doc: str, example: str, *, unique: bool = False
) -> SegmentFunction:
    def build(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
        # Unique rates count each email once however often it was opened or clicked, so an
        # open rate is a share of sends (at most 1), as ESPs report it.
        num = event_feature(ctx, "campaigns" if unique else "count", (numerator,), args["window"])
        den = event_feature(ctx, "count", (SENT,), args["window"])
        return Built(_ratio(zero_if_null(num), zero_if_null(den)), (num, den))

    return SegmentFunction(name, (_WINDOW,), "number", doc, build, example)


# -- consent ---------------------------------------------------------------------------------
def _build_consentable(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    # The consent engine's own rule (sticky opt-outs, echoes, suppressions; default policy) at
    # the evaluation instant, so a segment never targets someone the gate would block.
    from segsync.consent.rules import consent_moves_sql, effective_status_sql

    effective = sqlglot.parse_one(
        effective_status_sql(
            channel=args["channel"], purpose=MARKETING, as_of=ctx.as_of, records_until=ctx.as_of,
            portable=ctx.dialect != "duckdb",
        ),
        read="duckdb",
    )
    latest = exp.select("contact_key", exp.column("status").as_("value")).from_(
        effective.subquery("effective")
    )
    # Named, not hashed: rendering the consent rule's SQL to hash it doubled a compile.
    f = Feature("joined", latest, alias=f"consentable_{args['channel'].encode().hex()}",
                moves=lambda t0, t1: sqlglot.parse_one(
        consent_moves_sql(channel=args["channel"], purpose=MARKETING, since=t0, until=t1),
        read="duckdb"))
    return Built(exp.EQ(this=f.ref(), expression=exp.Literal.string("subscribed")), (f,))


# -- segments, buckets, ranks ----------------------------------------------------------------
def _build_in_segment(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    return Built(ctx.segment(args["segment"]))


def _build_bucket(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
    salted = exp.DPipe(
        this=exp.DPipe(this=exp.Literal.string(args["salt"]), expression=exp.Literal.string(":")),
        expression=exp.column("contact_key"),
        safe=True,
    )
    digest = Feature("row", exp.func("MD5", salted))
    # First 8 hex digits → integer, by digit arithmetic: every engine has STRPOS and
    # SUBSTRING, not every engine parses hex, and the result must agree across engines.
    total: exp.Expression | None = None
    for i in range(8):
        digit = exp.Sub(
            this=exp.func(
                "STRPOS",
                exp.Literal.string("0123456789abcdef"),
                exp.Substring(this=digest.ref(), start=exp.Literal.number(i + 1),
                              length=exp.Literal.number(1)),
            ),
            expression=exp.Literal.number(1),
        )
        # BIGINT: the sum reaches 2**32, past a 32-bit INTEGER (PostgreSQL raises, Spark wraps).
        weight = exp.cast(exp.Literal.number(16 ** (7 - i)), exp.DataType.build("bigint"))
        term = exp.Mul(this=exp.paren(digit), expression=weight)
        total = term if total is None else exp.Add(this=total, expression=term)
    value = exp.Div(
        this=exp.cast(exp.paren(total), _DOUBLE),  # type: ignore[arg-type]
        expression=exp.cast(exp.Literal.number(2**32), _DOUBLE),
    )
    return Built(value, (digest,))


def _rank_fn(name: str, metric: str, doc: str, example: str) -> SegmentFunction:
    def build(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
        window = args["window"]
        if metric == "recency":
            f = event_feature(ctx, "last_at", (ORDER,), window)
            key: exp.Expression = f.ref()
        elif metric == "frequency":
            f = event_feature(ctx, "count", (ORDER,), window)
            key = zero_if_null(f)
        else:
            f = event_feature(ctx, "sum", (ORDER,), window, value=exp.column("value"))
            key = zero_if_null(f)
        # contact_key breaks ties so equal metrics split across tiles the same way every run.
        ntile = exp.Window(
            this=exp.func("NTILE", exp.Literal.number(5)),
            order=exp.Order(expressions=[
                exp.Ordered(this=key, desc=False, nulls_first=True),
                exp.Ordered(this=exp.column("contact_key"), desc=False, nulls_first=False),
            ]),
        )
        rank = Feature("row", ntile)
        return Built(rank.ref(), (f, rank))

    return SegmentFunction(name, (_WINDOW,), "number", doc, build, example)


def _buyer_rank_fn(name: str, metric: str, doc: str, example: str) -> SegmentFunction:
    def build(ctx: BuildContext, args: Mapping[str, Any]) -> Built:
        window = args["window"]
        count = event_feature(ctx, "count", (ORDER,), window)
        if metric == "recency":
            f = event_feature(ctx, "last_at", (ORDER,), window)
            key: exp.Expression = f.ref()
        elif metric == "frequency":
            f, key = count, zero_if_null(count)
        else:
            f = event_feature(ctx, "sum", (ORDER,), window, value=exp.column("value"))
            key = zero_if_null(f)
        buyer = exp.GT(this=zero_if_null(count), expression=exp.Literal.number(0))
        # Quintiles among buyers only: ranked over everyone, a list where most never ordered
        # would put every buyer in the top tiles and leave "at risk" or "hibernating" empty.
        ntile = exp.Window(
            this=exp.func("NTILE", exp.Literal.number(5)),
            partition_by=[buyer.copy()],
            order=exp.Order(expressions=[
                exp.Ordered(this=key, desc=False, nulls_first=True),
                exp.Ordered(this=exp.column("contact_key"), desc=False, nulls_first=False),
            ]),
        )
        rank = Feature("row", exp.Case(ifs=[exp.If(this=buyer, true=ntile)]))
        return Built(rank.ref(), (count, f, rank))

    return SegmentFunction(name, (_WINDOW,), "number", doc, build, example)


def standard_functions() -> list[SegmentFunction]:
    w = _WINDOW
    return [
        SegmentFunction(
            "count", (Param("event", "event"), w), "number",
            "Number of events of a type in the window (all history when omitted).",
            _build_count, 'count(cart.added, 24h) > 0 and count(order.completed, 24h) == 0',
        ),
        _agg_fn("sum", "Sum of a numeric event property (0 when none).",
                "sum(order.completed.value, 365d) > 500"),
        _agg_fn("min", "Smallest value of an event property (missing when none).",
                "min(order.completed.value, 365d) >= 20"),
        _agg_fn("max", "Largest value of an event property (missing when none).",
                'max("order.completed", "items", 90d) >= 3'),
        _agg_fn("avg", "Average of an event property (missing when none).",
                "avg(order.completed.value, 365d) > 80"),
        _count_fn("opens", (OPENED,), "Emails opened (email.opened events).",
                  "opens(30d) >= 5"),
        _count_fn("clicks", (CLICKED,), "Email clicks (email.clicked events).",
                  "clicks(30d) > 0"),
        _count_fn("sends", (SENT,), "Emails sent (email.sent events).", "sends(7d) < 3"),
        _count_fn("orders", (ORDER,), "Orders (order.completed events).", "orders(365d) >= 2"),
        SegmentFunction(
            "spend", (w,), "number", "Sum of order.completed values (0 when none).",
            lambda ctx, a: _agg_fn("sum", "", "").build(
                ctx, {"event": ORDER, "property": "value", "window": a["window"]}
            ),
            "spend(365d) > 500",
        ),
        SegmentFunction(
            "visited", (Param("url", "string"), w), "bool",
            "A page.viewed event whose url starts with the given URL or prefix.",
            _build_visited, 'visited("/vip-rewards", 30d)',
        ),
        SegmentFunction(
            "viewed_category", (Param("category", "string"), w), "bool",
            "A page.viewed or product.viewed event in the category.",
            _build_viewed_category, 'viewed_category("shoes", 14d)',
        ),
        SegmentFunction(
            "category_events", (Param("category", "string"), w), "number",
            "Views (page.viewed, product.viewed) and email clicks in the category.",
            _build_category_events, 'category_events("shoes", 30d) >= 2',
        ),
        SegmentFunction(
            "sends_since_open", (), "number",
            "Emails sent since the latest open (all sends when never opened; 0 without sends).",
            _build_sends_since_open, "sends_since_open() >= 3",
        ),
        SegmentFunction(
            "days_since", (Param("what", "event_or_attribute"),), "number",
            "Days (fractional) since the latest event of a type, or since a date attribute; "
            "+infinity when never.",
            _build_days_since, "days_since(email.opened) > 90",
        ),
        _rate_fn("open_rate", OPENED,
                 "Unique opens per send in the window: emails opened (by properties.campaign_id; "
                 "an event without one counts once) over emails sent (0 without sends).",
                 "open_rate(90d) >= 0.5", unique=True),
        _rate_fn("click_rate", CLICKED,
                 "Unique clicks per send in the window, counted like open_rate (0 without sends).",
                 "click_rate(90d) >= 0.1", unique=True),
        _rate_fn("conversion_rate", ORDER, "Orders per send in the window (0 without sends).",
                 "conversion_rate(90d) > 0.02"),
        SegmentFunction(
            "consentable", (Param("channel", "channel"),), "bool",
            "The consent engine's status for the channel (default policy, marketing) at as_of is "
            "subscribed: sticky opt-outs, echoes and suppressions applied; pending is not consent.",
            _build_consentable, 'consentable("email")',
        ),
        SegmentFunction(
            "in_segment", (Param("segment", "segment"),), "bool",
            "Membership of another segment in the same evaluation (after group resolution).",
            _build_in_segment, 'in_segment("vip") and not consentable("sms")',
        ),
        SegmentFunction(
            "bucket", (Param("salt", "string"),), "number",
            "Stable hash of salt and contact key in [0, 1): the same in every run and engine.",
            _build_bucket, 'bucket("spring-test") < 0.10',
        ),
        _rank_fn("rfm_recency", "recency",
                 "Quintile 1..5 of the latest order (5 = most recent; never ordered = 1).",
                 "rfm_recency() >= 4"),
        _rank_fn("rfm_frequency", "frequency",
                 "Quintile 1..5 of the number of orders (5 = most).", "rfm_frequency(365d) == 5"),
        _rank_fn("rfm_monetary", "monetary",
                 "Quintile 1..5 of order value (5 = highest spend).", "rfm_monetary() >= 4"),
        _buyer_rank_fn("buyer_recency", "recency",
                       "Quintile 1..5 of the latest order among contacts who ordered in the "
                       "window (5 = most recent); missing for the others.",
                       "buyer_recency(365d) >= 4"),
        _buyer_rank_fn("buyer_frequency", "frequency",
                       "Quintile 1..5 of the number of orders among buyers (5 = most); missing "
                       "for non-buyers.", "buyer_frequency(365d) >= 4"),
        _buyer_rank_fn("buyer_monetary", "monetary",
                       "Quintile 1..5 of order value among buyers (5 = highest); missing for "
                       "non-buyers.", "buyer_monetary(365d) >= 4"),
    ]


def default_registry() -> FunctionRegistry:
    """A registry holding the standard functions, for callers without a plugin host; a host
    registers them through :mod:`segsync.default_plugins.segment_functions`."""
    registry = FunctionRegistry()
    for fn in standard_functions():
        registry.register(fn)
    return registry

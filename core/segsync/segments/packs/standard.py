"""The standard segment packs, registered through the same hook a third party's packs use (by
:mod:`segsync.default_plugins.segment_packs`).

* ``engagement`` — email engagement tiers as an exclusive group with a catch-all.
* ``lifecycle`` — buyer stage, latest stage first, as an exclusive group.
* ``value`` — named RFM segments (quintiles among buyers) and a high-value segment.
* ``triggers`` — overlapping behavioural triggers: abandoned cart, win-back, loyalty,
  first purchase, category interest.

Thresholds follow common ESP practice; every window and threshold is a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..definitions import GroupDef
from . import PackParam, PackSegment, SegmentPack

ENGAGEMENT = SegmentPack(
    name="engagement",
    description="Email engagement tiers by open and click rate, and the inactive.",
    params=(
        PackParam("window", "duration", "90d", "Window of the open and click rates."),
        PackParam("high_open_rate", "number", 0.5, "Highly engaged: open rate at least this …"),
        PackParam("high_click_rate", "number", 0.1, "… and click rate at least this."),
        PackParam("moderate_open_rate", "number", 0.2,
                  "Moderately engaged: open rate at least this … (below it: low)"),
        PackParam("moderate_click_rate", "number", 0.02, "… and click rate at least this."),
        PackParam("inactive_window", "duration", "90d", "Inactive: no open in this window."),
    ),
    segments=(
        # Inactive comes first: without opens the rates are 0, which would read as "low".
        PackSegment("inactive", "No open in the inactive window",
                    "opens({inactive_window}) == 0", "engagement", 1),
        PackSegment("engaged-high", "Opens and clicks often",
                    "open_rate({window}) >= {high_open_rate} "
                    "and click_rate({window}) >= {high_click_rate}", "engagement", 2),
        # The upper bounds of the moderate tier are the high tier's thresholds: the group's
        # priority order applies them.
        PackSegment("engaged-moderate", "Opens and clicks now and then",
                    "open_rate({window}) >= {moderate_open_rate} "
                    "and click_rate({window}) >= {moderate_click_rate}", "engagement", 3),
        PackSegment("engaged-low", "Opens rarely",
                    "open_rate({window}) < {moderate_open_rate}", "engagement", 4),
        PackSegment("engaged-readers", "Opens but rarely clicks (the group's catch-all)",
                    None, "engagement"),
    ),
    groups={"engagement": GroupDef(description="Email engagement tier",
                                   catch_all="engaged-readers")},
)

LIFECYCLE = SegmentPack(
    name="lifecycle",
    description="Buyer stage, from new subscriber to lapsed customer (latest stage wins).",
    params=(
        PackParam("customer_window", "duration", "365d",
                  "Customer: ordered in this window; ordered only before it: lapsed."),
        PackParam("intent_window", "duration", "30d",
                  "Window of the deciding, considering and browsing signals."),
        PackParam("pricing_page", "string", "/pricing", "Considering: viewed this page …"),
        PackParam("compare_page", "string", "/compare", "… or this one."),
        PackParam("trial_page", "string", "/trial", "Deciding: a cart, a trial, or this page."),
        PackParam("new_days", "number", 30, "New subscriber: created this many days ago or less."),
    ),
    segments=(
        PackSegment("customer", "Ordered in the customer window",
                    "orders({customer_window}) >= 1", "lifecycle", 1),
        PackSegment("lapsed-customer", "Ordered before, but not in the customer window",
                    "orders() >= 1", "lifecycle", 2),
        PackSegment("deciding", "Cart or trial activity",
                    "count(cart.added, {intent_window}) > 0 "
                    "or count(cart.abandoned, {intent_window}) > 0 "
                    "or count(trial.started, {intent_window}) > 0 "
                    "or visited({trial_page}, {intent_window})", "lifecycle", 3),
        PackSegment("considering", "Viewed pricing or comparison pages",
                    "visited({pricing_page}, {intent_window}) "
                    "or visited({compare_page}, {intent_window})", "lifecycle", 4),
        PackSegment("new-subscriber", "Joined recently",
                    "days_since(attr.created_at) <= {new_days}", "lifecycle", 5),
        PackSegment("browsing", "Viewed pages or products",
                    "count(page.viewed, {intent_window}) > 0 "
                    "or count(product.viewed, {intent_window}) > 0", "lifecycle", 6),
        PackSegment("subscriber", "No recent shopping signal (the group's catch-all)",
                    None, "lifecycle"),
    ),
    groups={"lifecycle": GroupDef(description="Buyer stage", catch_all="subscriber")},
)

VALUE = SegmentPack(
    name="value",
    description="Named RFM segments (quintiles among buyers) and high-value customers.",
    params=(
        PackParam("rfm_window", "duration", "730d", "Orders counted for the RFM scores."),
        PackParam("min_spend", "number", 500, "High value: spent more than this …"),
        PackParam("spend_window", "duration", "365d", "… in this window …"),
        PackParam("min_opens", "number", 5, "… opened at least this many emails …"),
        PackParam("opens_window", "duration", "30d", "… in this window …"),
        PackParam("vip_page", "string", "/vip-rewards", "… and visited this page (or below it)."),
    ),
    segments=(
        PackSegment("champions", "Bought recently, often and the most",
                    "buyer_recency({rfm_window}) >= 4 and buyer_frequency({rfm_window}) >= 4 "
                    "and buyer_monetary({rfm_window}) >= 4", "rfm", 1),
        PackSegment("loyal", "Buy often, not long ago",
                    "buyer_frequency({rfm_window}) >= 4 and buyer_recency({rfm_window}) >= 3",
                    "rfm", 2),
        PackSegment("at-risk", "Bought often, but not for a while",
                    "buyer_recency({rfm_window}) <= 2 and buyer_frequency({rfm_window}) >= 3",
                    "rfm", 3),
        PackSegment("new-customers", "First and only order, recently",
                    "buyer_recency({rfm_window}) >= 4 and orders({rfm_window}) == 1", "rfm", 4),
        PackSegment("potential-loyalists", "Recent buyers who could buy more",
                    "buyer_recency({rfm_window}) >= 3", "rfm", 5),
        PackSegment("hibernating", "Bought rarely, long ago",
                    "buyer_recency({rfm_window}) <= 2", "rfm", 6),
        PackSegment("high-value", "Big spenders who read and visit the VIP page",
                    "spend({spend_window}) > {min_spend} and opens({opens_window}) >= {min_opens} "
                    "and visited({vip_page})"),
    ),
    # No catch-all: contacts without an order in the RFM window have no RFM segment.
    groups={"rfm": GroupDef(description="RFM segment (buyers in the RFM window)")},
)


def _interest(values: Mapping[str, Any]) -> Sequence[PackSegment]:
    return [
        PackSegment(
            f"interest-{category}",
            f"Viewed or clicked {category} repeatedly",
            f'category_events("{category}", {values["interest_window"]}) >= '
            f'{values["interest_min_events"]}',
        )
        for category in values["categories"]
    ]


TRIGGERS = SegmentPack(
    name="triggers",
    description="Behavioural triggers: abandoned cart, win-back, loyalty, first purchase, interest.",
    params=(
        PackParam("cart_window", "duration", "24h", "Cart abandoned: a cart in this window …"),
        PackParam("unopened_sends", "number", 3, "Win-back: no open in this many latest sends."),
        PackParam("loyalty_orders", "number", 3, "Loyalty: more than this many orders."),
        PackParam("new_days", "number", 30, "First purchase: created this many days ago or less."),
        PackParam("categories", "names", [], "Interest: one segment interest-NAME per category …"),
        PackParam("interest_window", "duration", "30d", "… counting views and clicks here …"),
        PackParam("interest_min_events", "number", 2, "… at least this many."),
    ),
    segments=(
        PackSegment("cart-abandoned", "A cart without an order since",
                    "(count(cart.added, {cart_window}) > 0 or count(cart.abandoned, {cart_window}) > 0) "
                    "and orders({cart_window}) == 0"),
        PackSegment("win-back", "Opened none of the latest sends",
                    "sends_since_open() >= {unopened_sends}"),
        PackSegment("loyalty", "Repeat buyers", "orders() > {loyalty_orders}"),
        PackSegment("first-purchase", "New subscribers who have not ordered yet",
                    "days_since(attr.created_at) <= {new_days} and orders() == 0"),
    ),
    dynamic=_interest,
)

PACKS = (ENGAGEMENT, LIFECYCLE, VALUE, TRIGGERS)


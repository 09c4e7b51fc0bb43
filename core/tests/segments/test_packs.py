"""Segment packs: expansion, parameters, hand-computed members on the segtestkit store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from segtestkit import ALICE, AS_OF, BOB, CAROL, DAVE, EVE, add_contact, add_event, day

from segsync import hookimpl
from segsync.config import ConfigError, load_config
from segsync.plugins import DuplicateRegistration, PluginHost
from segsync.segments import evaluate
from segsync.segments.packs import PackError, PackParam, PackSegment, SegmentPack, expand_packs
from segsync.segments.packs.standard import ENGAGEMENT, LIFECYCLE, PACKS, TRIGGERS, VALUE

STANDARD = {p.name: p for p in PACKS}


def memberships(con, pack: SegmentPack, **options) -> dict[str, set[str]]:
    segments, groups = pack.expand(options)
    evaluate(con, segments, groups, AS_OF)
    out: dict[str, set[str]] = {s.name: set() for s in segments}
    for name, key in con.execute("SELECT segment, contact_key FROM segment_membership").fetchall():
        out[name].add(key)
    return out


def test_engagement_tiers_by_hand(store) -> None:
    # alice: 7 opens and 2 clicks over 10 sends in 90d (70 %, 20 %); nobody else opened in 90d.
    assert memberships(store, ENGAGEMENT) == {
        "inactive": {BOB, CAROL, DAVE, EVE},
        "engaged-high": {ALICE},
        "engaged-moderate": set(),
        "engaged-low": set(),
        "engaged-readers": set(),
    }


def test_engagement_overrides_move_contacts_between_tiers(store) -> None:
    # carol's open 100 days ago counts in 120d: not inactive, but no sends in 90d → rate 0 → low.
    # alice's 20 % click rate is below a 30 % bar: moderate.
    got = memberships(store, ENGAGEMENT, inactive_window="120d", high_click_rate=0.3)
    assert got["inactive"] == {BOB, DAVE, EVE}
    assert got["engaged-low"] == {CAROL}
    assert got["engaged-moderate"] == {ALICE}
    assert got["engaged-high"] == set()


def test_expanded_rules_read_like_hand_written_ones() -> None:
    segments, groups = ENGAGEMENT.expand({"window": "60d", "high_open_rate": 0.4})
    rules = {s.name: s.rule for s in segments}
    assert rules["engaged-high"] == "open_rate(60d) >= 0.4 and click_rate(60d) >= 0.1"
    assert rules["engaged-readers"] is None
    assert groups["engagement"].catch_all == "engaged-readers"
    assert [s.priority for s in segments if s.group] == [1, 2, 3, 4, None]


def test_lifecycle_by_hand(store) -> None:
    got = memberships(store, LIFECYCLE)
    assert got["customer"] == {ALICE, BOB, CAROL}
    assert got["subscriber"] == {DAVE, EVE}
    # Only carol ordered in the last 7 days; alice and bob ordered before.
    got = memberships(store, LIFECYCLE, customer_window="7d")
    assert got["customer"] == {CAROL}
    assert got["lapsed-customer"] == {ALICE, BOB}


def test_lifecycle_intent_signals(store) -> None:
    add_contact(store, "fay@example.com", created_at=AS_OF - timedelta(days=3))
    add_event(store, DAVE, "page.viewed", day(2), url="/pricing/teams")
    add_event(store, EVE, "trial.started", day(1))
    got = memberships(store, LIFECYCLE)
    assert got["considering"] == {DAVE}
    assert got["deciding"] == {EVE}
    assert got["new-subscriber"] == {"fay@example.com"}
    # A custom pricing page: dave's view no longer counts, so he is browsing.
    got = memberships(store, LIFECYCLE, pricing_page="/plans")
    assert got["considering"] == set() and got["browsing"] == {DAVE}


def test_value_rfm_and_high_value_by_hand(store) -> None:
    # Buyers in 730d: alice (3 orders, 1550, latest day 10), bob (1, 80, day 30), carol (1, 50,
    # day 5). Quintiles over 3 buyers are tiles 1..3: R bob 1 alice 2 carol 3; F bob 1 carol 2
    # (tie broken by key) alice 3.
    got = memberships(store, VALUE)
    assert got["at-risk"] == {ALICE}
    assert got["hibernating"] == {BOB}
    assert got["potential-loyalists"] == {CAROL}
    assert got["champions"] == got["loyal"] == got["new-customers"] == set()
    # alice: 550 in 365d, 6 opens in 30d, /vip-rewards/faq viewed.
    assert got["high-value"] == {ALICE}
    assert memberships(store, VALUE, min_spend=600)["high-value"] == set()


def test_triggers_by_hand(store) -> None:
    add_contact(store, "fay@example.com", created_at=AS_OF - timedelta(days=3))
    add_event(store, ALICE, "email.clicked", day(1), category="shoes")
    got = memberships(store, TRIGGERS, categories=["shoes", "bags"])
    assert got["cart-abandoned"] == {BOB}  # cart 2 hours ago, no order since
    assert got["win-back"] == set()  # bob: 2 unopened sends, fewer than 3
    assert got["loyalty"] == set()  # alice has exactly 3 orders, not more
    assert got["first-purchase"] == {"fay@example.com"}
    assert got["interest-shoes"] == {ALICE}  # a product view and a click in 30d
    assert got["interest-bags"] == set()
    got = memberships(store, TRIGGERS, unopened_sends=2, loyalty_orders=2)
    assert got["win-back"] == {BOB}
    assert got["loyalty"] == {ALICE}
    assert "interest-shoes" not in got  # no categories by default


def test_destinations_map_each_segment_to_a_tag_or_list() -> None:
    segments, _ = ENGAGEMENT.expand(
        {"destinations": {"mc": {"tag": "eng: "}, "crm": {"list": True, "tag": False}}}
    )
    high = next(s for s in segments if s.name == "engaged-high")
    assert high.destinations["mc"].tag == "eng: engaged-high"
    assert high.destinations["crm"].list == "engaged-high" and high.destinations["crm"].tag is None


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"engagment": {}}, "unknown pack 'engagment'; did you mean 'engagement'?"),
        ({"engagement": {"windw": "30d"}}, "unknown parameter 'windw'; did you mean 'window'?"),
        ({"engagement": {"window": 90}}, "parameter 'window' is a duration"),
        ({"engagement": {"high_open_rate": "half"}}, "parameter 'high_open_rate' is a number"),
        ({"triggers": {"categories": ["x y"]}}, "parameter 'categories' is a list of names"),
        ({"engagement": {"destinations": {"mc": {"tags": True}}}}, "unknown key 'tags'; did you mean 'tag'?"),
        ({"engagement": {"enabled": "yes"}}, "enabled must be true or false"),
    ],
)
def test_bad_pack_tables_name_the_problem(tables, message) -> None:
    with pytest.raises(PackError) as err:
        expand_packs(tables, STANDARD)
    assert message in str(err.value)


def test_a_disabled_pack_adds_nothing() -> None:
    assert expand_packs({"engagement": {"enabled": False}}, STANDARD) == ([], {})


def test_string_parameters_cannot_change_a_rules_shape(store) -> None:
    # A quote in a page parameter stays inside the rule's string literal.
    segments, _ = LIFECYCLE.expand({"pricing_page": '/x") or true or visited("'})
    considering = next(s for s in segments if s.name == "considering")
    assert considering.rule.startswith('visited("/x\\") or true or visited(\\"", 30d)')
    assert memberships(store, LIFECYCLE, pricing_page='/x") or true or visited("')["considering"] == set()


WEBINARS = SegmentPack(
    name="engagement",
    description="A clash with the standard pack's name",
    params=(PackParam("window", "duration", "90d", "window"),),
    segments=(PackSegment("webinar-fans", "Attended", "count(webinar.attended, {window}) >= 2"),),
)


class ClashingPlugin:
    @hookimpl
    def segsync_register_segment_packs(self, register):
        register(WEBINARS)


def test_duplicate_pack_names_are_rejected_naming_both_plugins() -> None:
    host = PluginHost(load_entry_points=False)
    host.register(ClashingPlugin(), name="webinar-pack")
    with pytest.raises(DuplicateRegistration) as err:
        host.segment_packs()
    assert "'segsync.default_plugins.segment_packs'" in str(err.value)
    assert "'webinar-pack'" in str(err.value)


def test_host_lists_the_standard_packs() -> None:
    host = PluginHost(load_entry_points=False)
    assert sorted(host.segment_packs()) == ["engagement", "lifecycle", "triggers", "value"]


def test_config_expands_packs_and_checks_them(tmp_path) -> None:
    (tmp_path / "segsync.toml").write_text(
        '[connections.out]\ntype = "files"\noutput = "out/a"\n'
        '[packs.engagement]\nwindow = "30d"\n[packs.engagement.destinations.out]\ntag = true\n'
        '[[segments]]\nname = "gold"\nrule = "attr.tier == \\"gold\\""\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "segsync.toml", packs=STANDARD)
    names = [s.name for s in config.segments.segments]
    assert names == ["gold", "inactive", "engaged-high", "engaged-moderate", "engaged-low",
                     "engaged-readers"]
    assert config.segments.groups["engagement"].catch_all == "engaged-readers"
    assert config.segments.segments[2].destinations["out"].tag == "engaged-high"

    (tmp_path / "segsync.toml").write_text('[packs.engagement.destinations.nowhere]\ntag = true\n')
    with pytest.raises(ConfigError, match="names destinations that are not connections: nowhere"):
        load_config(tmp_path / "segsync.toml", packs=STANDARD)
    (tmp_path / "segsync.toml").write_text('[packs.lifecycl]\n')
    with pytest.raises(ConfigError, match="did you mean 'lifecycle'"):
        load_config(tmp_path / "segsync.toml", packs=STANDARD)
    (tmp_path / "segsync.toml").write_text(
        '[packs.engagement]\n[[segments]]\nname = "inactive"\nrule = "opens() == 0"\n'
    )
    with pytest.raises(ConfigError, match="'inactive' is declared under \\[\\[segments\\]\\] and by an enabled pack"):
        load_config(tmp_path / "segsync.toml", packs=STANDARD)

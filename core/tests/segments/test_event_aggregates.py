"""The event aggregation reads only the rows some feature needs, and equals the naive one."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from segsync.segments import SegmentDef, default_registry
from segsync.segments.event_aggregates import event_aggregates
from segsync.segments.query import build_query
from sqlglot import exp

from segtestkit import AS_OF, add_contact, add_event, create_store

RULES = {
    "engaged": "open_rate(7d) >= 0.5 and click_rate(30d) > 0",
    "recent": "opens(3d) >= 2 or days_since(email.opened) < 1",
    "vip": 'visited("/vip") and spend(10d) > 100',
    "shoes": 'viewed_category("shoes", 5d) and count(cart.added) > 0',
    "buyers": "orders() >= 2 and max(order.completed.value, 20d) > 50",
}


def _features():
    segs = [SegmentDef(name=n, rule=r) for n, r in RULES.items()]
    query = build_query(segs, {}, AS_OF, default_registry())
    return [f for f in query.features.values() if f.stage == "event"]


def test_unique_counts_and_filters_run_on_prefiltered_rows() -> None:
    # Before: one GROUP BY over every event up to as_of with COUNT(DISTINCT …) FILTER, which
    # DuckDB plans as a GROUP BY over all rows (the FILTER a grouping key).
    queries = event_aggregates(_features(), AS_OF)
    sql = [q.sql("duckdb") for q in queries]
    assert len(sql) == 2  # plain aggregates, unique counts over campaign_key
    assert not any(q.find(exp.Distinct) for q in queries)
    plain, unique = queries
    # Every FILTER is OR-ed into the WHERE: a page view off /vip and not about shoes, or a
    # year-old send, never reaches the GROUP BY.
    where = plain.args["where"].sql("duckdb")
    assert "STARTS_WITH(url, '/vip')" in where and "category = 'shoes'" in where
    assert [g.sql() for g in plain.args["group"].expressions] == ["contact_id"]
    inner = unique.find(exp.Subquery).this
    assert [g.sql() for g in inner.args["group"].expressions] == ["contact_id", "campaign_key"]
    assert "type IN ('email.clicked', 'email.opened')" in inner.args["where"].sql("duckdb")


_TYPES = ["email.sent", "email.opened", "email.clicked", "page.viewed", "product.viewed",
          "order.completed", "cart.added"]
_event = st.tuples(
    st.integers(0, 2),  # contact
    st.sampled_from(_TYPES),
    st.integers(-2 * 24, 40 * 24),  # hours before as_of (negative: after it)
    st.sampled_from([None, "c1", "c2", "c3"]),  # campaign
    st.sampled_from([None, "/vip", "/vip/faq", "/blog"]),
    st.sampled_from([None, "shoes", "bags"]),
    st.sampled_from([None, 20.0, 75.0, 300.0]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, max_size=30))
def test_split_aggregation_equals_one_naive_group_by(events) -> None:
    con = create_store()
    keys = [f"p{i}@example.com" for i in range(3)]
    for key in keys:
        add_contact(con, key)
    for who, type_, hours, campaign, url, category, value in events:
        add_event(con, keys[who], type_, AS_OF - timedelta(hours=hours), value=value, url=url,
                  category=category, properties={"campaign_id": campaign} if campaign else {})
    features = _features()
    naive = (
        exp.select("contact_id", *[f.expr.copy().as_(f.name) for f in features])
        .from_("events")
        .where(exp.LTE(this=exp.column("occurred_at"),
                       expression=exp.cast(exp.Literal.string(AS_OF.isoformat()), "timestamptz")))
        .group_by("contact_id")
    )
    split = exp.select("c.contact_id").from_(exp.to_table("contacts").as_("c"))
    for n, q in enumerate(event_aggregates(features, AS_OF)):
        split = split.join(q.subquery(f"s{n}"), on=f"s{n}.contact_id = c.contact_id",
                           join_type="left")
        split = split.select(*[f"s{n}.{c}" for c in q.named_selects if c != "contact_id"])
    # A contact the split queries skip (no row any FILTER admits) reads NULL where the naive
    # GROUP BY gives it 0 (a count): the builders read both as 0.
    same = " AND ".join(
        f"(n.{f.name} IS NOT DISTINCT FROM s.{f.name} OR (n.{f.name}::VARCHAR = '0' AND s.{f.name} IS NULL))"
        for f in features
    )
    differing = con.execute(
        f"SELECT count(*) FROM ({split.sql('duckdb')}) s "
        f"LEFT JOIN ({naive.sql('duckdb')}) n USING (contact_id) WHERE NOT ({same})"
    ).fetchall()[0][0]
    assert differing == 0

"""The diff's planning state (segsync.sync.planning): a plan that recomputes only the contacts whose
inputs moved plans exactly the changes a full recomputation plans, and a run where nothing
changed recomputes nobody."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync.consent import suppression
from segsync.consent.policies import DEFAULT
from segsync.consent.rules import EffectiveConsent
from segsync.default_plugins.consent_policies import CASL, STRICT_DOUBLE_OPT_IN
from segsync.segments import SegmentDef, SegmentsConfig
from segsync.segments.builtins import default_registry
from segsync.segments.memberships import evaluate_memberships
from segsync.store import Store
from segsync.sync.diff import DestinationDiff

from .conftest import rows

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
KEYS = [f"p{i}@example.com" for i in range(6)]
DESTINATIONS = ("crm", "files")
REGISTRY = default_registry()
POLICIES = {"default": DEFAULT, "strict": STRICT_DOUBLE_OPT_IN, "casl": CASL}


def _segments(variant: int) -> SegmentsConfig:
    """Four segments; ``variant`` changes the crm's mapping (a config change)."""
    crm_tag = {"tag": "Buyers"} if variant == 0 else {"tag": "Customers", "list": "shop"}
    return SegmentsConfig(segments=[
        SegmentDef(name="opener", rule="opens(3d) >= 1"),
        SegmentDef(name="buyer", rule="orders(10d) >= 1", destinations={"crm": crm_tag}),
        SegmentDef(name="german", rule='attr.country == "DE"',
                   destinations={"crm": {"attribute": "is_de"}, "files": {"attribute": "market", "value": "de"}}),
        SegmentDef(name="mailable", rule='consentable("email")', destinations={"files": {"tag": "ok"}}),
    ])


class World:
    """A store and what the next run is configured with."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.now = START
        self.variant = 0
        self.policy = {"crm": "default", "files": "casl"}
        self.countries: dict[str, str] = {}
        self.run_id = 0
        self.sequence = 0

    def apply(self, step: tuple) -> None:
        """One change, written as ingestion writes it (``updated_at``/``ingested_at``: now())."""
        kind, *args = step
        con = self.store.con
        if kind == "event":
            who, type_, hours = args
            self.sequence += 1
            con.execute(
                "INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, value, currency, "
                "campaign_key, contact_id) SELECT ?, ?, ?, 'src', ?, ?, 'EUR', ?, contact_id FROM contacts "
                "WHERE contact_key = ?",
                [KEYS[who], type_, self.now + timedelta(hours=hours), f"e{self.sequence}",
                 30.0 if type_ == "order.completed" else None, f"src-e{self.sequence}", KEYS[who]])
        elif kind == "contact":
            who, country, name = args
            con.execute(
                "INSERT INTO contacts (contact_key, country, first_name, first_seen_at, updated_at, updated_by) "
                "VALUES (?, ?, ?, now(), now(), 'src') ON CONFLICT (contact_key) DO UPDATE SET "
                "country = EXCLUDED.country, first_name = EXCLUDED.first_name, updated_at = now()",
                [KEYS[who], country, name])
        elif kind == "consent":  # from the source, or from a destination (an echo of a push, or not)
            who, status, method, hours, source = args
            con.execute(
                "INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source, method, "
                "ingested_at) VALUES (?, 'email', 'marketing', ?, ?, ?, ?, now())",
                [KEYS[who], status, self.now + timedelta(hours=hours), source, method])
        elif kind == "suppress":
            who, add = args
            if add:
                suppression.add(con, KEYS[who], source="test")
            else:
                suppression.remove(con, KEYS[who], removed_by="test")
        elif kind == "identity":  # the destination reports the person (drift, opt-outs sent there)
            who, dest, status = args
            con.execute("INSERT OR REPLACE INTO identities (connection, external_id, contact_key, properties, "
                        "seen_at) VALUES (?, ?, ?, ?, now())",
                        [dest, f"x-{KEYS[who]}", KEYS[who], f'{{"status": "{status}"}}'])
        elif kind == "clock":
            self.now += timedelta(hours=args[0])
        elif kind == "mapping":
            self.variant = 1 - self.variant
        elif kind == "policy":
            dest, name = args
            self.policy[dest] = name
        elif kind == "country":
            self.countries = {} if self.countries else {"DE": "strict"}

    def plans(self) -> dict[str, tuple[list, list, str]]:
        """One run: evaluate, then plan every destination with the shortcut and in full."""
        self.run_id += 1
        con = self.store.con
        memberships = evaluate_memberships(con, _segments(self.variant), self.now, REGISTRY, self.run_id)
        policies = {d: POLICIES[self.policy[d]] for d in DESTINATIONS}
        countries = {c: POLICIES[p] for c, p in self.countries.items()}
        plans = {}
        with EffectiveConsent.build(con, policies, countries, as_of=self.now, run_id=self.run_id,
                                    lazy=True) as lazy, \
                EffectiveConsent.build(con, policies, countries, as_of=self.now, run_id=self.run_id) as eager:
            for dest in DESTINATIONS:
                with DestinationDiff.build(con, dest, memberships, lazy, self.now) as shortcut:
                    fast = _changes(shortcut)
                    how = shortcut.planning
                with DestinationDiff.build(con, dest, memberships, eager) as full:
                    plans[dest] = (fast, _changes(full), how)
        return plans

    def acknowledge(self, dest: str, planned: list, how: str) -> None:
        """What a push leaves behind: ``ack`` (every change), ``half``, ``reject`` or nothing."""
        con = self.store.con
        for i, (key, op, status, _, tags, _, _, previous, action, digest, _) in enumerate(planned):
            if how == "none" or (how == "half" and i % 2):
                continue
            if how == "reject" and op == "upsert":
                con.execute("INSERT OR REPLACE INTO rejected (destination, contact_key, state_hash, reason, "
                            "run_id, rejected_at) VALUES (?, ?, ?, 'no', ?, now())", [dest, key, digest, self.run_id])
                continue
            con.execute("DELETE FROM acknowledged_memberships WHERE destination = ? AND contact_key = ?", [dest, key])
            if op == "delete":
                con.execute("DELETE FROM acknowledged WHERE destination = ? AND contact_key = ?", [dest, key])
                continue
            con.execute("INSERT OR REPLACE INTO acknowledged (destination, contact_key, state_hash, status, run_id, "
                        "acked_at) VALUES (?, ?, ?, ?, ?, now())", [dest, key, digest, status, self.run_id])
            for tag in tags:
                con.execute("INSERT INTO acknowledged_memberships VALUES (?, ?, ?, ?, now())",
                            [dest, key, tag, self.run_id])
            if status != previous:  # what echo detection reads (the consent rules' rule 1)
                con.execute("INSERT INTO status_changes (run_id, destination, contact_key, channel, purpose, "
                            "action, before_status, after_status, outcome, changed_at) VALUES "
                            "(?, ?, ?, 'email', 'marketing', ?, ?, ?, 'acknowledged', now())",
                            [self.run_id, dest, key, action, previous, status])


def _changes(diff: DestinationDiff) -> list[tuple]:
    return [(p.change.contact_key, p.change.op, p.change.status, p.change.attributes, p.change.tags,
             p.change.tags_add, p.change.tags_remove, p.change.previous_status, p.action, p.state_hash,
             p.change.consent_method)
            for batch in diff.batches(1000) for p in batch]


_who = st.integers(0, len(KEYS) - 1)
_data_step = st.one_of(
    st.tuples(st.just("event"), _who, st.sampled_from(["email.opened", "order.completed", "email.sent"]),
              st.integers(-12 * 24, 24)),
    st.tuples(st.just("contact"), _who, st.sampled_from(["DE", "US", "CA"]), st.sampled_from(["A", "B"])),
    st.tuples(st.just("consent"), _who, st.sampled_from(["opted_in", "opted_out", "pending", "bounced"]),
              st.sampled_from(["form", "api", "purchase", "double_opt_in"]), st.integers(-48, 2),
              st.sampled_from(["src", "src", "crm"])),
    st.tuples(st.just("suppress"), _who, st.booleans()),
    st.tuples(st.just("identity"), _who, st.sampled_from(DESTINATIONS),
              st.sampled_from(["subscribed", "unsubscribed"])),
    st.tuples(st.just("clock"), st.integers(1, 5 * 24)),
    st.tuples(st.just("clock"), st.integers(24 * 300, 24 * 800)),  # past CASL's implied consent
)
# Configuration changes (each re-plans everyone) are rarer than changes of the data.
_step = st.one_of(
    _data_step, _data_step, _data_step,
    st.tuples(st.just("mapping")),
    st.tuples(st.just("policy"), st.sampled_from(DESTINATIONS), st.sampled_from(sorted(POLICIES))),
    st.tuples(st.just("country")),
)
_run = st.tuples(st.lists(_step, max_size=4), st.sampled_from(["ack", "ack", "half", "reject", "none"]))


# Each run evaluates four rules and plans two destinations both ways (~0.5 s): few examples.
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(_run, min_size=3, max_size=4))
def test_the_shortcut_plans_exactly_what_a_full_recomputation_plans(tmp_path_factory, runs) -> None:
    with Store(tmp_path_factory.mktemp("planning") / "store.duckdb") as store:
        world = World(store)
        for key in KEYS[:4]:
            world.apply(("contact", KEYS.index(key), "US", "A"))
            world.apply(("consent", KEYS.index(key), "opted_in", "form", -1, "src"))
        for steps, acks in runs:
            for step in steps:
                world.apply(step)
            for dest, (fast, full, how) in world.plans().items():
                assert fast == full, (dest, how)
                world.acknowledge(dest, full, acks)


def test_a_run_where_nothing_changed_recomputes_nobody(store) -> None:
    world = World(store)
    for i in range(4):
        world.apply(("contact", i, "DE" if i % 2 else "US", "A"))
        world.apply(("consent", i, "opted_in", "form", -1, "src"))
    world.apply(("event", 1, "email.opened", -1))
    first = world.plans()
    assert {d: how for d, (_, _, how) in first.items()} == {
        "crm": "full (no previous plan)", "files": "full (no previous plan)"}
    for dest, (fast, full, _) in first.items():
        assert fast == full and len(fast) == 4
        world.acknowledge(dest, full, "ack")
    again = world.plans()
    assert {d: (fast, how) for d, (fast, _, how) in again.items()} == {
        "crm": ([], "incremental: 0 contacts recomputed"), "files": ([], "incremental: 0 contacts recomputed")}
    # Ann's new order: her desired state alone is recomputed, and she alone changes.
    world.apply(("event", 0, "order.completed", -1))
    third = world.plans()
    assert third["crm"][2] == "incremental: 1 contacts recomputed"
    assert [(c[0], c[8], c[5]) for c in third["crm"][0]] == [(KEYS[0], "update", ("Buyers",))]
    assert third["files"][0] == [] and third["files"][2] == "incremental: 1 contacts recomputed"


def test_a_mapping_or_policy_change_plans_everyone_again(store) -> None:
    world = World(store)
    world.apply(("contact", 0, "US", "A"))
    world.plans()
    world.apply(("mapping",))
    assert {d: how for d, (_, _, how) in world.plans().items()} == {
        "crm": "full (the destination's mapping, the rules or the consent policy changed)",
        # files's own mapping did not move, but the rules it is planned from did
        "files": "full (the destination's mapping, the rules or the consent policy changed)"}
    world.apply(("policy", "files", "strict"))
    assert {d: how for d, (_, _, how) in world.plans().items()} == {
        "crm": "incremental: 0 contacts recomputed",
        "files": "full (the destination's mapping, the rules or the consent policy changed)"}


def test_lazy_consent_derives_only_the_people_asked_about(store) -> None:
    world = World(store)
    for i in range(3):
        world.apply(("contact", i, "US", "A"))
        world.apply(("consent", i, "opted_in", "form", -1, "src"))
    with EffectiveConsent.build(store.con, {"crm": DEFAULT}, {}, as_of=START, run_id=1, lazy=True) as consent:
        assert consent.decisions("crm", [KEYS[1]])[KEYS[1]].status == "subscribed"
        assert rows(store, consent.status_sql("crm", "SELECT 'nobody' AS contact_key")) == [
            (KEYS[1], "subscribed", 2, "form", None, "default")]
        assert sorted(r[0] for r in rows(store, consent.status_sql("crm"))) == KEYS[:3]

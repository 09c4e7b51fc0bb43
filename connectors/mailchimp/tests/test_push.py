"""Pushing ContactChanges: batch upserts, tag diffs, opt-outs, compliance and erasure."""

from __future__ import annotations

import json

from segsync import ContactChange

from segsync_mailchimp.emulator import subscriber_hash
from segsync_mailchimp.writer import Writer

from .conftest import LIST_ID


def upsert(email, status="subscribed", previous=None, **kw):
    return ContactChange(email, "upsert", status, previous_status=previous, **kw)


def statuses(result):
    return {o.contact_key: o.status for o in result.outcomes}


def test_upserts_go_out_500_per_call_and_land_in_the_audience(emulator, connector):
    changes = [upsert(f"u{i:04d}@example.com", attributes={"first_name": f"F{i}", "company_size": i,
                                                          "industry": "not mapped"})
               for i in range(1201)]
    result = connector.write(changes)

    assert result.calls == 3
    batch_calls = emulator.calls("POST", r"^/lists/aud0001$")
    assert len(batch_calls) == 3
    assert [o.status for o in result.outcomes] == ["ok"] * 1201
    assert result.outcomes[5].external_id == subscriber_hash("u0005@example.com")
    member = emulator.state.member(LIST_ID, "u0007@example.com")
    assert (member.status, member.merge_fields["FNAME"], member.merge_fields["SIZE"]) == ("subscribed", "F7", 7)
    assert len(emulator.state.audiences[LIST_ID].members) == 1201


def test_mixed_batch_maps_each_error_to_its_record(emulator, connector):
    emulator.state.seed_member(LIST_ID, "cleaned@example.com", "cleaned")
    changes = [
        upsert("ok@example.com", attributes={"first_name": "Ann"}),
        upsert("not-an-address", attributes={"first_name": "X"}),
        upsert("size@example.com", attributes={"company_size": "many"}),
        upsert("cleaned@example.com"),
        upsert("ok2@example.com"),
    ]
    result = connector.write(changes)

    assert result.calls == 1
    assert statuses(result) == {"ok@example.com": "ok", "not-an-address": "rejected",
                                "size@example.com": "rejected", "cleaned@example.com": "rejected",
                                "ok2@example.com": "ok"}
    by_key = {o.contact_key: o for o in result.outcomes}
    assert by_key["not-an-address"].field == "email_address"
    assert by_key["size@example.com"].field == "SIZE"
    assert "Please enter a number" in by_key["size@example.com"].reason
    assert by_key["cleaned@example.com"].reason.startswith("Member In Compliance State")
    assert emulator.state.member(LIST_ID, "size@example.com") is None
    assert emulator.state.member(LIST_ID, "cleaned@example.com").status == "cleaned"


def test_tags_of_contacts_sent_in_a_batch_ride_in_their_entries(emulator, make_connector):
    # Mailchimp adds a batch entry's tags to new and existing members (creating a tag it does
    # not know) and, with sync_tags off, leaves their other tags alone: no tag call at all.
    emulator.keep_bodies = True
    connector = make_connector()
    emulator.state.seed_member(LIST_ID, "old@example.com", tags=["kept"])
    emails = [f"t{i:04d}@example.com" for i in range(1200)]
    first = connector.write([upsert(e, tags_add=("vip", "all") if i % 2 else ("all",)) for i, e in enumerate(emails)]
                            + [upsert("old@example.com", "unsubscribed", "subscribed", tags_add=("vip",))])

    assert first.calls == 3  # ceil(1201 / 500) batch-subscribe calls, nothing else
    assert [c.path for c in emulator.calls()] == [f"/lists/{LIST_ID}"] * 3
    assert set(statuses(first).values()) == {"ok"}
    bodies = [json.loads(c.body) for c in emulator.calls()]
    assert sorted(len(b["members"]) for b in bodies) == [201, 500, 500]
    assert {(b["sync_tags"], b["update_existing"]) for b in bodies} == {(False, True)}
    sent = {m["email_address"]: m for b in bodies for m in b["members"]}
    assert len(sent) == 1201
    assert sent["t0000@example.com"] == {"email_address": "t0000@example.com", "status": "subscribed",
                                         "merge_fields": {}, "tags": ["all"]}
    assert sent["t0001@example.com"]["tags"] == ["all", "vip"]
    assert sent["old@example.com"] == {"email_address": "old@example.com", "status": "unsubscribed",
                                       "merge_fields": {}, "tags": ["vip"]}
    sizes = {s.name: len(s.members) for s in emulator.state.audiences[LIST_ID].segments.values()}
    assert sizes == {"kept": 1, "vip": 601, "all": 1200}
    assert emulator.state.tag_names(LIST_ID, emulator.state.member(LIST_ID, "old@example.com")) == ["kept", "vip"]


def test_tag_only_diffs_use_bulk_segment_calls_and_create_each_tag_once(emulator, connector):
    emails = [f"t{i:04d}@example.com" for i in range(1200)]
    connector.write([upsert(e, tags_add=("vip",)) for e in emails])
    vip = next(s for s in emulator.state.audiences[LIST_ID].segments.values() if s.name == "vip")
    assert len(vip.members) == 1200

    emulator.reset_log()
    # members already acknowledged as subscribed: only memberships change, so no upsert at all
    second = connector.write(
        [upsert(e, previous="subscribed", tags_remove=("vip",)) for e in emails[:100]]
        + [upsert(e, previous="subscribed", tags_add=("churn-risk",)) for e in emails[100:700]]
    )
    assert statuses(second) == {e: "ok" for e in emails[:700]}
    assert [(c.method, c.path) for c in emulator.calls()].count(("POST", "/lists/aud0001")) == 0
    # tags listed once, churn-risk created once, then two churn-risk calls (500 + 100) and one
    # vip removal
    assert second.calls == 5
    assert len(emulator.calls("GET", r"/segments$")) == 1
    assert len(emulator.calls("POST", r"/segments$")) == 1
    assert len(vip.members) == 1100
    churn = next(s for s in emulator.state.audiences[LIST_ID].segments.values() if s.name == "churn-risk")
    assert len(churn.members) == 600
    assert emulator.state.tag_names(LIST_ID, emulator.state.member(LIST_ID, emails[0])) == []

    emulator.reset_log()
    third = connector.write([upsert(e, previous="subscribed", tags_add=("vip",)) for e in emails[:100]])
    assert third.calls == 1  # tag ids are cached: one vip call
    assert len(vip.members) == 1200


def test_contacts_with_the_same_tag_changes_share_write_batches(emulator, connector):
    # 1,000 known contacts, alternately entering "a" and leaving "b": cut in the order given,
    # each write batch of 500 would hold both kinds (4 tag calls); grouped by the tag changes
    # they need, one batch holds the 500 entering "a" and one the 500 leaving "b".
    emails = [f"g{i:04d}@example.com" for i in range(1000)]
    for email in emails:
        emulator.state.seed_member(LIST_ID, email, tags=["b"])
    result = connector.write([upsert(e, previous="subscribed", tags_add=("a",)) if i % 2 else
                              upsert(e, previous="subscribed", tags_remove=("b",)) for i, e in enumerate(emails)])

    assert set(statuses(result).values()) == {"ok"}
    assert result.calls == 4  # list tags, create "a", one call for "a" and one for "b"
    sizes = {s.name: len(s.members) for s in emulator.state.audiences[LIST_ID].segments.values()}
    assert sizes == {"a": 500, "b": 500}


def test_a_removal_for_a_contact_in_a_batch_goes_to_the_segment_endpoint(emulator, connector):
    gold = next(iter(emulator.state.seed_member(LIST_ID, "a@example.com", tags=["gold"]).tags))
    result = connector.write([upsert("a@example.com", previous="subscribed", attributes={"first_name": "Al"},
                                     tags_add=("silver",), tags_remove=("gold",))])
    assert statuses(result) == {"a@example.com": "ok"}
    # tag listing, the batch (carrying "silver"), the "gold" removal
    assert [(c.method, c.path) for c in emulator.calls()] == [
        ("GET", f"/lists/{LIST_ID}/segments"), ("POST", f"/lists/{LIST_ID}"),
        ("POST", f"/lists/{LIST_ID}/segments/{gold}")]
    assert emulator.state.tag_names(LIST_ID, emulator.state.member(LIST_ID, "a@example.com")) == ["silver"]


def test_batch_answers_leave_out_the_member_documents(emulator, connector):
    # The writer reads only a batch answer's errors: asking Mailchimp to leave out the member
    # documents (~440 KB per 500 members) saves sending and parsing them; errors still arrive.
    for i in range(600, 700):
        emulator.state.seed_member(LIST_ID, f"d{i:03d}@example.com")
    changes = ([upsert(f"d{i:03d}@example.com", tags_add=("vip",)) for i in range(600)] + [upsert("not-an-address")]
               + [upsert(f"d{i:03d}@example.com", previous="subscribed", tags_add=("vip",)) for i in range(600, 700)])
    result = connector.write(changes)

    assert statuses(result) == {**{f"d{i:03d}@example.com": "ok" for i in range(700)}, "not-an-address": "rejected"}
    subscribes = emulator.calls("POST", r"^/lists/aud0001$")
    assert [c.query.get("exclude_fields") for c in subscribes] == [["new_members,updated_members,_links"]] * 2
    tag_calls = emulator.calls("POST", r"/segments/\d+$")
    assert [c.query.get("exclude_fields") for c in tag_calls] == [["members_added,members_removed,_links"]]
    assert max(c.response_bytes for c in subscribes + tag_calls) < 1_000
    vip = next(s for s in emulator.state.audiences[LIST_ID].segments.values() if s.name == "vip")
    assert len(vip.members) == 700


def test_adds_and_removes_of_one_tag_share_a_call(emulator, connector):
    emulator.state.seed_member(LIST_ID, "a@example.com", tags=["gold"])
    emulator.state.seed_member(LIST_ID, "b@example.com")
    result = connector.write([upsert("a@example.com", previous="subscribed", tags_remove=("gold",)),
                              upsert("b@example.com", previous="subscribed", tags_add=("gold",))])
    assert result.calls == 2  # tag listing + one segment call with both lists
    assert emulator.state.tag_names(LIST_ID, emulator.state.member(LIST_ID, "b@example.com")) == ["gold"]
    assert emulator.state.tag_names(LIST_ID, emulator.state.member(LIST_ID, "a@example.com")) == []


def test_unsubscribe_and_complaint_become_unsubscribed(emulator, connector):
    emulator.state.seed_member(LIST_ID, "a@example.com")
    emulator.state.seed_member(LIST_ID, "b@example.com")
    result = connector.write([upsert("a@example.com", "unsubscribed", "subscribed"),
                              upsert("b@example.com", "complained", "subscribed")])
    assert statuses(result) == {"a@example.com": "ok", "b@example.com": "ok"}
    assert result.calls == 1
    assert emulator.state.member(LIST_ID, "a@example.com").status == "unsubscribed"
    assert emulator.state.member(LIST_ID, "b@example.com").status == "unsubscribed"


def test_a_newer_opt_in_after_an_opt_out_is_sent_as_pending(emulator, connector):
    emulator.state.seed_member(LIST_ID, "back@example.com", "unsubscribed")
    result = connector.write([upsert("back@example.com", "subscribed", "unsubscribed")])
    assert statuses(result) == {"back@example.com": "ok"}
    assert emulator.state.member(LIST_ID, "back@example.com").status == "pending"
    assert emulator.state.outbox == [("confirmation", LIST_ID, "back@example.com")]


def test_compliance_state_refusals_are_clear_record_errors(emulator, connector):
    emulator.state.seed_member(LIST_ID, "unsub@example.com", "unsubscribed")
    emulator.state.seed_member(LIST_ID, "bounced@example.com", "cleaned")
    result = connector.write([
        # confirmed consent is recorded, so subscribed is sent; Mailchimp still refuses it
        upsert("unsub@example.com", "subscribed", "unsubscribed", consent_method="double_opt_in"),
        # never acknowledged here, but cleaned in Mailchimp: the import is refused
        upsert("bounced@example.com", "subscribed", None),
    ])
    assert statuses(result) == {"unsub@example.com": "rejected", "bounced@example.com": "rejected"}
    for outcome in result.outcomes:
        assert outcome.reason.startswith("Member In Compliance State")
        assert "@example.com" not in outcome.reason
    assert emulator.state.member(LIST_ID, "unsub@example.com").status == "unsubscribed"
    assert emulator.state.member(LIST_ID, "bounced@example.com").status == "cleaned"


def test_no_consent_is_never_added_and_no_change_means_no_call(emulator, connector):
    emulator.state.seed_member(LIST_ID, "same@example.com")
    assert connector.write([]).calls == 0
    result = connector.write([upsert("new@example.com", "none", None),
                              upsert("same@example.com", "subscribed", "subscribed")])
    assert result.calls == 0
    assert emulator.calls() == []
    assert statuses(result) == {"new@example.com": "rejected", "same@example.com": "ok"}
    assert "no marketing consent" in result.outcomes[0].reason
    assert emulator.state.member(LIST_ID, "new@example.com") is None


def test_permanent_delete_forgets_the_address(emulator, connector):
    emulator.state.seed_member(LIST_ID, "erase@example.com", tags=["vip"])
    result = connector.write([ContactChange("erase@example.com", "delete", "none"),
                              ContactChange("never@example.com", "delete", "none")])
    assert statuses(result) == {"erase@example.com": "ok", "never@example.com": "ok"}  # 404: already gone
    assert sorted(c.path for c in emulator.calls("POST", "delete-permanent")) == sorted([
        f"/lists/{LIST_ID}/members/{subscriber_hash('erase@example.com')}/actions/delete-permanent",
        f"/lists/{LIST_ID}/members/{subscriber_hash('never@example.com')}/actions/delete-permanent",
    ])
    assert emulator.state.member(LIST_ID, "erase@example.com") is None

    again = connector.write([upsert("erase@example.com")])
    assert again.outcomes[0].status == "rejected"
    assert again.outcomes[0].reason.startswith("Forgotten Email Not Subscribed")


def test_merge_field_mode_writes_segment_names_into_one_field(emulator, make_connector):
    connector = make_connector(segments_as="merge_field")
    emulator.state.seed_member(LIST_ID, "a@example.com")
    result = connector.write([upsert("a@example.com", previous="subscribed", tags=("gold",),
                                     tags_add=("vip",), tags_remove=("gold",))])
    assert result.calls == 1
    assert emulator.state.member(LIST_ID, "a@example.com").merge_fields["SEGMENTS"] == "vip"
    assert emulator.state.audiences[LIST_ID].segments == {}


def _subscribers(n: int, prefix: str = "p") -> list[ContactChange]:
    return [ContactChange(f"{prefix}{i:05d}@example.com", "upsert", "subscribed", attributes={"first_name": f"F{i}"})
            for i in range(n)]


def test_write_batches_are_planned_as_the_connections_free_up(emulator, connector, monkeypatch):
    # A write of 12,000 changes is 24 write batches. The first 10 (one per connection) are
    # planned and sent at once; the 11th is planned only when one of them has finished, so when
    # the emulator takes the first batch no more than 10 × 500 changes have been planned (the
    # whole write was planned before any call, once).
    planned = []
    plan = Writer._plan
    monkeypatch.setattr(Writer, "_plan", lambda self, change: planned.append(change) or plan(self, change))
    seen_at_first_call = []
    subscribe = emulator.state.batch_subscribe

    def first_call_sees(*args, **kwargs):
        if not seen_at_first_call:
            seen_at_first_call.append(len(planned))
        return subscribe(*args, **kwargs)

    monkeypatch.setattr(emulator.state, "batch_subscribe", first_call_sees)
    reports = []
    result = connector.write(_subscribers(12_000), report=reports.append)

    assert seen_at_first_call[0] <= 10 * 500
    assert len(planned) == 12_000
    assert set(statuses(result).values()) == {"ok"} and len(result.outcomes) == 12_000
    assert result.calls == 24
    assert sorted(len(r) for r in reports) == [500] * 24
    assert len({o.contact_key for r in reports for o in r}) == 12_000
    assert len(emulator.state.audiences[LIST_ID].members) == 12_000


def test_a_failed_write_batch_in_the_middle_of_a_write_leaves_only_its_contacts_to_retry(emulator, make_connector):
    connector = make_connector(max_attempts=1)
    # The 16th batch-subscribe call fails (a 500, not tried again with max_attempts 1): its 500
    # contacts are retryable and reported as one write batch; every other one is ok and
    # acknowledged as its write batch finishes, before and after the failure.
    emulator.inject("error", error="InternalServerError", method="POST", path=rf"^/lists/{LIST_ID}$", skip=15)
    reports = []
    result = connector.write(_subscribers(12_000), report=reports.append)

    assert result.calls == 24
    assert [c.status for c in emulator.calls("POST")].count(500) == 1
    assert sorted(len(r) for r in reports) == [500] * 24
    failed = [r for r in reports if any(o.status != "ok" for o in r)]
    assert len(failed) == 1
    assert {o.status for o in failed[0]} == {"retryable"}
    assert "HTTP 500 Internal Server Error" in failed[0][0].reason
    assert {o.contact_key: o.status for r in reports for o in r} == statuses(result)
    assert list(statuses(result).values()).count("ok") == 11_500
    members = emulator.state.audiences[LIST_ID].members
    assert len(members) == 11_500
    assert not {subscriber_hash(o.contact_key) for o in failed[0]} & set(members)


def test_a_429_in_the_middle_of_a_write_is_waited_out_and_the_write_completes(emulator, connector):
    emulator.inject("error", error="TooManyRequests", method="POST", path=rf"^/lists/{LIST_ID}$", skip=12,
                    retry_after=0)
    reports = []
    result = connector.write(_subscribers(12_000), report=reports.append)

    assert [c.status for c in emulator.calls("POST")].count(429) == 1
    assert result.calls == 25
    assert set(statuses(result).values()) == {"ok"}
    assert sorted(len(r) for r in reports) == [500] * 24
    assert len(emulator.state.audiences[LIST_ID].members) == 12_000


def test_the_status_sent_follows_each_changes_status_previous_status_and_consent_method(emulator, make_connector):
    # The writer decides the status to send once per (status, previous status, consent
    # method): each combination below comes twice, interleaved, and each contact gets its own.
    emulator.keep_bodies = True
    connector = make_connector()
    cases = [
        ("subscribed", None, None, "subscribed"),
        ("subscribed", "unsubscribed", None, "pending"),  # an opt-out is lifted by confirmation only
        ("subscribed", "unsubscribed", "double_opt_in", "subscribed"),
        ("subscribed", "unsubscribed", "form", "pending"),
        ("subscribed", "cleaned", "double_opt_in", "subscribed"),
        ("complained", "subscribed", None, "unsubscribed"),
        ("none", "subscribed", None, "unsubscribed"),  # consent withdrawn: stop mailing
        ("none", "pending", None, "unsubscribed"),
        ("none", "unsubscribed", None, "unsubscribed"),
        ("none", None, None, None),  # never added
        ("sideways", None, None, None),  # unknown status: refused
    ]
    changes = [upsert(f"c{round_}-{i}@example.com", status, previous, consent_method=method,
                      attributes={"first_name": f"F{i}"})
               for round_ in range(2) for i, (status, previous, method, _) in enumerate(cases)]
    result = connector.write(changes)

    sent = {m["email_address"]: m["status"] for c in emulator.calls("POST", r"^/lists/aud0001$")
            for m in json.loads(c.body)["members"]}
    assert sent == {f"c{round_}-{i}@example.com": wanted for round_ in range(2)
                    for i, (*_, wanted) in enumerate(cases) if wanted is not None}
    refused = {o.contact_key: (o.field, o.reason) for o in result.outcomes if o.status == "rejected"}
    assert refused == {
        **{f"c{r}-9@example.com": ("status", "no marketing consent on record; the contact is not added to the "
                                             "Mailchimp audience") for r in range(2)},
        **{f"c{r}-10@example.com": ("status", "unknown subscription status 'sideways'") for r in range(2)},
    }


def test_batch_bodies_go_out_as_compact_json_holding_the_planned_members(emulator, make_connector):
    emulator.keep_bodies = True
    connector = make_connector()
    connector.write([upsert("ann@example.com", attributes={"first_name": "Ann", "company_size": 3,
                                                           "_private": "never sent"}, tags_add=("vip", "a"))])
    (call,) = emulator.calls("POST", r"^/lists/aud0001$")
    assert call.query["exclude_fields"] == ["new_members,updated_members,_links"]
    assert call.body == ('{"members":[{"email_address":"ann@example.com","status":"subscribed",'
                         '"merge_fields":{"FNAME":"Ann","SIZE":3},"tags":["a","vip"]}],'
                         '"update_existing":true,"sync_tags":false}')


def test_the_collector_is_paused_while_a_write_runs_and_back_after(emulator, connector, monkeypatch):
    # A write allocates a dozen objects a contact and no cycles; the collector's re-scans of
    # everything the process holds were half of the planning's and outcomes' CPU.
    import gc

    seen = []
    send = Writer._send
    monkeypatch.setattr(Writer, "_send", lambda self, plan: seen.append(gc.isenabled()) or send(self, plan))
    assert gc.isenabled()
    result = connector.write(_subscribers(1_200))
    assert seen == [False] * 3
    assert gc.isenabled()
    assert [o.status for o in result.outcomes] == ["ok"] * 1_200

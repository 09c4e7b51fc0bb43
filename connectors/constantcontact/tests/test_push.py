"""Pushing changes: the account's state after each write, the calls made, each outcome."""

from __future__ import annotations

import pytest

from segsync import ContactChange


def change(email, status="subscribed", attributes=None, **kw) -> ContactChange:
    return ContactChange(email, kw.pop("op", "upsert"), status, attributes or {}, **kw)


def _tags(emulator, contact) -> list[str]:
    return sorted(emulator.state.tags[t]["name"] for t in contact["taggings"])


def _lists(emulator, contact) -> list[str]:
    return sorted(emulator.state.lists[i]["name"] for i in contact["list_memberships"])


def test_a_new_contact_is_imported_into_the_audience_list_with_its_tags(emulator, connector) -> None:
    result = connector.write([change("dee@example.com", attributes={"first_name": "Dee", "company": "Acme",
                                                                    "plan": "gold"},
                                      tags=("vip", "b2b"), tags_add=("vip", "b2b"))])
    dee = emulator.state.by_email("dee@example.com")
    assert result.outcomes[0].status == "ok" and result.outcomes[0].external_id == dee["contact_id"]
    assert (dee["first_name"], dee["company_name"]) == ("Dee", "Acme")
    assert dee["email_address"]["permission_to_send"] == "implicit"
    assert _lists(emulator, dee) == ["segsync"] and _tags(emulator, dee) == ["b2b", "vip"]
    [imported] = emulator.bodies("POST", "/v3/activities/contacts_json_import")
    assert imported == {"import_data": [{"email": "dee@example.com", "first_name": "Dee",
                                              "company_name": "Acme"}],
                             "list_ids": [dee["list_memberships"][0]]}
    [tagged] = emulator.bodies("POST", "/v3/activities/contacts_taggings_add")
    assert tagged["source"] == {"contact_ids": [dee["contact_id"]]} and len(tagged["tag_ids"]) == 2
    assert result.calls == len(emulator.calls())


def test_segments_leave_and_enter_by_tag_and_contacts_are_grouped_per_tag_set(emulator, connector) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        emulator.state.seed_contact(email, lists=("segsync",), tags=("old",))
    ids = {e: emulator.state.by_email(e)["contact_id"] for e in ("a@example.com", "b@example.com", "c@example.com")}
    result = connector.write([
        change("a@example.com", tags_add=("new",), tags_remove=("old",), external_id=ids["a@example.com"]),
        change("b@example.com", tags_add=("new",), tags_remove=("old",), external_id=ids["b@example.com"]),
        change("c@example.com", tags_remove=("old",), external_id=ids["c@example.com"]),
    ])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "ok"]
    assert [_tags(emulator, emulator.state.by_email(e)) for e in ids] == [["new"], ["new"], []]
    assert len(emulator.calls("POST", "/v3/activities/contacts_taggings_add")) == 1
    assert len(emulator.calls("POST", "/v3/activities/contacts_taggings_remove")) == 1


def test_segments_as_lists(emulator, make_connector) -> None:
    connector = make_connector(segment_mode="lists")
    connector.write([change("dee@example.com", tags=("vip",), tags_add=("vip",))])
    dee = emulator.state.by_email("dee@example.com")
    assert _lists(emulator, dee) == ["segsync", "vip"] and dee["taggings"] == []
    connector.write([change("dee@example.com", tags_remove=("vip",), external_id=dee["contact_id"])])
    assert _lists(emulator, dee) == ["segsync"]


def test_an_unsubscribe_sets_the_permission_and_keeps_every_other_property(emulator, connector) -> None:
    # Regression: PUT /contacts/{id} nulls every property it omits.
    field = emulator.state.add_custom_field("plan")
    ann = emulator.state.seed_contact("ann@example.com", permission="explicit", lists=("segsync",),
                                      first_name="Ann", last_name="Lee", job_title="CTO", birthday_month=5,
                                      birthday_day=3)
    ann["custom_fields"] = [{"custom_field_id": field["custom_field_id"], "value": "gold"}]
    result = connector.write([change("ann@example.com", "unsubscribed", previous_status="subscribed")])
    assert result.outcomes[0].status == "ok"
    email = ann["email_address"]
    assert (email["permission_to_send"], email["opt_out_source"]) == ("unsubscribed", "Contact")
    assert email["opt_out_reason"] == "Unsubscribed in a connected system (segsync)"
    assert (ann["first_name"], ann["last_name"], ann["job_title"], ann["birthday_month"], ann["birthday_day"]) == (
        "Ann", "Lee", "CTO", 5, 3)
    assert ann["custom_fields"] == [{"custom_field_id": field["custom_field_id"], "value": "gold"}]
    assert ann["list_memberships"] == []
    # The same batch again changes nothing and writes nothing.
    before = len(emulator.calls("PUT"))
    again = connector.write([change("ann@example.com", "unsubscribed", previous_status="subscribed")])
    assert again.outcomes[0].status == "ok" and len(emulator.calls("PUT")) == before


@pytest.mark.parametrize(("status", "source", "reason"), [
    ("complained", "Contact", "Marked an email as spam in a connected system (segsync)"),
    ("cleaned", "Account", "Hard bounce in a connected system (segsync)"),
])
def test_complaints_are_the_contacts_opt_out_and_bounces_the_accounts(emulator, connector, status, source, reason) -> None:
    emulator.state.seed_contact("ann@example.com")
    connector.write([change("ann@example.com", status)])
    email = emulator.state.by_email("ann@example.com")["email_address"]
    assert (email["permission_to_send"], email["opt_out_source"], email["opt_out_reason"]) == (
        "unsubscribed", source, reason)


def test_opt_outs_are_written_before_anything_else(emulator, connector) -> None:
    emulator.state.seed_contact("ann@example.com")
    connector.write([change("new@example.com"), change("ann@example.com", "unsubscribed")])
    writes = [e.path for e in emulator.calls() if e.method in ("PUT", "POST")]
    assert writes[0].startswith("/v3/contacts/") and "/v3/activities/contacts_json_import" in writes[1:]


def test_an_opt_out_for_someone_not_in_constant_contact_creates_them_unsubscribed(emulator, connector) -> None:
    result = connector.write([change("ghost@example.com", "unsubscribed", {"first_name": "Gh"})])
    ghost = emulator.state.by_email("ghost@example.com")
    assert result.outcomes[0].status == "ok" and result.outcomes[0].external_id == ghost["contact_id"]
    assert (ghost["email_address"]["permission_to_send"], ghost["first_name"]) == ("unsubscribed", "Gh")
    # A later import by another tool leaves them unmailable.
    audience = emulator.state.add_list("other tool")["list_id"]
    connector.api.activity("/activities/contacts_json_import",
                           {"import_data": [{"email": "ghost@example.com"}], "list_ids": [audience]},
                           endpoint="other")
    assert ghost["email_address"]["permission_to_send"] == "unsubscribed" and ghost["list_memberships"] == []


def test_a_contact_who_unsubscribed_is_never_made_mailable_again(emulator, connector) -> None:
    emulator.state.seed_contact("bo@example.com", permission="unsubscribed", opt_out_source="Contact")
    result = connector.write([change("bo@example.com", attributes={"first_name": "Bo"}, consent_method="api")])
    [outcome] = result.outcomes
    assert outcome.status == "rejected"
    assert outcome.reason == ("unsubscribed in Constant Contact by the contact; Constant Contact lets only the "
                              "contact opt back in (its sign-up form or a resubscribe email)")
    bo = emulator.state.by_email("bo@example.com")
    assert bo["email_address"]["permission_to_send"] == "unsubscribed" and bo["list_memberships"] == []


def test_without_consent_a_mailable_contact_is_unsubscribed_by_the_account_and_nobody_is_created(
        emulator, connector) -> None:
    emulator.state.seed_contact("cy@example.com", lists=("segsync",))
    waiting = emulator.state.seed_contact("wy@example.com", permission="pending_confirmation", opt_in_source="Contact")
    result = connector.write([change("cy@example.com", "none", previous_status="subscribed"),
                              change("zed@example.com", "pending", tags_add=("vip",)),
                              change("wy@example.com", "pending")])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "ok"]
    email = emulator.state.by_email("cy@example.com")["email_address"]
    assert (email["permission_to_send"], email["opt_out_source"], email["opt_out_reason"]) == (
        "unsubscribed", "Account", "No marketing consent on record (segsync)")
    assert emulator.state.by_email("cy@example.com")["list_memberships"] == []
    assert emulator.state.by_email("zed@example.com") is None
    # Constant Contact's own confirmation under way is left alone.
    assert waiting["email_address"]["permission_to_send"] == "pending_confirmation"
    assert [e.path for e in emulator.calls("PUT")] == [f"/v3/contacts/{emulator.state.by_email('cy@example.com')['contact_id']}"]


def test_consent_given_again_restores_a_contact_the_account_unsubscribed(emulator, connector) -> None:
    emulator.state.seed_contact("cy@example.com", permission="unsubscribed", opt_out_source="Account",
                                first_name="Cy")
    [outcome] = connector.write([change("cy@example.com", previous_status="none", consent_method="double_opt_in",
                                        tags_add=("vip",))]).outcomes
    assert outcome.status == "ok"
    cy = emulator.state.by_email("cy@example.com")
    assert cy["email_address"]["permission_to_send"] == "explicit"
    assert (_lists(emulator, cy), _tags(emulator, cy), cy["first_name"]) == (["segsync"], ["vip"], "Cy")


def test_deletes_remove_the_contact_and_a_missing_one_is_already_gone(emulator, connector) -> None:
    ann = emulator.state.seed_contact("ann@example.com")
    result = connector.write([change("ann@example.com", op="delete", status="none"),
                              change("gone@example.com", op="delete", status="none")])
    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    assert ann["deleted_at"]
    [deleted] = emulator.bodies("POST", "/v3/activities/contact_delete")
    assert deleted == {"contact_ids": [ann["contact_id"]]}


def test_values_too_long_for_the_api_are_rejected_naming_the_field_and_the_rest_goes_through(
        emulator, connector) -> None:
    result = connector.write([change("long@example.com", attributes={"last_name": "x" * 51}),
                              change(("y" * 45) + "@example.com"),
                              change("fine@example.com", attributes={"last_name": "Fine"})])
    assert [(o.status, o.field) for o in result.outcomes] == [
        ("rejected", "last_name"), ("rejected", "email"), ("ok", None)]
    assert result.outcomes[0].reason == ("Constant Contact takes at most 50 characters in last_name; "
                                         "this value has 51")
    assert [r["email"] for r in emulator.bodies("POST", "/v3/activities/contacts_json_import")[0][
        "import_data"]] == ["fine@example.com"]


def test_a_missing_custom_field_is_rejected_until_check_fix_creates_it(emulator, make_connector) -> None:
    connector = make_connector(attribute_mapping={"plan": "cf:plan"})
    assert connector.check() == ["Constant Contact custom field 'plan' is missing; `segsync check --fix` creates it"]
    before = connector.schema_version()
    [outcome] = connector.write([change("ann@example.com", attributes={"plan": "gold"})]).outcomes
    assert (outcome.status, outcome.field) == ("rejected", "plan")
    assert emulator.state.by_email("ann@example.com") is None
    assert connector.fix() == ["created Constant Contact custom field 'plan'"]
    assert connector.check() == [] and connector.schema_version() != before
    [outcome] = connector.write([change("ann@example.com", attributes={"plan": "gold"})]).outcomes
    assert outcome.status == "ok"
    ann = emulator.state.by_email("ann@example.com")
    assert [f["value"] for f in ann["custom_fields"]] == ["gold"]


def test_an_address_the_import_refuses_is_rejected_by_name(emulator, connector) -> None:
    result = connector.write([change("chloé@example.com", tags_add=("vip",)), change("ann@example.com")])
    assert [(o.status, o.field) for o in result.outcomes] == [("rejected", "email"), ("ok", None)]
    assert result.outcomes[0].reason == ("Constant Contact's import did not take this address "
                                         "(the import reported 1 correctable_count)")


def test_a_failing_step_leaves_its_changes_retryable_and_the_others_done(emulator, make_connector) -> None:
    connector = make_connector(max_attempts=2, retry_wait_initial=0.01)
    emulator.state.seed_contact("ann@example.com")
    emulator.inject("status", 2, path="/v3/activities/contacts_json_import", status=503)
    result = connector.write([change("ann@example.com", "unsubscribed"), change("new@example.com")])
    assert [o.status for o in result.outcomes] == ["ok", "retryable"]
    assert "HTTP 503" in result.outcomes[1].reason
    assert emulator.state.by_email("ann@example.com")["email_address"]["permission_to_send"] == "unsubscribed"
    # Next run: sent again, done.
    assert [o.status for o in connector.write([change("new@example.com")]).outcomes] == ["ok"]


def test_a_large_write_is_split_into_imports_under_the_size_limit(emulator, make_connector) -> None:
    connector = make_connector(import_max_bytes=2_000)
    changes = [change(f"p{n}@example.com", attributes={"first_name": "x" * 40}) for n in range(60)]
    result = connector.write(changes)
    assert {o.status for o in result.outcomes} == {"ok"}
    imports = emulator.bodies("POST", "/v3/activities/contacts_json_import")
    assert len(imports) > 1 and sum(len(i["import_data"]) for i in imports) == 60
    assert len(emulator.state.contacts) == 60

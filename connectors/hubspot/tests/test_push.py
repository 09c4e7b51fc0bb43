"""Pushing to HubSpot: batch upserts keyed by email, segments as static lists and/or a
multi-checkbox property, opt-outs and subscriptions through the subscriptions API, deletion."""

from __future__ import annotations

from segsync import ContactChange

UPSERT = "/crm/v3/objects/contacts/batch/upsert"


def _outcomes(result):
    return {o.contact_key: (o.status, o.reason, o.field) for o in result.outcomes}


def test_attributes_are_upserted_by_email_in_one_call_per_100(emulator, connector) -> None:
    changes = [ContactChange(f"p{i:03d}@example.com", "upsert", "subscribed",
                             {"first_name": f"P{i}", "lifecycle_stage": "mql", "lead_status": "NEW",
                              "department": "Sales"}) for i in range(100)]
    result = connector.write(changes)
    assert {o.status for o in result.outcomes} == {"ok"}
    assert len(emulator.requests("POST", UPSERT)) == 1
    body = emulator.requests("POST", UPSERT)[0].body
    assert body["inputs"][0] == {"id": "p000@example.com", "idProperty": "email", "properties": {
        "firstname": "P0", "lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}}
    contact = emulator.state.contact_by_email("p007@example.com")
    assert contact.properties == {"email": "p007@example.com", "firstname": "P7",
                                  "lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"}
    # Each outcome carries HubSpot's record id; the call count is what segsync runs shows.
    assert result.outcomes[7].external_id == contact.id
    # The first write also reads the account's properties (values are checked before sending).
    assert result.calls == 2
    again = connector.write([ContactChange("p007@example.com", "upsert", "subscribed", {"first_name": "Pia"})])
    assert (again.outcomes[0].status, again.calls) == ("ok", 1)


def test_segments_become_static_list_memberships(emulator, connector) -> None:
    first = connector.write([
        ContactChange("ann@example.com", "upsert", "subscribed", {}, tags=("vip", "new"), tags_add=("vip", "new")),
        ContactChange("bo@example.com", "upsert", "subscribed", {}, tags=("vip",), tags_add=("vip",)),
    ])
    assert {o.status for o in first.outcomes} == {"ok"}
    assert emulator.state.member_emails("vip") == {"ann@example.com", "bo@example.com"}
    assert emulator.state.member_emails("new") == {"ann@example.com"}
    assert {lst.processing_type for lst in emulator.state.lists.values()} == {"MANUAL"}
    # Leaving a segment removes the member; the lists are found by name, not created again.
    second = connector.write([
        ContactChange("ann@example.com", "upsert", "subscribed", {}, tags=("new",), tags_remove=("vip",),
                      previous_status="subscribed")])
    assert second.outcomes[0].status == "ok"
    assert emulator.state.member_emails("vip") == {"bo@example.com"}
    assert len(emulator.state.lists) == 2
    assert len(emulator.requests("POST", "/crm/v3/lists$")) == 2


def test_a_mapped_list_is_used_and_a_missing_one_is_a_rejection_when_lists_are_not_created(emulator, make_connector) -> None:
    existing = emulator.state.create_list("Newsletter VIPs")
    connector = make_connector(list_mapping={"vip": existing.id}, create_lists=False)
    result = connector.write([
        ContactChange("ann@example.com", "upsert", "subscribed", {}, tags=("vip",), tags_add=("vip",)),
        ContactChange("bo@example.com", "upsert", "subscribed", {}, tags=("other",), tags_add=("other",)),
    ])
    assert _outcomes(result) == {
        "ann@example.com": ("ok", None, None),
        "bo@example.com": ("rejected", "HubSpot has no list named 'other' (create_lists is off; map it in "
                                       "list_mapping or create the list)", "tags"),
    }
    assert emulator.state.member_emails("Newsletter VIPs") == {"ann@example.com"}


def test_a_dynamic_list_of_the_segments_name_is_refused_not_written(emulator, connector) -> None:
    emulator.state.create_list("vip", processing_type="DYNAMIC")
    result = connector.write([ContactChange("ann@example.com", "upsert", "subscribed", {}, tags=("vip",),
                                            tags_add=("vip",))])
    assert result.outcomes[0].status == "rejected" and result.outcomes[0].field == "tags"
    assert "HubSpot list 'vip' is DYNAMIC" in result.outcomes[0].reason
    assert emulator.requests("PUT") == []


def test_segment_mode_a_multi_checkbox_property_with_options_added_as_needed(emulator, make_connector) -> None:
    connector = make_connector(segment_mode="attribute")
    result = connector.write([
        ContactChange("ann@example.com", "upsert", "subscribed", {}, tags=("vip", "cart-recovery"), tags_add=("vip",)),
        ContactChange("bo@example.com", "upsert", "subscribed", {}, tags=()),
    ])
    assert {o.status for o in result.outcomes} == {"ok"}
    assert emulator.state.contact_by_email("ann@example.com").properties["segsync_segments"] == "cart-recovery;vip"
    assert emulator.state.contact_by_email("bo@example.com").properties["segsync_segments"] == ""
    options = [o["value"] for o in emulator.state.properties["segsync_segments"]["options"]]
    assert options == ["cart-recovery", "vip"]
    assert emulator.state.lists == {}  # property mode writes no lists


def test_without_the_segment_attribute_check_says_so_and_fix_creates_it(emulator, make_connector) -> None:
    del emulator.state.properties["segsync_segments"]
    connector = make_connector(segment_mode="both")
    assert connector.check() == ["HubSpot contact property segsync_segments is missing; `segsync check --fix` creates it"]
    assert connector.fix() == ["created HubSpot contact property segsync_segments (multiple checkboxes)"]
    definition = emulator.state.properties["segsync_segments"]
    assert (definition["type"], definition["fieldType"]) == ("enumeration", "checkbox")
    assert connector.check() == []


def test_values_hubspot_would_refuse_are_rejected_by_field_and_the_rest_is_written(emulator, make_connector) -> None:
    connector = make_connector(attribute_mapping={"tier": "customer_tier"})
    result = connector.write([
        ContactChange("ann@example.com", "upsert", "subscribed", {"lifecycle_stage": "champion"}),
        ContactChange("bo@example.com", "upsert", "subscribed", {"tier": "gold"}),
        ContactChange("cy@example.com", "upsert", "subscribed", {"first_name": "Cy"}),
    ])
    assert _outcomes(result) == {
        "ann@example.com": ("rejected", "'champion' is not one of the options of HubSpot property 'lifecyclestage'",
                            "lifecycle_stage"),
        "bo@example.com": ("rejected", "HubSpot has no contact property 'customer_tier'", "tier"),
        "cy@example.com": ("ok", None, None),
    }
    assert [len(e.body["inputs"]) for e in emulator.requests("POST", UPSERT)] == [1]


def test_a_batch_hubspot_refuses_is_split_until_the_bad_input_is_named(emulator, connector) -> None:
    changes = [ContactChange(f"p{i}@example.com", "upsert", "subscribed", {}) for i in range(7)]
    # An address segsync accepts but HubSpot refuses refuses the whole batch (400).
    changes.insert(5, ContactChange("odd@localhost", "upsert", "subscribed", {"first_name": "Odd"}))
    result = connector.write(changes)
    outcomes = _outcomes(result)
    assert outcomes.pop("odd@localhost") == (
        "rejected", "HTTP 400: Property values were not valid: email 'odd@localhost' is not a valid email address",
        "email")
    assert set(outcomes.values()) == {("ok", None, None)}
    assert [len(e.body["inputs"]) for e in emulator.requests("POST", UPSERT)] == [8, 4, 4, 2, 1, 1, 2]
    assert emulator.state.contact_by_email("odd@localhost") is None


def test_an_opt_out_unsubscribes_from_all_email_once(emulator, connector) -> None:
    emulator.state.add_contact("ann@example.com")
    change = ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed")
    assert connector.write([change]).outcomes[0].status == "ok"
    assert "ann@example.com" in emulator.state.opted_out_of_all
    assert emulator.state.contact_by_email("ann@example.com").properties["hs_email_optout"] == "true"
    (call,) = emulator.requests("POST", "unsubscribe-all$")
    assert (call.query, call.body) == ("channel=EMAIL", {"inputs": ["ann@example.com"]})
    # Already opted out there (acknowledged): an attribute change sends no second unsubscribe.
    connector.write([ContactChange("ann@example.com", "upsert", "complained", {"first_name": "Ann"},
                                   previous_status="unsubscribed")])
    assert len(emulator.requests("POST", "unsubscribe-all$")) == 1


def test_consenting_contacts_are_subscribed_only_with_a_subscription_type(emulator, make_connector) -> None:
    make_connector().write([ContactChange("ann@example.com", "upsert", "subscribed", {})])
    assert emulator.requests(path="statuses/batch/write") == []
    connector = make_connector(subscription_id=1)
    connector.write([ContactChange("bo@example.com", "upsert", "subscribed", {}, consent_method="double_opt_in"),
                     ContactChange("cy@example.com", "upsert", "none", {})])
    (call,) = emulator.requests("POST", "statuses/batch/write")
    assert call.body == {"inputs": [{"subscriberIdString": "bo@example.com", "channel": "EMAIL",
                                     "statusState": "SUBSCRIBED", "subscriptionId": 1,
                                     "legalBasis": "CONSENT_WITH_NOTICE",
                                     "legalBasisExplanation": "Consent recorded by segsync"}]}
    assert emulator.state.statuses["bo@example.com"]["1"].status == "SUBSCRIBED"
    assert "cy@example.com" not in emulator.state.statuses
    # Consent gone: no consent on record for the type (not an opt-out the person did not make).
    connector.write([ContactChange("bo@example.com", "upsert", "none", {}, previous_status="subscribed")])
    assert emulator.requests("POST", "statuses/batch/write")[-1].body == {"inputs": [
        {"subscriberIdString": "bo@example.com", "channel": "EMAIL", "statusState": "NOT_SPECIFIED", "subscriptionId": 1}]}
    assert emulator.state.statuses["bo@example.com"]["1"].status == "NOT_SPECIFIED"
    assert "bo@example.com" not in emulator.state.opted_out_of_all


def test_delete_is_a_gdpr_delete_for_known_and_unknown_addresses(emulator, connector) -> None:
    emulator.state.add_contact("ann@example.com")
    result = connector.write([ContactChange("ann@example.com", "delete", "none"),
                              ContactChange("gone@example.com", "delete", "none")])
    assert _outcomes(result) == {"ann@example.com": ("ok", None, None), "gone@example.com": ("ok", None, None)}
    assert emulator.state.deleted == ["ann@example.com", "gone@example.com"]
    assert emulator.state.contact_by_email("ann@example.com") is None
    assert [e.body for e in emulator.requests("POST", "gdpr-delete")] == [
        {"objectId": "ann@example.com", "idProperty": "email"},
        {"objectId": "gone@example.com", "idProperty": "email"}]


def test_without_enterprise_scopes_the_per_contact_subscription_endpoints_are_used(token, tmp_path) -> None:
    """HubSpot's batch subscription endpoints need Marketing Hub Enterprise; refused them (403),
    the connector reads and writes consent one contact at a time instead of failing."""
    from pydantic import SecretStr

    from segsync import Stream
    from segsync_hubspot import HubSpotConnector, HubSpotSettings
    from segsync_hubspot.emulator import HubSpotEmulator


    with HubSpotEmulator(access_token=token, batch_subscriptions=False) as emulator:
        emulator.state.add_contact("ann@example.com")
        emulator.state.add_contact("bo@example.com")
        wide = emulator.state.unsubscribe_all("bo@example.com")
        settings = HubSpotSettings(access_token=SecretStr(token), host=emulator.url, subscription_id=1)
        connector = HubSpotConnector("hubspot", settings, tmp_path)
        rows = [r for b in connector.read(Stream.CONSENT, None) for r in b.rows]
        result = connector.write([
            ContactChange("ann@example.com", "upsert", "unsubscribed", {}, previous_status="subscribed"),
            ContactChange("cy@example.com", "upsert", "subscribed", {}),
        ])
        connector.close()
        refused = [e.path for e in emulator.log if e.status == 403]
        paths = [(e.method, e.path) for e in emulator.log if e.status == 200 and "statuses" in e.path]
    assert [(r["email"], r["status"], r["timestamp"], r["evidence"]) for r in rows] == [
        ("bo@example.com", "opted_out", _iso(wide.timestamp), "HubSpot: unsubscribed from all email")]
    assert {o.status for o in result.outcomes} == {"ok"}
    assert "ann@example.com" in emulator.state.opted_out_of_all
    assert emulator.state.statuses["cy@example.com"]["1"].status == "SUBSCRIBED"
    # One refusal, then per-contact calls only.
    assert refused == ["/communication-preferences/v4/statuses/batch/unsubscribe-all/read"]
    assert paths == [
        ("GET", "/communication-preferences/v4/statuses/bo@example.com/unsubscribe-all"),
        ("GET", "/communication-preferences/v4/statuses/ann@example.com"),
        ("GET", "/communication-preferences/v4/statuses/bo@example.com"),
        ("POST", "/communication-preferences/v4/statuses/ann@example.com/unsubscribe-all"),
        ("POST", "/communication-preferences/v4/statuses/cy@example.com"),
    ]


def _iso(ms: int) -> str:
    from segsync_hubspot.emulator.state import iso

    return iso(ms)

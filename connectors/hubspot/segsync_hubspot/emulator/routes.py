"""HubSpot's endpoints over :class:`AccountState`: request JSON in, an answer's JSON out (or a
``(status, JSON)`` pair); :class:`ApiError` for HubSpot's error answers. server.py routes to them.

Only what the connector (and a user's dry run) needs: CRM contact search, batch upsert and GDPR
delete, contact properties, v3 static lists and v4 email subscription statuses. Shapes follow
HubSpot's OpenAPI specs (../shared/specs/hubspot-*.json) and its docs (see the README).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from segsync_hubspot.emulator.state import AccountState, ApiError, iso
from segsync_hubspot.limits import (
    BATCH_MAX,
    CONTACT_OBJECT_TYPE,
    SEARCH_FILTER_GROUPS_MAX,
    SEARCH_PAGE_MAX,
    SEARCH_RESULTS_MAX,
    SUBSCRIPTION_BATCH_MAX,
)

SEARCH_PATH = "/crm/v3/objects/contacts/search"
SUBSCRIPTION_BATCH_PATHS = "/communication-preferences/v4/statuses/batch/"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _batch(results: list[Any]) -> dict[str, Any]:
    started = _now()
    return {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}


def _inputs(body: Any, limit: int) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON: 'inputs' is required")
    inputs = body["inputs"]
    if len(inputs) > limit:
        raise ApiError(400, "VALIDATION_ERROR", f"Batch input must contain no more than {limit} inputs; got {len(inputs)}")
    return inputs


def _email_channel(query: dict[str, str]) -> None:
    if query.get("channel") != "EMAIL":
        raise ApiError(400, "VALIDATION_ERROR", "channel is required and must be EMAIL")


# -- contacts ------------------------------------------------------------------------------


def search(state: AccountState, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= SEARCH_PAGE_MAX:
        raise ApiError(400, "VALIDATION_ERROR", f"limit must be between 1 and {SEARCH_PAGE_MAX}")
    groups = body.get("filterGroups") or []
    if len(groups) > SEARCH_FILTER_GROUPS_MAX:
        raise ApiError(400, "VALIDATION_ERROR", f"at most {SEARCH_FILTER_GROUPS_MAX} filterGroups are allowed")
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        raise ApiError(400, "VALIDATION_ERROR", "only one sort is allowed")
    sort = None
    if sorts:
        first = sorts[0]
        if isinstance(first, str):  # the spec's form: "lastmodifieddate" or "-lastmodifieddate"
            sort = (first.lstrip("-"), not first.startswith("-"))
        else:
            sort = (first.get("propertyName"), first.get("direction", "ASCENDING") != "DESCENDING")
    after = int(body.get("after") or 0)
    if after >= SEARCH_RESULTS_MAX:
        raise ApiError(400, "VALIDATION_ERROR",
                       f"Search results are limited to {SEARCH_RESULTS_MAX} total results; cannot page past {after}")
    found = state.search(groups, sort)
    page = found[after:after + limit]
    names = body.get("properties") or None
    answer: dict[str, Any] = {"total": len(found), "results": [c.view(names) for c in page]}
    if after + limit < len(found):
        answer["paging"] = {"next": {"after": str(after + limit)}}
    return 200, answer


def upsert(state: AccountState, body: Any) -> tuple[int, Any]:
    inputs = _inputs(body, BATCH_MAX)
    results = []
    for contact, new in state.upsert(inputs):
        view = contact.view(["email", *sorted(contact.properties)])
        view["new"] = new
        results.append(view)
    return 200, _batch(results)


def gdpr_delete(state: AccountState, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("objectId"), str):
        raise ApiError(400, "VALIDATION_ERROR", "objectId is required")
    if body.get("idProperty") != "email":
        raise ApiError(400, "VALIDATION_ERROR", "the emulator deletes by idProperty=email only")
    state.gdpr_delete(body["objectId"])
    return 204, None


# -- properties ----------------------------------------------------------------------------


def get_property(state: AccountState, name: str) -> tuple[int, Any]:
    found = state.properties.get(name)
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
    return 200, found


def create_property(state: AccountState, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON")
    return 201, state.create_property(body)


def update_property(state: AccountState, name: str, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON")
    return 200, state.update_property(name, body)


# -- lists ---------------------------------------------------------------------------------


def create_list(state: AccountState, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        raise ApiError(400, "VALIDATION_ERROR", "name is required")
    if body.get("objectTypeId") != CONTACT_OBJECT_TYPE:
        raise ApiError(400, "VALIDATION_ERROR", "the emulator keeps contact lists (objectTypeId 0-1) only")
    if body.get("processingType") not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
        raise ApiError(400, "VALIDATION_ERROR", "processingType must be MANUAL, SNAPSHOT or DYNAMIC")
    return 200, {"list": state.create_list(body["name"], body["processingType"]).view()}


def list_by_name(state: AccountState, type_id: str, name: str) -> tuple[int, Any]:
    found = state.list_by_name(name) if type_id == CONTACT_OBJECT_TYPE else None
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"List with name {name} does not exist.")
    return 200, {"list": found.view()}


def get_list(state: AccountState, list_id: str) -> tuple[int, Any]:
    found = state.lists.get(list_id)
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
    return 200, {"list": found.view()}


def change_members(state: AccountState, list_id: str, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or not all(isinstance(body.get(k), list) for k in ("recordIdsToAdd", "recordIdsToRemove")):
        raise ApiError(400, "VALIDATION_ERROR", "recordIdsToAdd and recordIdsToRemove are required")
    ids = [*body["recordIdsToAdd"], *body["recordIdsToRemove"]]
    if not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "VALIDATION_ERROR", "record ids are strings")
    return 200, state.change_members(list_id, body["recordIdsToAdd"], body["recordIdsToRemove"])


# -- subscriptions (v4) --------------------------------------------------------------------


def definitions(state: AccountState) -> tuple[int, Any]:
    results = [{**s, "isActive": True, "isDefault": True, "isInternal": False, "communicationMethod": "EMAIL",
                "createdAt": iso(0), "updatedAt": iso(0)} for s in state.subscriptions]
    return 200, _batch(results)


def read_statuses(state: AccountState, query: dict[str, str], body: Any) -> tuple[int, Any]:
    _email_channel(query)
    results = []
    for email in _emails(body):
        held = state.statuses.get(email.lower(), {})
        results.append({"subscriberIdString": email,
                        "statuses": [state.status_view(email, sid, record) for sid, record in sorted(held.items())]})
    return 200, _batch(results)


def read_wide(state: AccountState, query: dict[str, str], body: Any) -> tuple[int, Any]:
    _email_channel(query)
    results = []
    for email in _emails(body):
        wide = state.opted_out_of_all.get(email.lower())
        statuses = [] if wide is None else [_wide_view(email, wide.timestamp)]
        results.append({"subscriberIdString": email, "wideStatuses": statuses})
    return 200, _batch(results)


def unsubscribe_all(state: AccountState, query: dict[str, str], body: Any) -> tuple[int, Any]:
    _email_channel(query)
    results = []
    for email in _emails(body):
        state.unsubscribe_all(email)
        held = state.statuses.get(email.lower(), {})
        results.append({"subscriberIdString": email,
                        "statuses": [state.status_view(email, sid, record) for sid, record in sorted(held.items())]})
    return 200, _batch(results)


def write_statuses(state: AccountState, body: Any) -> tuple[int, Any]:
    inputs = _inputs(body, SUBSCRIPTION_BATCH_MAX)
    for position, item in enumerate(inputs):
        if not isinstance(item, dict) or not isinstance(item.get("subscriberIdString"), str) \
                or item.get("channel") != "EMAIL" or item.get("statusState") not in ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED") \
                or not isinstance(item.get("subscriptionId"), int):
            raise ApiError(400, "VALIDATION_ERROR",
                           f"inputs[{position}]: subscriberIdString, channel EMAIL, statusState and subscriptionId are required")
    results = []
    for item in inputs:
        record = state.set_status(item["subscriberIdString"], str(item["subscriptionId"]), item["statusState"],
                                  legal_basis=item.get("legalBasis"))
        results.append(state.status_view(item["subscriberIdString"], str(item["subscriptionId"]), record))
    return 200, _batch(results)


def read_status(state: AccountState, query: dict[str, str], email: str) -> tuple[int, Any]:
    _email_channel(query)
    held = state.statuses.get(email.lower(), {})
    return 200, _batch([state.status_view(email, sid, record) for sid, record in sorted(held.items())])


def write_status(state: AccountState, email: str, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict) or body.get("channel") != "EMAIL" \
            or body.get("statusState") not in ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED") \
            or not isinstance(body.get("subscriptionId"), int):
        raise ApiError(400, "VALIDATION_ERROR", "channel EMAIL, statusState and subscriptionId are required")
    record = state.set_status(email, str(body["subscriptionId"]), body["statusState"], legal_basis=body.get("legalBasis"))
    return 200, _batch([state.status_view(email, str(body["subscriptionId"]), record)])


def read_one_wide(state: AccountState, query: dict[str, str], email: str) -> tuple[int, Any]:
    _email_channel(query)
    wide = state.opted_out_of_all.get(email.lower())
    return 200, _batch([] if wide is None else [_wide_view(email, wide.timestamp)])


def unsubscribe_one(state: AccountState, query: dict[str, str], email: str) -> tuple[int, Any]:
    _email_channel(query)
    state.unsubscribe_all(email)
    held = state.statuses.get(email.lower(), {})
    return 200, _batch([state.status_view(email, sid, record) for sid, record in sorted(held.items())])


def _wide_view(email: str, timestamp: int) -> dict[str, Any]:
    return {"channel": "EMAIL", "subscriberIdString": email, "status": "UNSUBSCRIBED",
            "wideStatusType": "PORTAL_WIDE", "timestamp": iso(timestamp)}


def _emails(body: Any) -> list[str]:
    inputs = _inputs(body, SUBSCRIPTION_BATCH_MAX)
    if not all(isinstance(i, str) for i in inputs):
        raise ApiError(400, "VALIDATION_ERROR", "inputs are email addresses")
    return inputs

"""HubSpot's endpoints over :class:`AccountState`: request JSON in, ``(status, JSON)`` out.

Only what the connector (and a user's dry run) needs: CRM contact search, batch upsert and GDPR
delete, contact properties, v3 static lists and v4 email subscription statuses. Shapes follow
HubSpot's OpenAPI specs (../shared/specs/hubspot-*.json) and its docs (see the README).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from segsync_hubspot.emulator.state import AccountState, ApiError, iso
from segsync_hubspot.limits import (
    BATCH_MAX,
    CONTACT_OBJECT_TYPE,
    SEARCH_FILTER_GROUPS_MAX,
    SEARCH_PAGE_MAX,
    SEARCH_RESULTS_MAX,
    SUBSCRIPTION_BATCH_MAX,
)

Handler = Callable[[AccountState, dict[str, str], Any, re.Match[str]], tuple[int, Any]]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []

SEARCH_PATH = "/crm/v3/objects/contacts/search"
SUBSCRIPTION_BATCH_PATHS = "/communication-preferences/v4/statuses/batch/"


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}$"), handler))
        return handler

    return register


def dispatch(state: AccountState, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    for wanted, pattern, handler in ROUTES:
        match = pattern.match(path)
        if match and wanted == method:
            return handler(state, query, body, match)
    raise ApiError(404, "NOT_FOUND", f"No route for {method} {path}")


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


@route("POST", SEARCH_PATH)
def search(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
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


@route("POST", "/crm/v3/objects/contacts/batch/upsert")
def upsert(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    inputs = _inputs(body, BATCH_MAX)
    results = []
    for contact, new in state.upsert(inputs):
        view = contact.view(["email", *sorted(contact.properties)])
        view["new"] = new
        results.append(view)
    return 200, _batch(results)


@route("POST", "/crm/v3/objects/contacts/gdpr-delete")
def gdpr_delete(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("objectId"), str):
        raise ApiError(400, "VALIDATION_ERROR", "objectId is required")
    if body.get("idProperty") != "email":
        raise ApiError(400, "VALIDATION_ERROR", "the emulator deletes by idProperty=email only")
    state.gdpr_delete(body["objectId"])
    return 204, None


# -- properties ----------------------------------------------------------------------------


@route("GET", "/crm/v3/properties/contacts")
def list_properties(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    return 200, {"results": list(state.properties.values())}


@route("GET", "/crm/v3/properties/contacts/(?P<name>[^/]+)")
def get_property(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    found = state.properties.get(unquote(match["name"]))
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find property {match['name']}")
    return 200, found


@route("POST", "/crm/v3/properties/contacts")
def create_property(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON")
    return 201, state.create_property(body)


@route("PATCH", "/crm/v3/properties/contacts/(?P<name>[^/]+)")
def update_property(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON")
    return 200, state.update_property(unquote(match["name"]), body)


# -- lists ---------------------------------------------------------------------------------


@route("POST", "/crm/v3/lists")
def create_list(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        raise ApiError(400, "VALIDATION_ERROR", "name is required")
    if body.get("objectTypeId") != CONTACT_OBJECT_TYPE:
        raise ApiError(400, "VALIDATION_ERROR", "the emulator keeps contact lists (objectTypeId 0-1) only")
    if body.get("processingType") not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
        raise ApiError(400, "VALIDATION_ERROR", "processingType must be MANUAL, SNAPSHOT or DYNAMIC")
    return 200, {"list": state.create_list(body["name"], body["processingType"]).view()}


@route("GET", "/crm/v3/lists/object-type-id/(?P<type>[^/]+)/name/(?P<name>[^/]+)")
def list_by_name(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    found = state.list_by_name(unquote(match["name"])) if match["type"] == CONTACT_OBJECT_TYPE else None
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"List with name {unquote(match['name'])} does not exist.")
    return 200, {"list": found.view()}


@route("GET", "/crm/v3/lists/(?P<id>[0-9]+)")
def get_list(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    found = state.lists.get(match["id"])
    if found is None:
        raise ApiError(404, "OBJECT_NOT_FOUND", f"List {match['id']} does not exist.")
    return 200, {"list": found.view()}


@route("PUT", "/crm/v3/lists/(?P<id>[0-9]+)/memberships/add-and-remove")
def change_members(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    if not isinstance(body, dict) or not all(isinstance(body.get(k), list) for k in ("recordIdsToAdd", "recordIdsToRemove")):
        raise ApiError(400, "VALIDATION_ERROR", "recordIdsToAdd and recordIdsToRemove are required")
    ids = [*body["recordIdsToAdd"], *body["recordIdsToRemove"]]
    if not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "VALIDATION_ERROR", "record ids are strings")
    return 200, state.change_members(match["id"], body["recordIdsToAdd"], body["recordIdsToRemove"])


# -- subscriptions (v4) --------------------------------------------------------------------


@route("GET", "/communication-preferences/v4/definitions")
def definitions(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    results = [{**s, "isActive": True, "isDefault": True, "isInternal": False, "communicationMethod": "EMAIL",
                "createdAt": iso(0), "updatedAt": iso(0)} for s in state.subscriptions]
    return 200, _batch(results)


@route("POST", "/communication-preferences/v4/statuses/batch/read")
def read_statuses(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    _email_channel(query)
    results = []
    for email in _emails(body):
        held = state.statuses.get(email.lower(), {})
        results.append({"subscriberIdString": email,
                        "statuses": [state.status_view(email, sid, record) for sid, record in sorted(held.items())]})
    return 200, _batch(results)


@route("POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all/read")
def read_wide(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    _email_channel(query)
    results = []
    for email in _emails(body):
        wide = state.opted_out_of_all.get(email.lower())
        statuses = [] if wide is None else [_wide_view(email, wide.timestamp)]
        results.append({"subscriberIdString": email, "wideStatuses": statuses})
    return 200, _batch(results)


@route("POST", "/communication-preferences/v4/statuses/batch/unsubscribe-all")
def unsubscribe_all(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
    _email_channel(query)
    results = []
    for email in _emails(body):
        state.unsubscribe_all(email)
        held = state.statuses.get(email.lower(), {})
        results.append({"subscriberIdString": email,
                        "statuses": [state.status_view(email, sid, record) for sid, record in sorted(held.items())]})
    return 200, _batch(results)


@route("POST", "/communication-preferences/v4/statuses/batch/write")
def write_statuses(state: AccountState, query: dict[str, str], body: Any, _: re.Match[str]) -> tuple[int, Any]:
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


@route("GET", "/communication-preferences/v4/statuses/(?P<email>[^/]+)")
def read_status(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    _email_channel(query)
    email = unquote(match["email"])
    held = state.statuses.get(email.lower(), {})
    return 200, _batch([state.status_view(email, sid, record) for sid, record in sorted(held.items())])


@route("POST", "/communication-preferences/v4/statuses/(?P<email>[^/]+)")
def write_status(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    if not isinstance(body, dict) or body.get("channel") != "EMAIL" \
            or body.get("statusState") not in ("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED") \
            or not isinstance(body.get("subscriptionId"), int):
        raise ApiError(400, "VALIDATION_ERROR", "channel EMAIL, statusState and subscriptionId are required")
    email = unquote(match["email"])
    record = state.set_status(email, str(body["subscriptionId"]), body["statusState"], legal_basis=body.get("legalBasis"))
    return 200, _batch([state.status_view(email, str(body["subscriptionId"]), record)])


@route("GET", "/communication-preferences/v4/statuses/(?P<email>[^/]+)/unsubscribe-all")
def read_one_wide(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    _email_channel(query)
    email = unquote(match["email"])
    wide = state.opted_out_of_all.get(email.lower())
    return 200, _batch([] if wide is None else [_wide_view(email, wide.timestamp)])


@route("POST", "/communication-preferences/v4/statuses/(?P<email>[^/]+)/unsubscribe-all")
def unsubscribe_one(state: AccountState, query: dict[str, str], body: Any, match: re.Match[str]) -> tuple[int, Any]:
    _email_channel(query)
    email = unquote(match["email"])
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

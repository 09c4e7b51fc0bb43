"""Requests onto the emulated account: validation as the API documents it, answers in its JSON."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from segsync_constantcontact.emulator.state import ApiError, ConstantContactState, iso
from segsync_constantcontact.limits import (
    ACTIVITY_MAX_CONTACT_IDS,
    ACTIVITY_MAX_TAGS,
    CONTACTS_PAGE_MAX,
    CUSTOM_FIELDS_PAGE_MAX,
    IMPORT_MAX_CONTACTS,
    IMPORT_MAX_LISTS,
    LISTS_PAGE_MAX,
    TAGS_PAGE_MAX,
)

INCLUDES = {"custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings", "notes"}
Answer = tuple[int, Any]
Handler = Callable[[ConstantContactState, Mapping[str, str], Any, re.Match], Answer]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^/v3{pattern}$"), handler))
        return handler
    return register


def dispatch(state: ConstantContactState, method: str, path: str, query: Mapping[str, str], body: Any) -> Answer:
    for verb, pattern, handler in ROUTES:
        found = pattern.match(path)
        if found and verb == method:
            with state.lock:
                state.advance()
                return handler(state, query, body, found)
    raise ApiError(404, "not_found", f"No resource at {method} {path}.")


def _limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    try:
        value = int(query.get("limit", default))
    except ValueError:
        raise ApiError(400, "limit.invalid", "limit must be a whole number.") from None
    if not 1 <= value <= maximum:
        raise ApiError(400, "limit.out_of_range", f"limit must be from 1 to {maximum}.")
    return value


def _page(items: list[Any], query: Mapping[str, str], path: str, default: int, maximum: int,
          filters: Mapping[str, str] | None = None) -> tuple[list[Any], dict]:
    """One page of ``items`` and the ``_links`` to the next (``cursor`` encodes the query)."""
    if "cursor" in query:
        try:
            saved = json.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
            offset, limit = int(saved["offset"]), int(saved["limit"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "cursor.invalid", "The cursor is not valid.") from None
    else:
        offset, limit = 0, _limit(query, default, maximum)
    page = items[offset:offset + limit]
    links: dict[str, Any] = {}
    if offset + limit < len(items):
        saved = dict(filters if filters is not None else query, offset=offset + limit, limit=limit)
        saved.pop("cursor", None)
        token = base64.urlsafe_b64encode(json.dumps(saved).encode()).decode()
        links = {"next": {"href": f"/v3{path}?cursor={token}"}}
    return page, links


def _query_of_cursor(query: Mapping[str, str]) -> Mapping[str, str]:
    """The original query a ``cursor`` carries (the next page filters the same way)."""
    if "cursor" not in query:
        return query
    try:
        saved = json.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
    except ValueError:
        raise ApiError(400, "cursor.invalid", "The cursor is not valid.") from None
    return {**{k: str(v) for k, v in saved.items() if k not in ("offset", "limit")}, "cursor": query["cursor"]}


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name}.invalid", f"{name} must be an ISO-8601 date-time.") from None
    if value.tzinfo is None:
        raise ApiError(400, f"{name}.invalid", f"{name} needs a time zone.")
    return value


def _include(query: Mapping[str, str]) -> set[str]:
    wanted = {part for part in (query.get("include") or "").split(",") if part}
    unknown = wanted - INCLUDES
    if unknown:
        raise ApiError(400, "include.invalid", f"include has an unknown value: {sorted(unknown)[0]}.")
    return wanted


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "body.invalid", "The request body must be a JSON object.")
    return body


def _ids(body: Mapping[str, Any], key: str, maximum: int, *, required: bool = True) -> list[str]:
    value = body.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key}.invalid", f"{key} must be an array of ids.")
    if required and not value:
        raise ApiError(400, f"{key}.empty", f"{key} needs at least one id.")
    if len(value) > maximum:
        raise ApiError(400, f"{key}.too_many", f"{key} takes at most {maximum} ids.")
    return value


# -- contacts ----------------------------------------------------------------------------------

@route("GET", "/contacts")
def get_contacts(state, query, body, match) -> Answer:
    original = _query_of_cursor(query)
    include = _include(original)
    lists = [part for part in (original.get("lists") or "").split(",") if part]
    if len(lists) > 25:
        raise ApiError(400, "lists.too_many", "lists takes at most 25 list ids.")
    found = state.search(email=original.get("email"), lists=lists,
                         updated_after=_when(original.get("updated_after"), "updated_after"),
                         status=original.get("status"))
    page, links = _page(found, query, "/contacts", 50, CONTACTS_PAGE_MAX, filters=original)
    out: dict[str, Any] = {"contacts": [state.view(c, include) for c in page]}
    if links:
        out["_links"] = links
    if original.get("include_count") == "true":
        out["contacts_count"] = len(found)
    return 200, out


@route("POST", "/contacts")
def post_contact(state, query, body, match) -> Answer:
    return 201, state.view(state.post_contact(_object(body)), set())


@route("GET", "/contacts/(?P<id>[^/]+)")
def get_contact(state, query, body, match) -> Answer:
    contact = state.contacts.get(match["id"])
    if contact is None:
        raise ApiError(404, "not_found", "The requested resource was not found.")
    return 200, state.view(contact, _include(query))


@route("PUT", "/contacts/(?P<id>[^/]+)")
def put_contact(state, query, body, match) -> Answer:
    body = _object(body)
    email = body.get("email_address")
    if email is not None and not (isinstance(email, dict) and isinstance(email.get("address"), str)):
        raise ApiError(400, "email_address.invalid", "email_address needs an address.")
    for prop in ("first_name", "last_name", "job_title", "company_name"):
        value = body.get(prop)
        if value is not None and (not isinstance(value, str) or len(value) > 50):
            raise ApiError(400, f"{prop}.invalid", f"{prop} is text of at most 50 characters.")
    return 200, state.view(state.put_contact(match["id"], body), {"custom_fields", "list_memberships", "taggings"})


# -- lists, tags, custom fields -----------------------------------------------------------------

def _collection(items: list[dict], key: str, query, path: str, maximum: int) -> Answer:
    page, links = _page(items, query, path, 50, maximum)
    out: dict[str, Any] = {key: page}
    if links:
        out["_links"] = links
    return 200, out


@route("GET", "/contact_lists")
def get_lists(state, query, body, match) -> Answer:
    return _collection(list(state.lists.values()), "lists", query, "/contact_lists", LISTS_PAGE_MAX)


@route("POST", "/contact_lists")
def post_list(state, query, body, match) -> Answer:
    name = _object(body).get("name")
    if not isinstance(name, str) or not name or len(name) > 255:
        raise ApiError(400, "name.invalid", "name is text of 1 to 255 characters.")
    return 201, state.add_list(name)


@route("GET", "/contact_tags")
def get_tags(state, query, body, match) -> Answer:
    return _collection(list(state.tags.values()), "tags", query, "/contact_tags", TAGS_PAGE_MAX)


@route("POST", "/contact_tags")
def post_tag(state, query, body, match) -> Answer:
    name = _object(body).get("name")
    if not isinstance(name, str):
        raise ApiError(400, "name.invalid", "name is required.")
    return 201, state.add_tag(name)


@route("GET", "/contact_custom_fields")
def get_custom_fields(state, query, body, match) -> Answer:
    return _collection(list(state.custom_fields.values()), "custom_fields", query, "/contact_custom_fields",
                       CUSTOM_FIELDS_PAGE_MAX)


@route("POST", "/contact_custom_fields")
def post_custom_field(state, query, body, match) -> Answer:
    body = _object(body)
    label, type_ = body.get("label"), body.get("type")
    if not isinstance(label, str) or not label or len(label) > 50 or not isinstance(type_, str):
        raise ApiError(400, "label.invalid", "label (1 to 50 characters) and type are required.")
    return 201, state.add_custom_field(label, type_)


# -- bulk activities -----------------------------------------------------------------------------

def _started(state: ConstantContactState, kind: str, body: dict[str, Any]) -> Answer:
    return 201, state.start_activity(kind, body).view()


@route("POST", "/activities/contacts_json_import")
def post_import(state, query, body, match) -> Answer:
    body = _object(body)
    rows = body.get("import_data")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ApiError(400, "import_data.invalid", "import_data must be an array of contacts.")
    if len(rows) > IMPORT_MAX_CONTACTS:
        raise ApiError(400, "import_data.too_many", f"import_data takes at most {IMPORT_MAX_CONTACTS} contacts.")
    for number, row in enumerate(rows, start=1):
        email = row.get("email")
        if isinstance(email, str) and len(email) > 50:
            raise ApiError(400, "email.too_long", f"import_data[{number}].email has more than 50 characters.")
        for prop in ("first_name", "last_name", "job_title", "company_name"):
            if isinstance(row.get(prop), str) and len(row[prop]) > 50:
                raise ApiError(400, f"{prop}.too_long", f"import_data[{number}].{prop} has more than 50 characters.")
    list_ids = _ids(body, "list_ids", IMPORT_MAX_LISTS)
    unknown = [i for i in list_ids if i not in state.lists]
    if unknown:
        raise ApiError(404, "list.not_found", f"List {unknown[0]} does not exist.")
    return _started(state, "contacts_json_import", body)


def _source_ids(body: dict[str, Any]) -> None:
    source = body.get("source")
    if not isinstance(source, dict) or set(source) != {"contact_ids"}:
        raise ApiError(400, "source.invalid", "The emulator takes source.contact_ids only.")
    _ids(source, "contact_ids", ACTIVITY_MAX_CONTACT_IDS)


@route("POST", "/activities/(?P<kind>add_list_memberships|remove_list_memberships)")
def post_list_activity(state, query, body, match) -> Answer:
    body = _object(body)
    _source_ids(body)
    list_ids = _ids(body, "list_ids", IMPORT_MAX_LISTS)
    unknown = [i for i in list_ids if i not in state.lists]
    if unknown:
        raise ApiError(404, "list.not_found", f"List {unknown[0]} does not exist.")
    return _started(state, match["kind"], body)


@route("POST", "/activities/(?P<kind>contacts_taggings_add|contacts_taggings_remove)")
def post_tagging_activity(state, query, body, match) -> Answer:
    body = _object(body)
    _source_ids(body)
    tag_ids = _ids(body, "tag_ids", ACTIVITY_MAX_TAGS)
    unknown = [i for i in tag_ids if i not in state.tags]
    if unknown:
        raise ApiError(404, "tag.not_found", f"Tag {unknown[0]} does not exist.")
    return _started(state, match["kind"], body)


@route("POST", "/activities/contact_delete")
def post_delete(state, query, body, match) -> Answer:
    body = _object(body)
    _ids(body, "contact_ids", ACTIVITY_MAX_CONTACT_IDS)
    return _started(state, "contact_delete", body)


@route("GET", "/activities/(?P<id>[^/]+)")
def get_activity(state, query, body, match) -> Answer:
    activity = state.activities.get(match["id"])
    if activity is None:
        raise ApiError(404, "not_found", "Resource not found for the activity_id provided.")
    return 200, activity.view()


__all__ = ["dispatch", "iso"]

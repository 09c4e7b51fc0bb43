"""The API's routes on the emulated account: validation as the API documents it, answers in its
JSON. A mixin of :class:`~segsync_constantcontact.emulator.server.ConstantContactEmulator`."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from segsync.testing.emulator import Answer, Request, route

from segsync_constantcontact.emulator.state import ApiError, ConstantContactState
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


def _limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    try:
        value = int(query.get("limit", default))
    except ValueError:
        raise ApiError(400, "limit.invalid", "limit must be a whole number.") from None
    if not 1 <= value <= maximum:
        raise ApiError(400, "limit.out_of_range", f"limit must be from 1 to {maximum}.")
    return value


def _decode(cursor: str) -> dict[str, Any]:
    try:
        saved = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        int(saved["offset"]), int(saved["limit"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "cursor.invalid", "The cursor is not valid.") from None
    return saved


def _filters(query: Mapping[str, str]) -> dict[str, str]:
    """The query a page filters by: the request's, or the one its ``cursor`` carries."""
    if "cursor" not in query:
        return dict(query)
    return {k: str(v) for k, v in _decode(query["cursor"]).items() if k not in ("offset", "limit")}


def _page(items: list[Any], query: Mapping[str, str], path: str, maximum: int) -> tuple[list[Any], dict]:
    """One page of ``items`` and the ``_links`` to the next (its ``cursor`` encodes the query)."""
    if "cursor" in query:
        saved = _decode(query["cursor"])
        offset, limit = int(saved["offset"]), int(saved["limit"])
    else:
        offset, limit = 0, _limit(query, 50, maximum)
    links: dict[str, Any] = {}
    if offset + limit < len(items):
        token = json.dumps({**_filters(query), "offset": offset + limit, "limit": limit})
        links = {"next": {"href": f"/v3{path}?cursor={base64.urlsafe_b64encode(token.encode()).decode()}"}}
    return items[offset:offset + limit], links


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


def _ids(body: Mapping[str, Any], key: str, maximum: int) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key}.invalid", f"{key} must be an array of ids.")
    if not value:
        raise ApiError(400, f"{key}.empty", f"{key} needs at least one id.")
    if len(value) > maximum:
        raise ApiError(400, f"{key}.too_many", f"{key} takes at most {maximum} ids.")
    return value


def _source_ids(body: Mapping[str, Any]) -> None:
    source = body.get("source")
    if not isinstance(source, dict) or set(source) != {"contact_ids"}:
        raise ApiError(400, "source.invalid", "The emulator takes source.contact_ids only.")
    _ids(source, "contact_ids", ACTIVITY_MAX_CONTACT_IDS)


def _known(ids: list[str], known: Mapping[str, Any], what: str) -> None:
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ApiError(404, f"{what}.not_found", f"{what.capitalize()} {unknown[0]} does not exist.")


def _collection(items: list[dict], key: str, query: Mapping[str, str], path: str, maximum: int) -> dict[str, Any]:
    page, links = _page(items, query, path, maximum)
    return {key: page, **({"_links": links} if links else {})}


class Routes:
    """The endpoints the connector uses, on ``self.state``. Every request first lets the
    activities that are due finish (they run asynchronously)."""

    state: ConstantContactState

    def _live(self) -> ConstantContactState:
        self.state.advance()
        return self.state

    # -- contacts ------------------------------------------------------------------------

    @route("GET", "/contacts")
    def get_contacts(self, request: Request) -> dict[str, Any]:
        state, query = self._live(), request.params
        filters = _filters(query)
        include = _include(filters)
        lists = [part for part in (filters.get("lists") or "").split(",") if part]
        if len(lists) > 25:
            raise ApiError(400, "lists.too_many", "lists takes at most 25 list ids.")
        with state.lock:
            found = state.search(email=filters.get("email"), lists=lists,
                                 updated_after=_when(filters.get("updated_after"), "updated_after"),
                                 status=filters.get("status"))
            page, links = _page(found, query, "/contacts", CONTACTS_PAGE_MAX)
            out: dict[str, Any] = {"contacts": [state.view(c, include) for c in page]}
        if links:
            out["_links"] = links
        if filters.get("include_count") == "true":
            out["contacts_count"] = len(found)
        return out

    @route("POST", "/contacts")
    def post_contact(self, request: Request) -> Answer:
        return Answer(201, self._live().view(self.state.post_contact(_object(request.body)), set()))

    @route("GET", "/contacts/{contact_id}")
    def get_contact(self, request: Request, contact_id: str) -> dict[str, Any]:
        state = self._live()
        contact = state.contacts.get(contact_id)
        if contact is None:
            raise ApiError(404, "not_found", "The requested resource was not found.")
        return state.view(contact, _include(request.params))

    @route("PUT", "/contacts/{contact_id}")
    def put_contact(self, request: Request, contact_id: str) -> dict[str, Any]:
        body = _object(request.body)
        email = body.get("email_address")
        if email is not None and not (isinstance(email, dict) and isinstance(email.get("address"), str)):
            raise ApiError(400, "email_address.invalid", "email_address needs an address.")
        for prop in ("first_name", "last_name", "job_title", "company_name"):
            value = body.get(prop)
            if value is not None and (not isinstance(value, str) or len(value) > 50):
                raise ApiError(400, f"{prop}.invalid", f"{prop} is text of at most 50 characters.")
        state = self._live()
        return state.view(state.put_contact(contact_id, body), {"custom_fields", "list_memberships", "taggings"})

    # -- lists, tags, custom fields ------------------------------------------------------

    @route("GET", "/contact_lists")
    def get_lists(self, request: Request) -> dict[str, Any]:
        return _collection(list(self._live().lists.values()), "lists", request.params, "/contact_lists",
                           LISTS_PAGE_MAX)

    @route("POST", "/contact_lists")
    def post_list(self, request: Request) -> Answer:
        name = _object(request.body).get("name")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ApiError(400, "name.invalid", "name is text of 1 to 255 characters.")
        return Answer(201, self._live().add_list(name))

    @route("GET", "/contact_tags")
    def get_tags(self, request: Request) -> dict[str, Any]:
        return _collection(list(self._live().tags.values()), "tags", request.params, "/contact_tags",
                           TAGS_PAGE_MAX)

    @route("POST", "/contact_tags")
    def post_tag(self, request: Request) -> Answer:
        name = _object(request.body).get("name")
        if not isinstance(name, str):
            raise ApiError(400, "name.invalid", "name is required.")
        return Answer(201, self._live().add_tag(name))

    @route("GET", "/contact_custom_fields")
    def get_custom_fields(self, request: Request) -> dict[str, Any]:
        return _collection(list(self._live().custom_fields.values()), "custom_fields", request.params,
                           "/contact_custom_fields", CUSTOM_FIELDS_PAGE_MAX)

    @route("POST", "/contact_custom_fields")
    def post_custom_field(self, request: Request) -> Answer:
        body = _object(request.body)
        label, type_ = body.get("label"), body.get("type")
        if not isinstance(label, str) or not label or len(label) > 50 or not isinstance(type_, str):
            raise ApiError(400, "label.invalid", "label (1 to 50 characters) and type are required.")
        return Answer(201, self._live().add_custom_field(label, type_))

    # -- bulk activities -----------------------------------------------------------------

    def _started(self, kind: str, body: dict[str, Any]) -> Answer:
        return Answer(201, self.state.start_activity(kind, body).view())

    @route("POST", "/activities/contacts_json_import")
    def post_import(self, request: Request) -> Answer:
        body = _object(request.body)
        rows = body.get("import_data")
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise ApiError(400, "import_data.invalid", "import_data must be an array of contacts.")
        if len(rows) > IMPORT_MAX_CONTACTS:
            raise ApiError(400, "import_data.too_many", f"import_data takes at most {IMPORT_MAX_CONTACTS} contacts.")
        for number, row in enumerate(rows, start=1):
            for prop in ("email", "first_name", "last_name", "job_title", "company_name"):
                if isinstance(row.get(prop), str) and len(row[prop]) > 50:
                    raise ApiError(400, f"{prop}.too_long", f"import_data[{number}].{prop} has more than 50 characters.")
        _known(_ids(body, "list_ids", IMPORT_MAX_LISTS), self._live().lists, "list")
        return self._started("contacts_json_import", body)

    @route("POST", "/activities/add_list_memberships")
    def post_add_list_memberships(self, request: Request) -> Answer:
        return self._list_activity("add_list_memberships", request)

    @route("POST", "/activities/remove_list_memberships")
    def post_remove_list_memberships(self, request: Request) -> Answer:
        return self._list_activity("remove_list_memberships", request)

    def _list_activity(self, kind: str, request: Request) -> Answer:
        body = _object(request.body)
        _source_ids(body)
        _known(_ids(body, "list_ids", IMPORT_MAX_LISTS), self._live().lists, "list")
        return self._started(kind, body)

    @route("POST", "/activities/contacts_taggings_add")
    def post_taggings_add(self, request: Request) -> Answer:
        return self._tagging_activity("contacts_taggings_add", request)

    @route("POST", "/activities/contacts_taggings_remove")
    def post_taggings_remove(self, request: Request) -> Answer:
        return self._tagging_activity("contacts_taggings_remove", request)

    def _tagging_activity(self, kind: str, request: Request) -> Answer:
        body = _object(request.body)
        _source_ids(body)
        _known(_ids(body, "tag_ids", ACTIVITY_MAX_TAGS), self._live().tags, "tag")
        return self._started(kind, body)

    @route("POST", "/activities/contact_delete")
    def post_delete(self, request: Request) -> Answer:
        body = _object(request.body)
        _ids(body, "contact_ids", ACTIVITY_MAX_CONTACT_IDS)
        self._live()
        return self._started("contact_delete", body)

    @route("GET", "/activities/{activity_id}")
    def get_activity(self, request: Request, activity_id: str) -> dict[str, Any]:
        activity = self._live().activities.get(activity_id)
        if activity is None:
            raise ApiError(404, "not_found", "Resource not found for the activity_id provided.")
        return activity.view()

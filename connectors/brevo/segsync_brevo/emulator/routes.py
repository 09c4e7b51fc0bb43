"""HTTP routes of the emulated API v3: (method, path pattern) -> state operation and status."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from segsync_brevo.emulator.state import BrevoState

Handler = Callable[[BrevoState, tuple[str, ...], dict[str, str], Any], tuple[int, Any]]

_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _ROUTES.append((method, re.compile(f"^{pattern}$"), fn))
        return fn

    return register


def dispatch(state: BrevoState, method: str, path: str, query: dict[str, str], body: Any):
    """(status, body), or None when the emulator does not implement the operation."""
    for route_method, pattern, fn in _ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return fn(state, tuple(unquote(g) for g in match.groups()), query, body)
    return None


@route("GET", r"/contacts")
def _get_contacts(state, _params, query, _body):
    return 200, state.get_contacts(query)


@route("POST", r"/contacts/batch")
def _batch(state, _params, _query, body):
    state.update_batch(body)
    return 204, None


@route("POST", r"/contacts/import")
def _import(state, _params, _query, body):
    return 202, state.import_contacts(body)


@route("GET", r"/contacts/attributes")
def _attributes(state, _params, _query, _body):
    return 200, state.get_attributes()


@route("POST", r"/contacts/attributes/([^/]+)/([^/]+)")
def _create_attribute(state, params, _query, body):
    state.create_attribute(params[0], params[1], body or {})
    return 201, None


@route("GET", r"/contacts/lists")
def _lists(state, _params, query, _body):
    return 200, state.get_lists(query)


@route("POST", r"/contacts/lists")
def _create_list(state, _params, _query, body):
    return 201, state.create_list(body)


@route("POST", r"/contacts/lists/(\d+)/contacts/add")
def _add(state, params, _query, body):
    return 201, state.add_to_list(int(params[0]), body)


@route("POST", r"/contacts/lists/(\d+)/contacts/remove")
def _remove(state, params, _query, body):
    return 201, state.remove_from_list(int(params[0]), body)


@route("GET", r"/contacts/folders")
def _folders(state, _params, query, _body):
    return 200, state.get_folders(query)


@route("POST", r"/contacts/folders")
def _create_folder(state, _params, _query, body):
    return 201, state.create_folder(body)


@route("DELETE", r"/contacts/([^/]+)")
def _delete(state, params, _query, _body):
    state.delete_contact(params[0])
    return 204, None


@route("GET", r"/processes/(\d+)")
def _process(state, params, _query, _body):
    return 200, state.get_process(int(params[0]))


@route("GET", r"/smtp/blockedContacts")
def _blocked(state, _params, query, _body):
    return 200, state.get_blocked(query)


@route("GET", r"/smtp/statistics/events")
def _events(state, _params, query, _body):
    return 200, state.get_events(query)

"""HubSpot's REST API over the shared HTTP kit (``segsync.http``): one method per endpoint the
connector uses, JSON in and out. No SDK: HubSpot's Python client is generated code we would
only wrap, and every call here is a plain JSON request.

Pacing: general endpoints answer with ``X-HubSpot-RateLimit-Remaining`` and
``-Interval-Milliseconds`` (the ten-second window), which the kit's pacer follows. Search
answers carry no rate-limit headers and search has its own per-second limit, so searches are
spaced here; a 429 is the kit's to retry either way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from segsync.http import HttpError, RateLimitHeaders, RatePacer, new_session, raise_for_status

from segsync_hubspot.limits import (
    CONTACT_OBJECT_TYPE,
    RATE_LIMIT_INTERVAL,
    RATE_LIMIT_REMAINING,
)
from segsync_hubspot.settings import HubSpotSettings

SEARCH_PATH = "/crm/v3/objects/contacts/search"
STATUSES = "/communication-preferences/v4/statuses"
log = logging.getLogger(__name__)
HUBSPOT_HEADERS = RateLimitHeaders(remaining=RATE_LIMIT_REMAINING, reset=RATE_LIMIT_INTERVAL,
                                   reset_kind="milliseconds")


def _bucket(path: str) -> str:
    return "search" if path.endswith("/search") else "general"


def error_message(exc: HttpError) -> str:
    """HubSpot's own message from an error answer's JSON (``message``), else the kit's text."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {exc.status}: {message}" if isinstance(message, str) and message else str(exc)


def error_category(exc: HttpError) -> str | None:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except ValueError:
        return None
    return body.get("category") if isinstance(body, dict) else None


class AccessRefused(HttpError):
    """HubSpot refused the token itself (401/403): every call would fail the same way, so it
    fails the connection's part of the run instead of each record."""

    @classmethod
    def check(cls, response: Any, endpoint: str) -> Any:
        if response.status_code in (401, 403):
            refused = HttpError.from_response(response, endpoint)
            raise cls(response.status_code, f"HubSpot refused the access token: {error_message(refused)}",
                      body=refused.body, headers=refused.headers)
        return response


class SearchSpacing:
    """At most ``per_second`` searches a second from this client: HubSpot limits search per
    account and says nothing in its answers about how much is left."""

    def __init__(self, per_second: float, clock=time.monotonic, sleep=time.sleep) -> None:
        self.interval = 1.0 / per_second
        self._lock = threading.Lock()
        self._next = 0.0
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


class HubSpotApi:
    def __init__(self, settings: HubSpotSettings) -> None:
        token = settings.access_token.get_secret_value()
        self.session = new_session(
            settings.host,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            retry=settings.retry_policy(),
            timeout=settings.timeout,
            max_connections=settings.max_connections,
            account=(settings.host, token),
            pacer=RatePacer(HUBSPOT_HEADERS, bucket=_bucket),
            name="hubspot",
        )
        self._search_spacing = SearchSpacing(settings.search_requests_per_second)
        self.batch_subscriptions = True

    @property
    def calls(self) -> int:
        return self.session.calls.total

    def close(self) -> None:
        self.session.close()

    def _json(self, method: str, path: str, endpoint: str, *, body: Any = None,
              params: Mapping[str, str] | None = None) -> Any:
        response = self._checked(self.session.request(method, path, json=body, params=params, endpoint=endpoint),
                                 endpoint)
        return response.json() if response.content else None

    @staticmethod
    def _checked(response: Any, endpoint: str) -> Any:
        return raise_for_status(AccessRefused.check(response, endpoint), endpoint)

    # -- contacts --------------------------------------------------------------------------

    def search_contacts(self, *, since_ms: int | None, properties: Sequence[str], limit: int,
                        after: int = 0) -> dict[str, Any]:
        """Contacts modified at or after ``since_ms``, oldest first."""
        body: dict[str, Any] = {
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": limit,
        }
        if since_ms is not None:
            body["filterGroups"] = [{"filters": [
                {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since_ms)}]}]
        if after:
            body["after"] = str(after)
        self._search_spacing.wait()
        return self._json("POST", SEARCH_PATH, "contacts.search", body=body)

    def upsert_contacts(self, inputs: list[dict[str, Any]]) -> Any:
        """Batch upsert keyed by email; the raw answer (200, 207 or an error) for the caller to
        attribute to its inputs."""
        return AccessRefused.check(self.session.request("POST", "/crm/v3/objects/contacts/batch/upsert",
                                                        json={"inputs": inputs}, endpoint="contacts.upsert"),
                                   "contacts.upsert")

    def gdpr_delete(self, email: str) -> None:
        """Delete the contact permanently (HubSpot blocklists an address it does not know)."""
        self._json("POST", "/crm/v3/objects/contacts/gdpr-delete", "contacts.gdpr_delete",
                   body={"objectId": email, "idProperty": "email"})

    # -- properties ------------------------------------------------------------------------

    def properties(self) -> list[dict[str, Any]]:
        return self._json("GET", "/crm/v3/properties/contacts", "properties.list").get("results") or []

    def create_property(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/crm/v3/properties/contacts", "properties.create", body=dict(definition))

    def set_options(self, name: str, options: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the options of an enumeration property (PATCH replaces the whole list)."""
        return self._json("PATCH", f"/crm/v3/properties/contacts/{quote(name, safe='')}", "properties.update",
                          body={"options": options})

    # -- lists -----------------------------------------------------------------------------

    def list_by_name(self, name: str) -> dict[str, Any] | None:
        response = self.session.request(
            "GET", f"/crm/v3/lists/object-type-id/{CONTACT_OBJECT_TYPE}/name/{quote(name, safe='')}",
            endpoint="lists.by_name")
        if response.status_code == 404:
            return None
        return self._checked(response, "lists.by_name").json()["list"]

    def create_list(self, name: str) -> dict[str, Any]:
        return self._json("POST", "/crm/v3/lists", "lists.create",
                          body={"name": name, "objectTypeId": CONTACT_OBJECT_TYPE, "processingType": "MANUAL"})["list"]

    def get_list(self, list_id: str) -> dict[str, Any] | None:
        response = self.session.request("GET", f"/crm/v3/lists/{quote(list_id, safe='')}", endpoint="lists.get")
        if response.status_code == 404:
            return None
        return self._checked(response, "lists.get").json()["list"]

    def change_members(self, list_id: str, add: list[str], remove: list[str]) -> dict[str, Any]:
        return self._json("PUT", f"/crm/v3/lists/{quote(list_id, safe='')}/memberships/add-and-remove",
                          "lists.memberships", body={"recordIdsToAdd": add, "recordIdsToRemove": remove})

    # -- subscriptions (communication preferences v4) --------------------------------------
    # The batch endpoints need Marketing Hub Enterprise scopes. Refused them (403), a client
    # falls back to the per-contact endpoints, one call per address, for the rest of its life.

    def subscription_definitions(self) -> list[dict[str, Any]]:
        return self._json("GET", "/communication-preferences/v4/definitions", "subscriptions.definitions").get(
            "results") or []

    def subscription_statuses(self, emails: list[str]) -> list[dict[str, Any]]:
        """Per address: ``{"subscriberIdString", "statuses": [...]}``."""
        def one(email: str) -> dict[str, Any]:
            found = self._json("GET", f"{STATUSES}/{quote(email, safe='@')}", "subscriptions.read_one",
                               params={"channel": "EMAIL"})
            return {"subscriberIdString": email, "statuses": found.get("results") or []}

        return self._batch_or_each("subscriptions.read", f"{STATUSES}/batch/read", emails, one)

    def unsubscribed_from_all(self, emails: list[str]) -> list[dict[str, Any]]:
        """Per address: ``{"subscriberIdString", "wideStatuses": [...]}`` (empty: not opted out)."""
        def one(email: str) -> dict[str, Any]:
            found = self._json("GET", f"{STATUSES}/{quote(email, safe='@')}/unsubscribe-all",
                               "subscriptions.read_all_one", params={"channel": "EMAIL"})
            return {"subscriberIdString": email, "wideStatuses": found.get("results") or []}

        return self._batch_or_each("subscriptions.read_all", f"{STATUSES}/batch/unsubscribe-all/read", emails, one)

    def unsubscribe_from_all(self, emails: list[str]) -> None:
        def one(email: str) -> None:
            self._json("POST", f"{STATUSES}/{quote(email, safe='@')}/unsubscribe-all",
                       "subscriptions.unsubscribe_all_one", params={"channel": "EMAIL"})

        self._batch_or_each("subscriptions.unsubscribe_all", f"{STATUSES}/batch/unsubscribe-all", emails, one)

    def write_statuses(self, inputs: list[dict[str, Any]]) -> None:
        def one(item: dict[str, Any]) -> None:
            body = {k: v for k, v in item.items() if k != "subscriberIdString"}
            self._json("POST", f"{STATUSES}/{quote(item['subscriberIdString'], safe='@')}", "subscriptions.write_one",
                       body=body)

        if self.batch_subscriptions:
            try:
                self._json("POST", f"{STATUSES}/batch/write", "subscriptions.write", body={"inputs": inputs})
                return
            except AccessRefused as exc:
                self._no_batch(exc)
        for item in inputs:
            one(item)

    def _batch_or_each(self, endpoint: str, path: str, emails: list[str], one: Any) -> list[Any]:
        if self.batch_subscriptions:
            try:
                answer = self._json("POST", path, endpoint, body={"inputs": emails}, params={"channel": "EMAIL"})
                return (answer or {}).get("results") or []
            except AccessRefused as exc:
                self._no_batch(exc)
        return [one(email) for email in emails]

    def _no_batch(self, exc: AccessRefused) -> None:
        if exc.status != 403:
            raise exc
        log.info("HubSpot refused the batch subscription endpoints (%s); using one call per contact", error_message(exc))
        self.batch_subscriptions = False

"""The Constant Contact API v3 over ``segsync.http``: Bearer auth with refresh, steady pacing,
errors in Constant Contact's format, ``_links.next`` paging and bulk activities.

Tokens live only in this object (the session's ``Authorization`` header): they are never
logged, put in an error message or stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
from pydantic import SecretStr
from segsync.http import RatePacer, new_session, safe_error

from segsync_constantcontact.limits import ACTIVITY_DONE_STATES
from segsync_constantcontact.settings import ConstantContactSettings


class ConstantContactError(Exception):
    """A final error answer; the text holds Constant Contact's ``error_key``/``error_message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ActivityFailed(ConstantContactError):
    """A bulk activity ended ``failed``, ``cancelled`` or ``timed_out`` (or never ended)."""


class SteadyPacer(RatePacer):
    """At most ``per_second`` requests a second, spaced evenly, from every thread of a connection.

    Constant Contact sends no rate-limit headers to pace by; its limit per key is fixed
    (4 a second), so requests are spaced instead, and a 429 is the back-off's business.
    """

    # Spaced a tenth wider than the limit: with timing jitter on both sides, requests spaced
    # exactly 1/limit apart can put limit + 1 of them in one second of the server's count.
    MARGIN = 1.1

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(clock=clock, sleep=sleep)
        self.interval = self.MARGIN / per_second
        self._next = 0.0

    def before(self, path: str) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.waits += 1
            self.slept += start - now
            self._sleep(start - now)

    def after(self, path: str, headers: Mapping[str, str] | None) -> None:
        return None


def error_text(response: requests.Response) -> str:
    """Constant Contact's errors, ``[{"error_key": ..., "error_message": ...}]``, as one line."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[:300]
    entries = body if isinstance(body, list) else [body]
    parts = []
    for entry in entries:
        if isinstance(entry, Mapping):
            key, message = entry.get("error_key"), entry.get("error_message")
            parts.append(": ".join(str(p) for p in (key, message) if p))
    return "; ".join(p for p in parts if p)[:300] or response.reason or ""


class ConstantContactApi:
    def __init__(self, settings: ConstantContactSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.pacer = SteadyPacer(settings.requests_per_second, sleep=sleep)
        self.session = new_session(
            settings.host,
            retry=settings.retry_policy(),
            timeout=settings.timeout,
            max_connections=settings.max_connections,
            pacer=self.pacer,
            name="constantcontact",
            sleep=sleep,
        )
        self._sleep = sleep
        self._token = settings.access_token
        self._refresh_token = settings.refresh_token
        self._token_lock = threading.Lock()
        self.refreshes = 0
        self._use(self._token)

    # -- auth ------------------------------------------------------------------------------

    def _use(self, token: SecretStr) -> None:
        self._token = token
        self.session.headers["Authorization"] = f"Bearer {token.get_secret_value()}"

    @property
    def can_refresh(self) -> bool:
        return self._refresh_token is not None and bool(self.settings.client_id)

    def _refresh(self, stale: SecretStr) -> None:
        """A new access token from the refresh token (once for all threads that saw ``stale``).

        Constant Contact may rotate the refresh token; the new one is kept for this process only
        (never stored), so configure a long-lived refresh token for unattended runs (README).
        """
        with self._token_lock:
            if self._token is not stale:
                return  # another thread refreshed meanwhile
            settings = self.settings
            secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
            response = self.session.post(
                settings.token_url,
                data={"grant_type": "refresh_token",
                      "refresh_token": self._refresh_token.get_secret_value()},  # type: ignore[union-attr]
                auth=(settings.client_id or "", secret),
                headers={"Accept": "application/json"},
                endpoint="oauth2.token",
            )
            body = _json(response)
            token = body.get("access_token") if isinstance(body, Mapping) else None
            if response.status_code >= 400 or not isinstance(token, str) or not token:
                error = body.get("error") if isinstance(body, Mapping) else None
                raise ConstantContactError(
                    response.status_code,
                    f"Constant Contact refused to refresh the access token (HTTP {response.status_code}"
                    f"{': ' + str(error) if error else ''}); authorize the application again and set "
                    "a new refresh token")
            rotated = body.get("refresh_token")
            if isinstance(rotated, str) and rotated:
                self._refresh_token = SecretStr(rotated)
            self.refreshes += 1
            self._use(SecretStr(token))

    # -- requests --------------------------------------------------------------------------

    def call(self, method: str, path: str, *, endpoint: str, params: Mapping[str, Any] | None = None,
             json: Any = None, ok: tuple[int, ...] = ()) -> Any:
        """One API call (retried per the policy); its JSON, or None for an empty answer.

        A 401 with a refresh token configured refreshes the access token once and sends again.
        Statuses in ``ok`` are returned as ``{"status": code}`` instead of raising.
        """
        for attempt in (1, 2):
            token = self._token
            try:
                response = self.session.request(method, path, params=params, json=json, endpoint=endpoint)
            except requests.RequestException as exc:  # still failing after the policy's attempts
                raise ConstantContactError(0, f"Constant Contact API {method} {path}: {safe_error(exc)}") from None
            if response.status_code == 401 and attempt == 1 and self.can_refresh:
                self._refresh(token)
                continue
            break
        if response.status_code in ok:
            return {"status": response.status_code}
        if response.status_code >= 400:
            hint = ""
            if response.status_code == 401:
                hint = (" (the access token is invalid or expired; set a new one, or a refresh token "
                        "with client_id and client_secret to refresh it)")
            raise ConstantContactError(
                response.status_code,
                f"Constant Contact API {method} {path}: HTTP {response.status_code} {error_text(response)}{hint}")
        return _json(response)

    @property
    def calls(self) -> int:
        return self.session.calls.total

    def pages(self, path: str, items: str, params: Mapping[str, Any], *, endpoint: str,
              start: str | None = None) -> Iterator[tuple[list[Any], str | None]]:
        """Each page's ``items`` and the ``_links.next.href`` after it (None on the last page).

        ``start`` is a ``next`` link of an earlier walk, to resume from.
        """
        url, query = (start, None) if start else (path, dict(params))
        while True:
            page = self.call("GET", _relative(url), params=query, endpoint=endpoint) or {}
            found = page.get(items) if isinstance(page, Mapping) else None
            nxt = ((page.get("_links") or {}).get("next") or {}).get("href") if isinstance(page, Mapping) else None
            yield (found if isinstance(found, list) else []), (nxt if isinstance(nxt, str) and nxt else None)
            if not nxt or not found:
                return
            url, query = nxt, None

    # -- bulk activities -------------------------------------------------------------------

    def activity(self, path: str, body: Mapping[str, Any], *, endpoint: str) -> dict[str, Any]:
        """Start a bulk activity and poll ``GET /activities/{id}`` until it is done."""
        started = self.call("POST", path, json=body, endpoint=endpoint) or {}
        activity_id = started.get("activity_id")
        if not isinstance(activity_id, str):
            raise ConstantContactError(0, f"Constant Contact answered {path} without an activity_id")
        deadline = time.monotonic() + self.settings.activity_timeout_seconds
        wait = self.settings.activity_poll_seconds
        state = started
        while state.get("state") not in ACTIVITY_DONE_STATES:
            if time.monotonic() > deadline:
                raise ActivityFailed(0, f"activity {activity_id} ({endpoint}) not done after "
                                        f"{self.settings.activity_timeout_seconds:.0f} s")
            self._sleep(wait)
            wait = min(wait * 2, 30.0)
            state = self.call("GET", f"/activities/{activity_id}", endpoint="activities.get") or {}
        if state.get("state") != "completed":
            errors = "; ".join(str(e) for e in state.get("activity_errors") or [])[:300]
            raise ActivityFailed(0, f"activity {activity_id} ({endpoint}) ended {state.get('state')}"
                                    f"{': ' + errors if errors else ''}")
        return state

    def close(self) -> None:
        self.session.close()


def _json(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _relative(url: str) -> str:
    """A ``_links`` href (``/v3/contacts?cursor=…``) relative to the API root (``/contacts?…``)."""
    if url.startswith("/v3/"):
        return url[3:]
    return url

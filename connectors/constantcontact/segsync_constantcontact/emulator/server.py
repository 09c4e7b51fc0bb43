"""The Constant Contact emulator on the emulator kit (``segsync.testing.emulator``): OAuth2
bearer auth and the token endpoint, the documented rate limits and Constant Contact's error
format; the routes are in ``routes.py``, the account in ``state.py``."""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from segsync.testing.emulator import Answer, AnswerError, Emulator, Request
from segsync.testing.emulator.faults import Fault

from segsync_constantcontact.emulator.routes import Routes
from segsync_constantcontact.emulator.state import ApiError, ConstantContactState
from segsync_constantcontact.limits import REQUESTS_PER_DAY, REQUESTS_PER_SECOND

TOKEN_PATH = "/oauth2/default/v1/token"
# Per API key: 4 requests a second and 10,000 a day (README, "Sources").
DOCUMENTED_LIMITS = {"other": ((REQUESTS_PER_SECOND, 1.0), (REQUESTS_PER_DAY, 86_400.0))}


def _errors(status: int, key: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, [{"error_key": key, "error_message": message}], headers or {})


class ConstantContactEmulator(Routes, Emulator):
    """A stateful Constant Contact API v3 on 127.0.0.1; ``url`` is the ``host`` setting and
    ``token_url`` the ``token_url`` one. ``rate_limits=None`` lifts the documented limits."""

    name: ClassVar[str] = "constantcontact"
    api_prefix: ClassVar[str] = "/v3"
    keep_prefix_in_log: ClassVar[bool] = True

    def __init__(self, *, activity_delay: float = 0.05, rate_limits: Any = DOCUMENTED_LIMITS,
                 keep_bodies: bool = True, **options: Any) -> None:
        super().__init__(rate_limits=rate_limits, keep_bodies=keep_bodies, **options)
        self.state = ConstantContactState(activity_delay=activity_delay)

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{TOKEN_PATH}"

    # The authorization the demo and tests configure: what a user gets from the OAuth2 flow.
    access_token = property(lambda self: self.state.access_token)
    refresh_token = property(lambda self: self.state.refresh_token)
    client_id = property(lambda self: self.state.client_id)
    client_secret = property(lambda self: self.state.client_secret)

    # -- how Constant Contact answers ------------------------------------------------------

    def authenticate(self, request: Request) -> None:
        auth = request.headers.get("Authorization") or ""
        if not (auth.startswith("Bearer ") and self.state.authorized(auth[7:])):
            raise AnswerError(_errors(401, "unauthorized", "Unauthorized"))

    def error_answer(self, exc: Exception) -> Answer | None:
        if isinstance(exc, ApiError):
            return _errors(exc.status, exc.key, exc.message)
        return None

    def not_found(self, request: Request) -> Answer:
        return _errors(404, "not_found", f"No resource at {request.method} {request.path}.")

    def invalid_json(self, request: Request) -> Answer:
        return _errors(400, "body.malformed", "The JSON body is malformed.")

    def rate_limited(self, request: Request) -> Answer:
        return _errors(429, "too_many_requests", "Too many requests.", {"Retry-After": "1"})

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {}  # Constant Contact sends none

    def fault_answer(self, fault: Fault, request: Request) -> Answer:
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return _errors(fault.status, "injected_fault", f"injected HTTP {fault.status}", headers)

    def control(self, request: Request) -> Answer | None:
        """The OAuth2 token endpoint (outside the API's /v3)."""
        if request.path != TOKEN_PATH or request.method != "POST":
            return None
        form = dict(parse_qsl(request.raw.decode(), keep_blank_values=True))
        if form.get("grant_type") != "refresh_token":
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "Only the refresh_token grant is emulated."})
        auth = request.headers.get("Authorization") or ""
        client_id = secret = ""
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                pass
        try:
            return Answer(200, self.state.refresh(client_id, secret, form.get("refresh_token", "")))
        except ApiError as exc:
            return Answer(exc.status, {"error": exc.key, "error_description": exc.message})

    # -- for tests -----------------------------------------------------------------------

    def bodies(self, method: str, path: str) -> list[Any]:
        """The JSON bodies of the logged requests ``method path`` (a regex)."""
        return [json.loads(r.body) if r.body else None for r in self.calls(method, path)]

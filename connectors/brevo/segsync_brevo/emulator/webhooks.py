"""Brevo's webhooks on the emulator: the API that registers them, and their deliveries.

``POST /webhooks`` (``url``, ``events``, ``type``, ``auth``, ``headers``, ``batched``) answers
201 with the new id; ``GET /webhooks?type=`` lists them (``transactional`` unless asked),
``GET``/``DELETE /webhooks/{webhookId}``. Marketing webhooks are sent when a person acts
(``POST /_emulator/act``: ``{"action": "unsubscribe" | "bounce" | "spam", "email",
"camp_id"?}``): the contact is blocklisted as Brevo does, and each marketing webhook whose
``events`` include the event gets a JSON POST (an array of one with ``batched``) with
``Authorization: Bearer <token>`` when created with ``auth`` and its custom ``headers``. Payload
fields as on Brevo's "Marketing webhooks" page: ``id`` (the webhook's), ``camp_id``, ``email``,
``campaign name``, ``date_sent``, ``date_event`` (local time), ``ts_sent``, ``ts_event``, ``ts``
(UTC seconds), ``event`` and ``tag``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from segsync.testing.emulator import Answer, AnswerError, Request, WebhookSender, route
from segsync_brevo.emulator.errors import ApiError

# What a person does → (the createWebhook event word that subscribes to it, the payload's word).
ACTIONS = {
    "unsubscribe": ("unsubscribed", "unsubscribe"),
    "bounce": ("hardBounce", "hard_bounce"),
    "spam": ("spam", "spam"),
}


class BrevoWebhooks:
    """Mixed into :class:`~segsync_brevo.emulator.server.BrevoEmulator`."""

    state: Any

    def _init_webhooks(self) -> None:
        self.webhooks: dict[int, dict[str, Any]] = {}
        self._webhook_ids = itertools.count(1)
        self.webhook_sender = WebhookSender()

    @route("GET", "/webhooks")
    def list_webhooks(self, request: Request) -> Any:
        kind = request.params.get("type", "transactional")
        hooks = [_public(h) for h in self.webhooks.values() if h["type"] == kind]
        if request.params.get("sort", "desc") == "desc":
            hooks.reverse()
        return {"webhooks": hooks}

    @route("POST", "/webhooks")
    def create_webhook(self, request: Request) -> Answer:
        body = request.body if isinstance(request.body, dict) else {}
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiError(400, "invalid_parameter", "url is not a valid URL")
        now = self.state.clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
        with self.state.lock:
            hook_id = next(self._webhook_ids)
            self.webhooks[hook_id] = {
                "id": hook_id, "url": url, "description": body.get("description", ""),
                "events": list(body.get("events") or []), "type": body.get("type", "transactional"),
                "createdAt": now, "modifiedAt": now, "batched": bool(body.get("batched", False)),
                "auth": body.get("auth"), "headers": list(body.get("headers") or []),
            }
        return Answer(201, {"id": hook_id})

    @route("GET", "/webhooks/{webhook_id:int}")
    def get_webhook(self, request: Request, webhook_id: str) -> Any:
        hook = self.webhooks.get(int(webhook_id))
        if hook is None:
            raise ApiError(404, "document_not_found", "Webhook does not exist")
        return _public(hook)

    @route("DELETE", "/webhooks/{webhook_id:int}")
    def delete_webhook(self, request: Request, webhook_id: str) -> Answer:
        with self.state.lock:
            if self.webhooks.pop(int(webhook_id), None) is None:
                raise ApiError(404, "document_not_found", "Webhook does not exist")
        return Answer(204, None)

    def act(self, body: Any) -> Any:
        try:
            return self._act(body)
        except ApiError as exc:  # the control path answers it as the API would
            raise AnswerError(Answer(exc.status, exc.body())) from None

    def _act(self, body: Any) -> Any:
        body = body if isinstance(body, dict) else {}
        action, email = body.get("action"), str(body.get("email") or "")
        if action not in ACTIONS:
            raise ApiError(400, "invalid_parameter", f"unknown action {action!r}: {', '.join(ACTIONS)}")
        subscribed, word = ACTIONS[action]
        state = self.state
        with state.lock:
            contact = state.contact(email)
            if contact is None:
                raise ApiError(404, "document_not_found", "Contact does not exist")
            contact.email_blacklisted = True
            now = state.clock.now()
            contact.modified_at = now
            camp_id = int(body.get("camp_id") or 1)
            ts = int(now.timestamp())
            event = {"camp_id": camp_id, "email": contact.email, "campaign name": f"Campaign {camp_id}",
                     "date_sent": now.strftime("%Y-%m-%d %H:%M:%S"), "date_event": now.strftime("%Y-%m-%d %H:%M:%S"),
                     "ts_sent": ts, "ts_event": ts, "ts": ts, "event": word, "tag": "",
                     "list_id": sorted(contact.list_ids)}
            hooks = [h for h in self.webhooks.values() if h["type"] == "marketing" and subscribed in h["events"]]
        for hook in hooks:
            payload = {"id": hook["id"], **event}
            headers = {"Content-Type": "application/json"}
            auth = hook.get("auth") or {}
            if auth.get("type") == "bearer" and auth.get("token"):
                headers["Authorization"] = f"Bearer {auth['token']}"
            headers.update({h["key"]: h["value"] for h in hook["headers"] if "key" in h and "value" in h})
            document = [payload] if hook["batched"] else payload
            self.webhook_sender.send(hook["url"], word, json.dumps(document).encode(), headers)
        return {"event": word, "webhooks": len(hooks)}


def _public(hook: dict[str, Any]) -> dict[str, Any]:
    """A webhook as ``GET /webhooks`` shows it (the auth token is not shown back)."""
    shown = {k: v for k, v in hook.items() if k not in ("auth", "headers")}
    if hook.get("auth"):
        shown["auth"] = {"type": hook["auth"].get("type")}
    return shown

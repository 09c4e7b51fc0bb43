"""Mailchimp's list webhooks on the emulator: the API that registers them, and their deliveries.

``POST /lists/{list_id}/webhooks`` (``url``, ``events``, ``sources``) first checks the URL
with a GET, as Mailchimp does, and refuses the webhook when it does not answer 200;
``GET /lists/{list_id}/webhooks`` lists them and ``DELETE .../{webhook_id}`` removes one.

What a person does (``POST /_emulator/act``: ``{"action": "unsubscribe" | "complain" |
"bounce" | "subscribe", "email", "list_id"?, "campaign_id"?}``) changes the member as
Mailchimp would and sends each webhook of the list whose ``events`` include the type and whose
``sources`` include ``user`` (a hard bounce is Mailchimp's own doing, sent whatever the
sources): a form-encoded POST of ``type``, ``fired_at`` (``YYYY-MM-DD HH:MM:SS``, GMT) and
``data[...]``, as described in Mailchimp's "Sync audience data with webhooks" guide. Changes
made through the API are not sent (segsync registers its webhooks with ``api: false``).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import requests

from segsync.testing.emulator import Answer, AnswerError, Request, WebhookSender, route
from segsync_mailchimp.emulator.problems import ApiProblem
from segsync_mailchimp.emulator.state import Member, subscriber_hash

EVENT_TYPES = ("subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")
SOURCES = ("user", "admin", "api")
FORM = "application/x-www-form-urlencoded"


class MailchimpWebhooks:
    """Mixed into :class:`~segsync_mailchimp.emulator.server.MailchimpEmulator`."""

    state: Any

    def _init_webhooks(self) -> None:
        self.webhooks: dict[str, dict[str, dict[str, Any]]] = {}  # list id → webhook id → document
        self.webhook_sender = WebhookSender()

    # -- the API -----------------------------------------------------------------------------

    @route("GET", "/lists/{list_id}/webhooks")
    def list_webhooks(self, request: Request, list_id: str) -> Any:
        self.state.audience(list_id)
        hooks = list(self.webhooks.get(list_id, {}).values())
        return {"webhooks": hooks, "list_id": list_id, "total_items": len(hooks), "_links": []}

    @route("POST", "/lists/{list_id}/webhooks")
    def create_webhook(self, request: Request, list_id: str) -> Any:
        self.state.audience(list_id)
        body = request.body if isinstance(request.body, dict) else {}
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiProblem("InvalidResource", "The resource submitted could not be validated.",
                             errors=[{"field": "url", "message": "This value should be a valid URL."}])
        try:
            check = requests.get(url, timeout=10)
            reachable = check.status_code == 200
        except requests.RequestException:
            reachable = False
        if not reachable:
            raise ApiProblem("InvalidResource", "The resource submitted could not be validated.",
                             errors=[{"field": "url", "message": "We couldn't verify the URL is working. "
                                      "Please double check and try again."}])
        events = {e: bool((body.get("events") or {}).get(e, True)) for e in EVENT_TYPES}
        sources = {s: bool((body.get("sources") or {}).get(s, True)) for s in SOURCES}
        hook = {"id": secrets.token_hex(5), "url": url, "events": events, "sources": sources,
                "list_id": list_id, "_links": []}
        with self.state.lock:
            self.webhooks.setdefault(list_id, {})[hook["id"]] = hook
        return hook

    @route("GET", "/lists/{list_id}/webhooks/{webhook_id}")
    def get_webhook(self, request: Request, list_id: str, webhook_id: str) -> Any:
        hook = self.webhooks.get(list_id, {}).get(webhook_id)
        if hook is None:
            raise ApiProblem("ResourceNotFound")
        return hook

    @route("DELETE", "/lists/{list_id}/webhooks/{webhook_id}")
    def delete_webhook(self, request: Request, list_id: str, webhook_id: str) -> Any:
        with self.state.lock:
            if self.webhooks.get(list_id, {}).pop(webhook_id, None) is None:
                raise ApiProblem("ResourceNotFound")
        return 204, None

    # -- what people do ------------------------------------------------------------------------

    def act(self, body: Any) -> Any:
        try:
            return self._act(body)
        except ApiProblem as exc:  # the control path answers it as the API would
            raise AnswerError(Answer(exc.status, exc.document())) from None

    def _act(self, body: Any) -> Any:
        body = body if isinstance(body, dict) else {}
        action, email = body.get("action"), str(body.get("email") or "")
        state = self.state
        with state.lock:
            list_id = body.get("list_id") or next(iter(state.audiences), None)
            audience = state.audience(list_id)
            member = audience.members.get(subscriber_hash(email))
            now = state.clock()
            campaign = str(body.get("campaign_id") or "")
            if action == "subscribe":
                member = member or state.seed_member(list_id, email, "subscribed", source="Hosted Signup Form")
                member.status, member.last_changed, member.timestamp_opt = "subscribed", now, now
                kind, fields = "subscribe", _member_fields(member, list_id)
            elif member is None:
                raise ApiProblem("ResourceNotFound")
            elif action in ("unsubscribe", "complain"):
                member.status, member.last_changed = "unsubscribed", now
                member.unsubscribe_reason = "N/A (Unsubscribe link)" if action == "unsubscribe" else "Abuse report"
                kind = "unsubscribe"
                fields = _member_fields(member, list_id) | {
                    "action": "unsub", "reason": "manual" if action == "unsubscribe" else "abuse"}
                if campaign:
                    fields["campaign_id"] = campaign
            elif action == "bounce":
                member.status, member.last_changed = "cleaned", now
                kind = "cleaned"
                fields = {"list_id": list_id, "campaign_id": campaign, "reason": "hard", "email": member.email_address}
            else:
                raise ApiProblem("InvalidResource", f"unknown action {action!r}: unsubscribe, complain, bounce, subscribe")
            sent = self._fire(list_id, kind, now, fields, source="api" if action == "bounce" else "user")
        return {"type": kind, "member": member.id, "webhooks": sent}

    def _fire(self, list_id: str, kind: str, when: datetime, data: dict[str, Any], *, source: str) -> int:
        form: list[tuple[str, str]] = [("type", kind), ("fired_at", when.strftime("%Y-%m-%d %H:%M:%S"))]
        for key, value in data.items():
            if isinstance(value, dict):
                form += [(f"data[{key}][{k}]", str(v)) for k, v in value.items()]
            else:
                form.append((f"data[{key}]", str(value)))
        body = urlencode(form).encode()
        sent = 0
        for hook in list(self.webhooks.get(list_id, {}).values()):
            # Mailchimp's cleaning is its own act: sent whatever the hook's sources say.
            if hook["events"].get(kind) and (kind == "cleaned" or hook["sources"].get(source)):
                self.webhook_sender.send(hook["url"], kind, body, {"Content-Type": FORM, "User-Agent": "MailChimp"})
                sent += 1
        return sent


def _member_fields(member: Member, list_id: str) -> dict[str, Any]:
    return {"id": member.id, "list_id": list_id, "email": member.email_address, "email_type": member.email_type,
            "ip_opt": member.ip_opt, "merges": {"EMAIL": member.email_address, **member.merge_fields}}

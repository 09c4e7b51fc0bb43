"""Segment-entry triggers for Mailchimp automations (the connector's ``send_triggers``).

* ``event`` → ``POST /lists/{list_id}/members/{hash}/events`` with ``name``, ``occurred_at``,
  ``properties`` (strings) and ``is_syncing: false`` (an event sent with ``is_syncing: true``
  starts no automation). A Customer Journey can start on the contact event.
* ``tag`` → ``POST /lists/{list_id}/members/{hash}/tags`` with the tag ``active`` and
  ``is_syncing: false`` (automations on tags fire only then). Adding a tag the member already
  has is a no-op, so a resend is harmless.

An event in doubt (an earlier attempt may have reached Mailchimp) is looked up first: ``GET
…/events`` lists the member's events with their properties, and one whose ``segsync_key`` is the
delivery's key means it arrived. Mailchimp itself does not deduplicate events.
Sources: https://mailchimp.com/developer/marketing/api/list-member-events/ and
https://mailchimp.com/developer/marketing/api/list-member-tags/ (see the README).
"""

from __future__ import annotations

from collections.abc import Sequence

from segsync import Outcome, TriggerMessage

from segsync_mailchimp.api import MailchimpApi, MailchimpError
from segsync_mailchimp.mapping import subscriber_hash
from segsync_mailchimp.settings import MailchimpSettings

EVENTS_PAGE = 1000  # the most GET …/events answers at once


def send_triggers(api: MailchimpApi, settings: MailchimpSettings, messages: Sequence[TriggerMessage]) -> list[Outcome]:
    return [_send(api, settings.list_id, m) for m in messages]


def _send(api: MailchimpApi, list_id: str, message: TriggerMessage) -> Outcome:
    member = subscriber_hash(message.contact_key)
    try:
        if message.kind == "tag":
            body = {"tags": [{"name": message.name, "status": "active"}], "is_syncing": False}
            api.call("add member tag", lambda c: c.lists.update_list_member_tags(list_id, member, body))
        else:
            if message.in_doubt and _already_sent(api, list_id, member, message):
                return Outcome.ok(message.contact_key)
            body = {"name": message.name, "properties": dict(message.properties),
                     "occurred_at": message.occurred_at.isoformat(), "is_syncing": False}
            api.call("add member event", lambda c: c.lists.create_list_member_event(list_id, member, body))
    except MailchimpError as exc:
        if exc.retryable:
            return Outcome.retryable(message.contact_key, str(exc))
        if exc.status == 404:
            return Outcome.rejected(message.contact_key, "not a member of the audience")
        return Outcome.rejected(message.contact_key, str(exc), field=message.kind)
    return Outcome.ok(message.contact_key)


def _already_sent(api: MailchimpApi, list_id: str, member: str, message: TriggerMessage) -> bool:
    offset = 0
    while True:
        page = api.call("member events", lambda c: c.lists.get_list_member_events(
            list_id, member, count=EVENTS_PAGE, offset=offset)) or {}
        events = page.get("events") or []
        if any((e.get("properties") or {}).get("segsync_key") == message.key for e in events):
            return True
        offset += len(events)
        if not events or offset >= int(page.get("total_items") or 0):
            return False

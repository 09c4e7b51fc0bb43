"""Segment-entry triggers for Brevo automations (the connector's ``send_triggers``).

* ``event`` → ``POST /v3/events`` with ``event_name``, ``event_date``, ``identifiers.email_id``
  and ``event_properties`` (``segment``, ``change``, ``segsync_key`` and the trigger's own): an
  automation whose entry point is that custom event starts. One call per event.
* ``tag``: Brevo contacts have no tags; the message is refused, naming the event action.

An event in doubt (an earlier attempt may have reached Brevo) is looked up first: ``GET
/v3/events?contact_id=…&event_name=…`` lists the contact's custom events with their properties,
and one whose ``segsync_key`` is the delivery's key means it arrived (Brevo does not
deduplicate events itself). Sources: https://developers.brevo.com/reference/create-event and
https://developers.brevo.com/reference/get-events (see the README).
"""

from __future__ import annotations

from collections.abc import Sequence

from segsync import Outcome, TriggerMessage

from segsync_brevo.api import BrevoApi, BrevoApiError

NO_TAGS = 'Brevo contacts have no tags: use action = "event" (an automation can start on a custom event)'


def send_triggers(api: BrevoApi, messages: Sequence[TriggerMessage]) -> list[Outcome]:
    return [_send(api, m) for m in messages]


def _send(api: BrevoApi, message: TriggerMessage) -> Outcome:
    if message.kind != "event":
        return Outcome.rejected(message.contact_key, NO_TAGS, field="action")
    try:
        if message.in_doubt and api.event_sent(message.contact_key, message.name, "segsync_key", message.key):
            return Outcome.ok(message.contact_key)
        api.create_event({
            "event_name": message.name,
            "event_date": message.occurred_at.isoformat(),
            "identifiers": {"email_id": message.contact_key},
            "event_properties": dict(message.properties),
        })
    except BrevoApiError as exc:
        if exc.retryable:
            return Outcome.retryable(message.contact_key, str(exc))
        return Outcome.rejected(message.contact_key, str(exc), field="event")
    return Outcome.ok(message.contact_key)

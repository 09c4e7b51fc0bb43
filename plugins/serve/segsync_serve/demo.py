"""``segsync demo --serve``: the live loop on the demo business.

After the demo's syncs, with the Mailchimp and Brevo emulators still running: start the server
on a free port of 127.0.0.1, register its webhooks through both services' webhook APIs, then
script a person's unsubscribe in Mailchimp and another's spam complaint in Brevo (the emulators'
``/_emulator/act``) and show each reaching the other system, with the seconds it took.
``forever`` keeps serving until Ctrl-C afterwards.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Sequence
from typing import Any

import click
import requests

from segsync import mask_email
from segsync.live import LiveProject

from segsync_serve.server import Service

WAIT_SECONDS = 60.0


def live_demo(project: LiveProject, emulated: Sequence[str], *, forever: bool = False) -> None:
    types = {name: project.connections()[name] for name in emulated if name in project.connections()}
    mailchimp = next((n for n, t in types.items() if t == "mailchimp"), None)
    brevo = next((n for n, t in types.items() if t == "brevo"), None)
    if mailchimp is None or brevo is None:
        raise click.UsageError("--serve shows an opt-out going from Mailchimp to Brevo and back: "
                               "run it with --with mailchimp --with brevo")
    service = Service(project, secrets.token_urlsafe(24), port=0).start()
    try:
        click.echo(f"\nLive: segsync serve on {service.url} (webhooks, /healthz, /metrics)")
        for line in service.register_webhooks():
            click.echo(f"  {line}")
        mc, br = service.endpoints[mailchimp].connector.settings, service.endpoints[brevo].connector.settings
        first, second = _subscribed_members(mc, 2)
        started = datetime.now(timezone.utc) - timedelta(seconds=1)
        _show(f"{mask_email(first)} clicks \"unsubscribe\" in a Mailchimp campaign",
              lambda: _act(_root(mc.host, "/3.0"), {"action": "unsubscribe", "email": first}),
              f"Brevo blocklists {mask_email(first)}", lambda: _brevo_blocklisted(br, first, started))
        _show(f"{mask_email(second)} marks a Brevo campaign as spam",
              lambda: _act(_root(br.host, "/v3"), {"action": "spam", "email": second}),
              f"Mailchimp unsubscribes {mask_email(second)}", lambda: _mailchimp_status(mc, second) == "unsubscribed")
        _wait(lambda: service.worker.running is None and service.inbox.counts(5) == (0, 0), "the last run")
        health = requests.get(f"{service.url}/healthz", timeout=10).json()
        click.echo(f"  /healthz: {health['status']}, last run {health['last_run']['id']} "
                   f"({health['last_run']['trigger']}, {health['last_run']['status']}), {health['queued']} queued")
        if forever:
            click.echo(f"Serving until Ctrl-C: {service.url}/metrics, {service.url}/healthz")
            try:
                while service.worker.alive:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                click.echo("")
    finally:
        service.stop()


def _show(action: str, act: Callable[[], None], outcome: str, reached: Callable[[], bool]) -> None:
    click.echo(f"  {action} …")
    started = time.monotonic()
    act()
    _wait(reached, outcome)
    click.echo(f"  … {outcome} {time.monotonic() - started:.2f} s later (webhook → store → push)")


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise click.ClickException(f"not within {WAIT_SECONDS:.0f} s: {what}")
        time.sleep(0.2)


def _root(host: str, prefix: str) -> str:
    return host[: -len(prefix)] if host.endswith(prefix) else host


def _act(root: str, body: dict[str, Any]) -> None:
    requests.post(f"{root}/_emulator/act", json=body, timeout=10).raise_for_status()


def _subscribed_members(mc: Any, count: int) -> list[str]:
    answer = requests.get(f"{mc.host}/lists/{mc.list_id}/members", auth=("demo", mc.api_key.get_secret_value()),
                          params={"status": "subscribed", "count": count, "fields": "members.email_address"},
                          timeout=10)
    answer.raise_for_status()
    found = [m["email_address"] for m in answer.json()["members"]]
    if len(found) < count:
        raise click.ClickException("the demo audience has too few subscribed members to show the loop")
    return found


def _mailchimp_status(mc: Any, email: str) -> str:
    import hashlib

    member = hashlib.md5(email.lower().encode()).hexdigest()
    answer = requests.get(f"{mc.host}/lists/{mc.list_id}/members/{member}",
                          auth=("demo", mc.api_key.get_secret_value()), timeout=10)
    return answer.json().get("status", "") if answer.ok else ""


def _brevo_blocklisted(br: Any, email: str, since: datetime) -> bool:
    """Whether Brevo lists the address as blocklisted among the contacts changed since ``since``."""
    answer = requests.get(f"{br.host}/contacts", headers={"api-key": br.api_key.get_secret_value()},
                          params={"limit": 1000, "modifiedSince": since.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
                          timeout=10)
    if answer.status_code == 429:  # polled faster than Brevo's contacts limit: not known yet
        return False
    answer.raise_for_status()
    return any(c["email"] == email.lower() and c["emailBlacklisted"] for c in answer.json()["contacts"])

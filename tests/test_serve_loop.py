"""`segsync serve` end to end: an opt-out in one ESP emulator reaches the other over real HTTP.

Both emulators run on 127.0.0.1 (fixtures in ``esp_fixtures``); the server registers its
webhooks through each service's webhook API (Mailchimp ``/lists/{id}/webhooks``, Brevo
``/webhooks``); a person's unsubscribe in one emulator makes it POST its webhook to the server,
which queues it durably, applies it to the store by the pull's rules and pushes the opt-out to
every other system holding the person. Assertions read the emulators' state, the store and the
webhook deliveries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
import requests

from segsync import hookimpl
from segsync.live import LiveProject
from segsync.plugins import PluginHost
from segsync.store.lock import WriterLock
from segsync_serve.server import Service

from .esp_fixtures import LIST_ID, EspProject, brevo, esp, mailchimp  # noqa: F401  (fixtures)

ANN, BO = "ann@example.com", "bo@example.com"
SECRET = "serve-test-secret-0123456789"


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll until ``predicate()`` is true (a generous bound: the machine may be loaded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _ledger(esp: EspProject, email: str) -> list[tuple[str, str, str]]:
    with esp.store() as store:
        return store.con.execute(
            "SELECT status, method, source FROM consent_ledger WHERE contact_key = ? ORDER BY id", [email]
        ).fetchall()


def _runs(esp: EspProject) -> list[tuple[int, str, str]]:
    """(id, trigger, status) of every run, oldest first."""
    with esp.store() as store:
        return [(r["id"], r["options"].get("trigger", "sync"), r["status"]) for r in reversed(store.runs())]


def _start(esp: EspProject, *plugins: object) -> Service:
    live = LiveProject(esp.root / "segsync.toml", host=PluginHost(extra_plugins=list(plugins)))
    service = Service(live, SECRET, port=0, busy_retry=0.05).start()
    assert service.register_webhooks() == [
        f"Mailchimp audience {LIST_ID}: webhook {next(iter(esp.mc.webhooks[LIST_ID]))} registered",
        "Brevo: marketing webhook 1 registered",
    ]
    return service


@pytest.fixture
def served(esp: EspProject) -> Iterator[Service]:
    esp.sync_until_quiet()
    service = _start(esp)
    yield service
    service.stop()


def _idle(service: Service) -> bool:
    return service.worker.running is None and service.inbox.counts(5) == (0, 0)


def test_webhooks_registered_through_each_api_carry_opt_outs_both_ways(esp: EspProject, served: Service) -> None:
    # Registered once through each service's webhook API (Mailchimp checked the URL with a GET).
    (hook,) = esp.mc.webhooks[LIST_ID].values()
    assert hook["url"] == f"{served.url}/webhooks/mc?secret={SECRET}"
    assert (hook["sources"], hook["events"]["unsubscribe"], hook["events"]["campaign"]) == (
        {"user": True, "admin": True, "api": False}, True, False)
    (brevo_hook,) = esp.brevo.webhooks.values()
    assert (brevo_hook["type"], brevo_hook["url"], brevo_hook["events"], brevo_hook["auth"]) == (
        "marketing", f"{served.url}/webhooks/brevo", ["unsubscribed", "hardBounce", "spam", "contactDeleted"],
        {"type": "bearer", "token": SECRET})
    assert served.register_webhooks() == [f"Mailchimp audience {LIST_ID}: webhook already registered",
                                          "Brevo: marketing webhook already registered"]
    assert (len(esp.mc.webhooks[LIST_ID]), len(esp.brevo.webhooks)) == (1, 1)

    # Ann unsubscribes in Mailchimp: Brevo blocklists her.
    assert esp.brevo_contacts()[ANN]["emailBlacklisted"] is False
    runs_before = _runs(esp)
    esp.mc.act({"action": "unsubscribe", "email": ANN, "campaign_id": "camp1"})
    wait_until(lambda: _idle(served) and served.worker.last_run is not None, "the webhook run to end")
    assert esp.brevo_contacts()[ANN]["emailBlacklisted"] is True
    (delivery,) = esp.mc.webhook_sender.deliveries
    assert (delivery.kind, delivery.status, delivery.attempts) == ("unsubscribe", 200, 1)
    assert _ledger(esp, ANN)[-1] == ("opted_out", "email_link", "mc")
    # One run, started by the webhook, read no source and pushed the opt-out to both ESPs.
    assert _runs(esp) == [*runs_before, (runs_before[-1][0] + 1, "webhook", "succeeded")]
    assert esp.mc_members()[ANN]["status"] == "unsubscribed"
    assert esp.brevo_contacts()[BO]["emailBlacklisted"] is False

    # Bo unsubscribes in Brevo: Mailchimp unsubscribes him.
    first_run = served.worker.last_run.run_id
    esp.brevo.act({"action": "unsubscribe", "email": BO})
    wait_until(lambda: _idle(served) and served.worker.last_run.run_id == first_run + 1, "the second webhook run")
    assert esp.mc_members()[BO]["status"] == "unsubscribed"
    (delivery,) = esp.brevo.webhook_sender.deliveries
    assert (delivery.kind, delivery.status) == ("unsubscribe", 200)
    assert _ledger(esp, BO)[-1] == ("opted_out", "email_link", "brevo")
    text = requests.get(f"{served.url}/metrics", timeout=10).text
    assert 'segsync_webhooks_total{connection="mc",outcome="queued"} 1.0' in text
    assert 'segsync_webhooks_total{connection="brevo",outcome="queued"} 1.0' in text
    assert 'segsync_runs_total{status="succeeded",trigger="webhook"} 2.0' in text
    assert "segsync_webhook_lag_seconds_count 2.0" in text


def test_a_redelivered_webhook_appends_nothing_and_writes_nothing(esp: EspProject, served: Service) -> None:
    form = urlencode({"type": "unsubscribe", "fired_at": "2026-01-02 03:04:05", "data[action]": "unsub",
                      "data[reason]": "manual", "data[id]": "x", "data[list_id]": LIST_ID,
                      "data[email]": ANN, "data[email_type]": "html"})
    url = served.webhook_url("mc")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    first = requests.post(url, data=form, headers=headers, timeout=10)
    assert (first.status_code, first.json()["queued"]) == (200, 1)
    wait_until(lambda: _idle(served) and served.worker.last_run is not None, "the first run")
    first_run = served.worker.last_run.run_id
    ledger = _ledger(esp, ANN)
    esp.mc.reset_log()
    again = requests.post(url, data=form, headers=headers, timeout=10)
    assert again.status_code == 200
    # (The store is read only between runs: this process's reader would stop the worker's writer.)
    wait_until(lambda: _idle(served) and served.worker.last_run.run_id == first_run + 1, "the second run")
    assert _ledger(esp, ANN) == ledger
    assert [c for c in esp.mc.calls() if c.method != "GET"] == []
    assert _runs(esp)[-1][1:] == ("webhook", "succeeded")


def test_wrong_secret_401_malformed_400_unknown_404_and_nothing_is_written(esp: EspProject, served: Service) -> None:
    ledger = _ledger(esp, ANN)
    form = {"type": "unsubscribe", "fired_at": "2026-01-02 03:04:05", "data[list_id]": LIST_ID, "data[email]": ANN}
    wrong = requests.post(f"{served.url}/webhooks/mc?secret=nope", data=form, timeout=10)
    assert (wrong.status_code, wrong.json()) == (401, {"error": "the webhook URL's secret is missing or wrong"})
    bad_time = requests.post(served.webhook_url("mc"), data=form | {"fired_at": "yesterday"}, timeout=10)
    assert (bad_time.status_code, bad_time.json()) == (400, {"error": "fired_at: 'yesterday' is not YYYY-MM-DD HH:MM:SS"})
    no_email = requests.post(served.webhook_url("mc"), data={k: v for k, v in form.items() if k != "data[email]"},
                             timeout=10)
    assert (no_email.status_code, no_email.json()) == (400, {"error": "data[email]: missing"})
    brevo_url = served.webhook_url("brevo")
    unsigned = requests.post(brevo_url, json={"event": "unsubscribe", "email": ANN, "ts_event": 1}, timeout=10)
    assert unsigned.status_code == 401
    not_json = requests.post(brevo_url, data=b"{", headers={"Authorization": f"Bearer {SECRET}",
                                                            "Content-Type": "application/json"}, timeout=10)
    assert not_json.status_code == 400 and not_json.json()["error"].startswith("the body is not JSON")
    assert requests.post(f"{served.url}/webhooks/shop", data=form, timeout=10).status_code == 404
    assert requests.get(served.webhook_url("mc"), timeout=10).status_code == 200  # Mailchimp's URL check
    assert served.inbox.counts(5) == (0, 0)
    assert served.worker.last_run is None
    assert _ledger(esp, ANN) == ledger
    text = requests.get(f"{served.url}/metrics", timeout=10).text
    assert 'segsync_webhooks_total{connection="mc",outcome="unauthorized"} 1.0' in text
    assert 'segsync_webhooks_total{connection="mc",outcome="malformed"} 2.0' in text


class HoldPush:
    """Holds the first push of a run until released: a sync that is going on."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    @hookimpl(wrapper=True)
    def segsync_push(self, connector, changes, run_id):  # noqa: ANN001, ANN201
        self.reached.set()
        assert self.release.wait(60), "the test never released the push"
        return (yield)


def test_a_webhook_during_a_scheduled_sync_waits_in_the_inbox_and_is_applied_after(esp: EspProject) -> None:
    esp.sync_until_quiet()
    esp.append("contacts.csv", "dee@example.com,Dee,\n")
    esp.append("consent.csv", "dee@example.com,opted_in,2024-01-01T00:00:00Z,form\n")
    hold = HoldPush()
    service = _start(esp, hold)
    try:
        service.worker.request_sync()
        assert hold.reached.wait(60)
        assert service.worker.running == "schedule"
        esp.mc.act({"action": "unsubscribe", "email": ANN})
        # Answered at once (queued durably), not applied while the sync holds the store.
        assert esp.mc.webhook_sender.wait_idle(30)
        assert [(d.status, d.attempts) for d in esp.mc.webhook_sender.deliveries] == [(200, 1)]
        health = requests.get(f"{service.url}/healthz", timeout=10).json()
        assert (health["running"], health["queued"], health["status"]) == ("schedule", 1, "ok")
        assert esp.brevo_contacts()[ANN]["emailBlacklisted"] is False
        hold.release.set()
        wait_until(lambda: esp.brevo_contacts()[ANN]["emailBlacklisted"], "Ann blocklisted in Brevo")
        wait_until(lambda: _idle(service), "the runs to end")
    finally:
        hold.release.set()
        service.stop()
    assert [r[1:] for r in _runs(esp)[-2:]] == [("schedule", "succeeded"), ("webhook", "succeeded")]
    assert "dee@example.com" in esp.mc_members()


def test_while_another_process_syncs_the_webhook_waits_and_nothing_is_lost(esp: EspProject, served: Service) -> None:
    lock = WriterLock(esp.root / "store.duckdb")
    lock.acquire()  # what a `segsync sync` in another process holds
    try:
        esp.brevo.act({"action": "spam", "email": ANN})
        wait_until(lambda: (served.metrics.registry.get_sample_value("segsync_store_busy_total") or 0) >= 2, "two attempts on the busy store")
        assert served.inbox.counts(5) == (1, 0)
        assert esp.mc_members()[ANN]["status"] == "subscribed"
    finally:
        lock.release()
    wait_until(lambda: esp.mc_members()[ANN]["status"] == "unsubscribed", "Ann unsubscribed in Mailchimp")
    wait_until(lambda: _idle(served), "the webhook run to end")
    assert _ledger(esp, ANN)[-1] == ("complained", "complaint", "brevo")


def test_an_opt_out_a_destination_could_not_take_is_pushed_again_once_it_is_back(esp: EspProject) -> None:
    esp.sync_until_quiet()
    live = LiveProject(esp.root / "segsync.toml", host=PluginHost())
    service = Service(live, SECRET, port=0, busy_retry=0.05, retry_wait=0.2).start()
    try:
        service.register_webhooks()
        esp.brevo.inject("status", count=10_000, status=503, method="POST", path="/v3/contacts")
        esp.mc.act({"action": "unsubscribe", "email": ANN})
        wait_until(lambda: service.worker.last_run is not None, "the webhook run to end")
        assert (service.worker.last_run.trigger, service.worker.last_run.status) == ("webhook", "partial")
        assert esp.brevo_contacts()[ANN]["emailBlacklisted"] is False
        assert esp.mc_members()[ANN]["status"] == "unsubscribed"
        esp.brevo.clear_faults()
        wait_until(lambda: service.worker.last_run.status == "succeeded" and _idle(service), "a run that pushed it")
        assert service.worker.last_run.trigger == "retry"
        assert esp.brevo_contacts()[ANN]["emailBlacklisted"] is True
    finally:
        service.stop()
    # The webhook's record was applied once; the runs after it read nothing and only pushed.
    assert _ledger(esp, ANN).count(("opted_out", "email_link", "mc")) == 1
    assert {r[1] for r in _runs(esp)[-2:]} <= {"webhook", "retry"}

"""Benchmark: from a webhook to the last destination's acknowledgement (segsync serve).

    .venv/bin/python bench/webhook_latency.py [--contacts 3000] [--repeat 7]

The demo business (``segsync demo``'s generator, ``--contacts`` contacts) syncs with the
Mailchimp and Brevo emulators (in this process, on 127.0.0.1) until nothing is left to write;
then ``segsync serve`` (plugins/serve, on a free port) registers its webhooks through both
services' webhook APIs. Each repetition, alternately in Mailchimp and in Brevo, a subscribed
person unsubscribes (the emulator's ``act``), the emulator POSTs its webhook, and the server
queues it, applies it (``segsync.live``) and pushes the opt-out to both systems. Measured, from
the moment the emulator queued the webhook:

* ``answered``: the webhook's 200 (the record is durable in the inbox);
* ``acknowledged``: the end of the last API request of the run to either service (the last
  destination's answer to the push: Mailchimp's batch, Brevo's import process);
* ``run end``: the end of the run (acknowledgements committed, store closed).

Interleaved with them, the same opt-out made without the server (the person unsubscribes in
the other direction's system and a full ``segsync sync`` propagates it: pull, evaluate, push),
from the act to the end of that sync: what the webhook path replaces. Medians of
``--repeat`` each, their ratio, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from segsync.config import ConnectionConfig, load_config
from segsync.live import LiveProject
from segsync.plugins import PluginHost
from segsync.scaffold import write_project
from segsync.sync.runner import RunOptions, Runner
from segsync_brevo.emulator import BrevoEmulator
from segsync_brevo.settings import DEFAULT_ATTRIBUTES
from segsync_mailchimp.emulator import MailchimpEmulator
from segsync_serve.server import Service

LIST_ID = "bench0001"
BREVO_KEY = "bench-brevo-key"


def _setup(root: Path, contacts: int, stack: ExitStack) -> tuple[LiveProject, MailchimpEmulator, BrevoEmulator]:
    write_project(root, contacts=contacts)
    mc = MailchimpEmulator()
    mc.state.create_audience(LIST_ID)
    brevo = BrevoEmulator(api_key=BREVO_KEY, import_delay=0.02)
    for name in DEFAULT_ATTRIBUTES.values():  # as `segsync check --fix` leaves the account (the demo's)
        if name not in ("FIRSTNAME", "LASTNAME"):
            brevo.state.add_attribute(name)
    for emulator in (mc, brevo):
        emulator.start()
        stack.callback(emulator.stop)
    os.environ["SEGSYNC_MAILCHIMP_API_KEY"] = mc.api_key
    os.environ["SEGSYNC_BREVO_API_KEY"] = BREVO_KEY
    host = PluginHost()
    config = load_config(root / "segsync.toml", host)
    config.connections["mailchimp"] = ConnectionConfig("mailchimp", "mailchimp", {
        "list_id": LIST_ID, "host": mc.url}, pull=True, push=True)
    config.connections["brevo"] = ConnectionConfig("brevo", "brevo", {
        "host": brevo.url, "import_poll_seconds": 0.05}, pull=True, push=True)
    return LiveProject(host=host, config=config), mc, brevo


def _subscribed(mc: MailchimpEmulator, brevo: BrevoEmulator) -> list[str]:
    """Addresses subscribed in Mailchimp and not blocklisted in Brevo, in a stable order."""
    with mc.state.lock:
        subscribed = sorted(m.email_address for m in mc.state.audiences[LIST_ID].members.values()
                            if m.status == "subscribed")
    return [e for e in subscribed if (c := brevo.state.contact(e)) is not None and not c.email_blacklisted]


def _last_api_end(mc: MailchimpEmulator, brevo: BrevoEmulator, since: float) -> float:
    return max([e.ended for e in mc.calls() if e.started >= since]
               + [e.ended for e in brevo.requests() if e.started >= since])


def _act(mc: MailchimpEmulator, brevo: BrevoEmulator, in_mailchimp: bool, email: str) -> object:
    if in_mailchimp:
        mc.act({"action": "unsubscribe", "email": email})
        return mc.webhook_sender.deliveries[-1]
    brevo.act({"action": "unsubscribe", "email": email})
    return brevo.webhook_sender.deliveries[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        project, mc, brevo = _setup(Path(tmp) / "demo", args.contacts, stack)
        started = time.monotonic()
        for _ in range(3):  # the first sync, then until nothing is left to write
            summary = Runner(project.config, project.host).run(RunOptions())
            if not any(d.records_written for d in summary.destinations):
                break
        print(f"set-up: {args.contacts} contacts synced with both emulators in {time.monotonic() - started:.1f} s",
              file=sys.stderr)
        service = Service(project, "bench-secret-0123456789abcdef", port=0, busy_retry=0.05).start()
        stack.callback(service.stop)
        service.register_webhooks()
        finished = threading.Event()
        run_end: list[float] = []
        service.worker.observers.append(lambda summary, deliveries: (run_end.append(time.monotonic()),
                                                                      finished.set()))
        people = _subscribed(mc, brevo)
        webhook = {"answered": [], "acknowledged": [], "run end": []}
        full_sync: list[float] = []
        for i in range(args.repeat):
            # The webhook path.
            finished.clear()
            delivery = _act(mc, brevo, i % 2 == 0, people.pop(0))
            assert finished.wait(120), "the webhook run did not finish"
            t0 = delivery.queued_at
            webhook["answered"].append(delivery.delivered_at - t0)
            webhook["acknowledged"].append(_last_api_end(mc, brevo, t0) - t0)
            webhook["run end"].append(run_end[-1] - t0)
            # The path it replaces: the same kind of opt-out, made without a webhook (the worker
            # stays idle) and propagated by the next full sync.
            email = people.pop(0)
            if i % 2 == 0:
                with mc.state.lock:
                    member = mc.state.member(LIST_ID, email)
                    member.status, member.last_changed = "unsubscribed", mc.state.clock()
            else:
                with brevo.state.lock:
                    contact = brevo.state.contact(email)
                    contact.email_blacklisted, contact.modified_at = True, brevo.state.clock.now()
            time.sleep(1.1)  # a Mailchimp pull reads members changed strictly before its start's second
            t0 = time.monotonic()
            Runner(project.config, project.host).run(RunOptions())
            full_sync.append(time.monotonic() - t0)
    load_after = os.getloadavg()
    print(f"contacts {args.contacts}, repetitions {args.repeat} (alternately Mailchimp → Brevo and Brevo → Mailchimp)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("| path | median | min | max |")
    print("|---|---|---|---|")
    for name, values in webhook.items():
        print(f"| webhook → {name} | {statistics.median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s |")
    print(f"| full sync (pull → push) | {statistics.median(full_sync):.2f} s | {min(full_sync):.2f} s | "
          f"{max(full_sync):.2f} s |")
    print(f"ratio webhook → acknowledged / full sync: "
          f"{statistics.median(webhook['acknowledged']) / statistics.median(full_sync):.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: push 100,000 contacts with memberships in 5 tags to the Mailchimp emulator.

    .venv/bin/python bench/mailchimp_push.py [--contacts 100000] [--latency 0.1] [--tags 5] [--in-process]

The emulator runs in a process of its own (``segsync.testing.emulator.EmulatorProcess``) so that
the figures are the connector's, not the emulator's; ``--in-process`` runs it in this process
(the benchmark's earlier set-up, for comparison). ``--tags 0`` pushes contacts without tags.

The emulator answers every call after ``--latency`` seconds and admits 10 simultaneous
connections, like Mailchimp. The connector is driven as the sync runner drives it: ``write``
calls of at most ``max_batch_size`` changes, each cut into write batches of ``write_batch_size``.
Reported:

* calls made vs the minimum Σ ceil(n / 500) over the one endpoint a first sync needs:
  batch-subscribe, whose entries carry the tags a contact enters; and, for comparison with the
  earlier writer, vs the minimum when each tag's additions take bulk tag calls of their own
  (500 a call), for the whole push and per write call;
* wall time vs the ceiling implied by 10 connections × batch size / latency
  (minimum calls / 10 × latency);
* CPU seconds of the connector (this process) and of the emulator (its own process), also per
  1,000 contacts, and the load average;
* the peak number of simultaneous requests the emulator saw, and any 429s.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
import time
import urllib.request
from pathlib import Path

from segsync.connector import ContactChange
from segsync.testing.emulator.process import EmulatorProcess

from segsync_mailchimp import MailchimpConnector, MailchimpSettings
from segsync_mailchimp.emulator import DEFAULT_API_KEY, MailchimpEmulator

BATCH = 500
TAGS = ("all-customers", "every-2nd", "every-3rd", "every-4th", "every-5th")


def tags_of(i: int, tags: tuple[str, ...]) -> tuple[str, ...]:
    # tag k holds every (k+1)-th contact: 100%, 50%, 33%, 25%, 20% of them
    return tuple(tag for k, tag in enumerate(tags) if i % (k + 1) == 0)


class InProcess:
    """The in-process emulator behind the few calls the benchmark makes of EmulatorProcess."""

    def __init__(self, latency: float) -> None:
        self.emulator = MailchimpEmulator(latency=latency, validate=True)

    def __enter__(self) -> InProcess:
        self.emulator.start()
        self.emulator.state.create_audience("aud0001")
        self.url = self.emulator.url
        return self

    def __exit__(self, *_exc: object) -> None:
        self.emulator.stop()

    def statuses(self) -> list[int]:
        return [r.status for r in self.emulator.calls(admitted_only=False)]

    def peak(self) -> int:
        return self.emulator.max_concurrency()

    def members(self) -> int:
        return len(self.emulator.state.audiences["aud0001"].members)

    def cpu(self) -> float | None:
        return None  # shares this process's CPU time


class OwnProcess:
    """The emulator in a child process: its CPU is not the benchmark's."""

    def __init__(self, latency: float) -> None:
        self.process = EmulatorProcess("segsync_mailchimp.emulator:MailchimpEmulator", latency=latency,
                                       validate=True)

    def __enter__(self) -> OwnProcess:
        self.process.start()
        self.process.seed({"audiences": ["aud0001"]})
        self.url = self.process.url
        return self

    def __exit__(self, *_exc: object) -> None:
        self.process.stop()

    def statuses(self) -> list[int]:
        return [r["status"] for r in self.process.log() if r.get("api", True)]

    def peak(self) -> int:
        return int(self.process.stats()["peak_in_flight"])

    def members(self) -> int:
        request = urllib.request.Request(f"{self.url}/lists/aud0001?fields=stats.member_count")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"user:{DEFAULT_API_KEY}".encode()).decode())
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(json.loads(answer.read())["stats"]["member_count"])

    def cpu(self) -> float | None:
        return self.process.cpu_seconds()


def main() -> None:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--tags", type=int, default=len(TAGS), choices=range(len(TAGS) + 1))
    parser.add_argument("--in-process", action="store_true", help="run the emulator in this process")
    args = parser.parse_args()
    tags = TAGS[:args.tags]

    # Each write's changes are made when it is sent, as the runner reads one page of the diff at
    # a time: a million changes held at once would make the collector re-scan them all, a cost
    # of the benchmark, not of a sync.
    def change(i: int) -> ContactChange:
        return ContactChange(f"contact{i:06d}@example.com", "upsert", "subscribed",
                             attributes={"first_name": f"First{i}", "last_name": f"Last{i}"},
                             tags_add=tags_of(i, tags))

    step = min(MailchimpConnector.max_batch_size or args.contacts, args.contacts)
    bounds = [(i, min(i + step, args.contacts)) for i in range(0, args.contacts, step)]

    def tag_count(tag: str, first: int, end: int) -> int:
        """Contacts first..end-1 holding ``tag`` (tag k: every (k+1)-th, as ``tags_of``)."""
        every = tags.index(tag) + 1
        return -(-end // every) - -(-first // every)

    tag_sizes = {tag: tag_count(tag, 0, args.contacts) for tag in tags}

    min_batch = sum(math.ceil((end - first) / BATCH) for first, end in bounds)  # batch-subscribe, tags inside
    min_global = math.ceil(args.contacts / BATCH) + sum(math.ceil(n / BATCH) for n in tag_sizes.values())
    min_per_write = sum(
        math.ceil((end - first) / BATCH) + sum(math.ceil(tag_count(t, first, end) / BATCH) for t in tags)
        for first, end in bounds
    )
    # Since write batches (500 contacts and their tag calls) are acknowledged one by one, a tag
    # takes one call per write batch holding members of it.
    unit = MailchimpConnector.write_batch_size or step
    min_per_write_batch = sum(
        1 + sum(1 for t in tags if tag_count(t, i, min(i + unit, end)))
        for first, end in bounds for i in range(first, end, unit)
    )
    setup = 1 + len(tags) if tags else 0  # list the audience's tags once, create each missing tag once

    with (InProcess if args.in_process else OwnProcess)(args.latency) as emulator:
        settings = MailchimpSettings(api_key=DEFAULT_API_KEY, list_id="aud0001", host=emulator.url)
        connector = MailchimpConnector("bench", settings, Path("."))
        emulator_cpu_started = emulator.cpu()
        calls = ok = 0
        wall = cpu = 0.0
        for first, end in bounds:
            chunk = [change(i) for i in range(first, end)]  # not timed: the runner's diff read
            started, cpu_started = time.perf_counter(), time.process_time()
            result = connector.write(chunk)
            wall += time.perf_counter() - started
            cpu += time.process_time() - cpu_started
            calls += result.calls
            ok += sum(1 for o in result.outcomes if o.status == "ok")
            del chunk, result
        emulator_cpu = None if emulator_cpu_started is None else emulator.cpu() - emulator_cpu_started
        connector.close()
        refused = sum(1 for status in emulator.statuses() if status == 429)
        peak = emulator.peak()
        members = emulator.members()

    ceiling = min_batch / 10 * args.latency
    print(f"contacts            {args.contacts:,} in {len(bounds)} write calls of ≤{step:,}")
    print(f"tag memberships     {sum(tag_sizes.values()):,} ({', '.join(f'{t} {n:,}' for t, n in tag_sizes.items())})")
    print(f"outcomes ok         {ok:,}; members in emulator {members:,}")
    print(f"calls made          {calls:,}")
    print(f"minimum calls       {min_batch:,} batch-subscribe calls (Σ ceil(n/500) per write; tags inside)")
    print(f"  tag calls apart   {min_global:,} for the whole push (Σ ceil(n/500) per endpoint); "
          f"{min_per_write:,} split into write calls; {min_per_write_batch:,} split into write "
          f"batches of {unit}; + {setup} tag set-up calls")
    print(f"wall time           {wall:.2f} s")
    print(f"ceiling             {ceiling:.2f} s (= {min_batch} calls / 10 connections × {args.latency} s); "
          f"i.e. {10 * BATCH / args.latency:,.0f} member operations/s")
    print(f"wall / ceiling      {wall / ceiling:.2f}")
    print(f"calls / minimum     {calls / min_batch:.2f} (batch-subscribe minimum); "
          f"{calls / (min_global + setup):.2f} (tag calls apart, whole push + set-up); "
          f"{calls / (min_per_write_batch + setup):.2f} (tag calls apart, per write batch + set-up)")
    per_k = 1000 / args.contacts
    if emulator_cpu is None:
        print(f"process CPU time    {cpu:.2f} s (connector + in-process emulator share one interpreter)")
    else:
        print(f"connector CPU time  {cpu:.2f} s ({cpu / max(calls, 1) * 1000:.1f} ms a call, "
              f"{cpu * per_k * 1000:.1f} ms per 1,000 contacts); emulator process CPU {emulator_cpu:.2f} s "
              f"({emulator_cpu * per_k * 1000:.1f} ms per 1,000 contacts)")
    print(f"load average        {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min, at the end)")
    print(f"peak concurrency    {peak} (429s: {refused})")
    sys.exit(0 if ok == args.contacts and refused == 0 else 1)


if __name__ == "__main__":
    main()

"""CPU the Mailchimp and Brevo emulators spend per request, each in a process of its own.

    .venv/bin/python bench/emulators.py [--tree PATH] [--batches 40] [--threads 4]

Starts ``python -m segsync_<name>.emulator`` (request validation on, rate limits off) from the
source tree ``--tree`` (default: this repository; give a checkout of an older revision to
compare), drives it from this process with ``--threads`` parallel clients, and reads the
emulator process's CPU seconds (user + system, /proc) before and after each workload:

* mailchimp.subscribe: ``--batches`` batch-subscribe calls of 500 new members (2 merge fields,
  2 tags each), the full answer as Mailchimp sends it (member documents included);
* mailchimp.subscribe_fields: the same with ``fields=total_created,total_updated,error_count,errors``
  (what a client that asks only for what it needs gets);
* brevo.import: ``--batches`` imports of 1,000 JSON rows (3 attributes) into one list;
* brevo.batch: ``--batches`` ``POST /contacts/batch`` of 100 contacts;
* brevo.page: ``--batches`` ``GET /contacts?limit=1000`` pages (answers validated against the spec).

Prints one JSON object per workload: calls, emulator CPU seconds, CPU ms per call.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
MC_KEY = "0123456789abcdef0123456789abcdef-us1"
BREVO_KEY = "bench-key"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SPECS = ROOT.parent / "shared" / "specs"


def start(tree: Path, module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    paths = [tree / "core", tree / "connectors" / "mailchimp", tree / "connectors" / "brevo"]
    # The specs by name, so that a tree checked out elsewhere validates against the same ones.
    env = {"SEGSYNC_MAILCHIMP_SPEC": str(SPECS / "mailchimp-marketing-v3.openapi.yaml"),
           "SEGSYNC_BREVO_SPEC": str(SPECS / "brevo-v3.swagger.yaml"),
           **os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    url = next(word for word in line.split() if word.startswith("http://127.0.0.1:")).rstrip(";,")
    return proc, url


def measure(name: str, pid: int, calls: list, threads: int) -> dict:
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))
    before = cpu_seconds(pid)
    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(lambda call: call(session).status_code, calls))
    spent = cpu_seconds(pid) - before
    result = {"workload": name, "calls": len(calls), "statuses": sorted(set(statuses)),
              "emulator_cpu_s": round(spent, 2), "cpu_ms_per_call": round(spent * 1000 / len(calls), 1)}
    print(json.dumps(result), flush=True)
    return result


def mailchimp(tree: Path, batches: int, threads: int) -> None:
    proc, url = start(tree, "segsync_mailchimp.emulator", "--api-key", MC_KEY)
    auth = ("bench", MC_KEY)
    try:
        def batch(offset: int, query: str = ""):
            members = [{"email_address": f"c{offset + i:07d}@example.com", "status": "subscribed",
                        "merge_fields": {"FNAME": f"F{i}", "LNAME": f"L{i}"}, "tags": ["vip", "news"]}
                       for i in range(500)]
            return lambda s: s.post(f"{url}/lists/aud0001{query}", json={"members": members, "update_existing": True},
                                    auth=auth, timeout=120)
        measure("mailchimp.subscribe", proc.pid, [batch(n * 500) for n in range(batches)], threads)
        fields = "?fields=total_created,total_updated,error_count,errors"
        measure("mailchimp.subscribe_fields", proc.pid,
                [batch((batches + n) * 500, fields) for n in range(batches)], threads)
    finally:
        proc.terminate()
        proc.wait()


def brevo(tree: Path, batches: int, threads: int) -> None:
    proc, url = start(tree, "segsync_brevo.emulator", "--api-key", BREVO_KEY, "--no-rate-limits")
    headers = {"api-key": BREVO_KEY}
    try:
        folder = requests.post(f"{url}/contacts/folders", json={"name": "bench"}, headers=headers, timeout=30).json()
        listed = requests.post(f"{url}/contacts/lists", json={"name": "bench", "folderId": folder["id"]},
                               headers=headers, timeout=30).json()

        def import_(offset: int):
            rows = [{"email": f"u{offset + i:07d}@example.com",
                     "attributes": {"FIRSTNAME": f"F{i}", "LASTNAME": f"L{i}", "COUNTRY": "FR"}} for i in range(1000)]
            body = {"jsonBody": rows, "listIds": [listed["id"]], "updateExistingContacts": True}
            return lambda s: s.post(f"{url}/contacts/import", json=body, headers=headers, timeout=120)

        def batch_update(offset: int):
            contacts = [{"email": f"u{offset + i:07d}@example.com", "attributes": {"FIRSTNAME": "G"},
                         "listIds": [listed["id"]]} for i in range(100)]
            return lambda s: s.post(f"{url}/contacts/batch", json={"contacts": contacts}, headers=headers, timeout=120)

        measure("brevo.import", proc.pid, [import_(n * 1000) for n in range(batches)], threads)
        for _ in range(600):  # the imports run in the emulator's worker: wait for the contacts
            page = requests.get(f"{url}/contacts", params={"limit": 1}, headers=headers, timeout=30).json()
            if page.get("count", 0) >= batches * 1000:
                break
            time.sleep(0.1)
        measure("brevo.batch", proc.pid, [batch_update(n * 100) for n in range(batches)], threads)
        measure("brevo.page", proc.pid, [
            (lambda offset: lambda s: s.get(f"{url}/contacts", params={"limit": 1000, "offset": offset},
                                            headers=headers, timeout=120))(n * 1000)
            for n in range(batches)], threads)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree whose emulators to run")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps({"tree": "this repository" if args.tree.resolve() == ROOT else args.tree.resolve().name,
                      "load": os.getloadavg()}), flush=True)
    mailchimp(args.tree, args.batches, args.threads)
    brevo(args.tree, args.batches, args.threads)


if __name__ == "__main__":
    main()

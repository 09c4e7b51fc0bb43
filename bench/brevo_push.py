"""Push 100,000 contacts with memberships in 5 lists to the Brevo emulator and count calls.

    .venv/bin/python bench/brevo_push.py [--contacts 100000] [--latency 0.1] [--unthrottled]

Runs the real connector (through sib-api-v3-sdk) against an in-process emulator that adds
``--latency`` seconds to every request and enforces Brevo's general-tier rate limits unless
``--unthrottled``. Prints calls by operation, the lower bound of calls, wall time and the
wall time the documented rate limits alone would impose on the calls made.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr
from segsync.connector import ContactChange

from segsync_brevo import BrevoConnector, BrevoSettings
from segsync_brevo.emulator import BrevoEmulator
from segsync_brevo.limits import GENERAL_TIER, IMPORT_MAX_BYTES, bucket_for

LISTS = ("vip", "churn_risk", "newsletter", "high_value", "trial")


def changes(n: int) -> list[ContactChange]:
    out = []
    for i in range(n):
        segments = tuple(name for bit, name in enumerate(LISTS) if (i * 2654435761 >> (bit + 3)) & 1)
        out.append(
            ContactChange(
                contact_key=f"user{i:06d}@example.com",
                op="upsert",
                status="subscribed",
                attributes={"first_name": f"First{i}", "last_name": f"Last{i}", "country": "FR"},
                tags=segments,
                tags_add=segments,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--unthrottled", action="store_true")
    args = parser.parse_args()
    batch = changes(args.contacts)
    memberships = sum(len(c.tags_add) for c in batch)
    with BrevoEmulator(
        api_key="bench",
        latency=args.latency,
        rate_limits=None if args.unthrottled else GENERAL_TIER,
        import_delay=0.5,
        import_rows_per_second=100_000,
    ) as emulator:
        settings = BrevoSettings(api_key=SecretStr("bench"), host=emulator.url)
        connector = BrevoConnector("bench", settings, Path(tempfile.gettempdir()))
        connector.fix()  # COUNTRY is not a default Brevo attribute
        emulator.clear_log()
        setup_calls = connector.api.calls
        started = time.monotonic()
        result = connector.write(batch)
        wall = time.monotonic() - started
        log = emulator.requests()
        assert all(o.status == "ok" for o in result.outcomes), "some contacts were not written"
        stored = sum(1 for c in emulator.state.contacts.values() if c.email.startswith("user"))
        members = {l.name: len(l.members) for l in emulator.state.lists.values()}
        connector.close()
    by_op = dict(connector.api.calls_by_op)
    for op in ("get_attributes", "create_attribute"):
        by_op.pop(op, None)
    # Lower bound: every contact's row once plus one email per membership, packed into 10 MB
    # imports (each needs at least one process poll), plus the unavoidable setup reads/creates.
    row_bytes = sum(len(json.dumps({"email": c.contact_key, "attributes": {"FIRSTNAME": "x"}})) for c in batch[:1]) * len(batch)
    email_bytes = sum(len(json.dumps({"email": c.contact_key})) for c in batch[:1]) * memberships
    min_imports = math.ceil((row_bytes + email_bytes) / IMPORT_MAX_BYTES)
    setup = by_op.get("get_lists", 0) + by_op.get("get_folders", 0) + by_op.get("create_folder", 0) + by_op.get("create_list", 0)
    minimum = setup + 2 * min_imports
    # What the documented limits alone impose on the calls made (contacts: 10/s; others: per hour).
    per_bucket: dict[str, int] = {}
    for entry in log:
        bucket = bucket_for(entry.path)
        per_bucket[bucket] = per_bucket.get(bucket, 0) + 1
    ceiling = 0.0
    for bucket, count in per_bucket.items():
        for limit, window in GENERAL_TIER[bucket]:
            ceiling = max(ceiling, (math.ceil(count / limit) - 1) * window)
    figures = {
        "contacts": args.contacts,
        "memberships": memberships,
        "latency_s": args.latency,
        "rate_limits": "none" if args.unthrottled else "general tier",
        "calls_total": result.calls,
        "calls_by_op": by_op,
        "calls_minimum": minimum,
        "naive_list_add_calls": math.ceil(args.contacts / 150) + sum(math.ceil(n / 150) for n in members.values() if n),
        "wall_s": round(wall, 2),
        "rate_limit_floor_s": ceiling,
        "request_bytes": sum(e.request_bytes for e in log),
        "stored_contacts": stored,
        "list_members": members,
        "pacer_waits": connector.api.pacer.waits,
        "status_429": sum(1 for e in log if e.status == 429),
        "setup_calls_before_write": setup_calls,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

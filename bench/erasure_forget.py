"""How long `segsync forget` takes on a large store (the file rewrite dominates).

    .venv/bin/python bench/erasure_forget.py [--contacts 100000] [--events-per-contact 10]

Builds a project in a temporary folder whose store holds N contacts, N x E events (with
properties), a consent record, an identity, an acknowledgement and a segment snapshot row per
contact, then runs `segsync forget --yes --json` for one address through the real CLI and prints
the elapsed time, the store's size and whether any byte of the address is left.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segsync.store import Store

CONFIG = """
[store]
path = "store.duckdb"

[connections.upload]
type = "files"
output = "out/audience"
"""


def build(root: Path, contacts: int, events_per_contact: int) -> None:
    (root / "segsync.toml").write_text(CONFIG, encoding="utf-8")
    with Store(root / "store.duckdb") as store:
        con = store.con
        con.execute("INSERT INTO contacts (contact_key, first_name, custom, first_seen_at, updated_at, updated_by) "
                    "SELECT 'person' || i || '@example.com', 'P' || i, '{\"tier\": \"gold\"}', now(), now(), 'shop' "
                    "FROM range(?) r(i)", [contacts])
        con.execute("INSERT INTO events (contact_key, type, occurred_at, source, source_event_id, url, properties) "
                    "SELECT 'person' || (i % $n) || '@example.com', 'email.opened', now() - to_seconds(i), 'shop', "
                    "'e' || i, 'https://shop.test/p/' || (i % 97), '{\"campaign\": \"c' || (i % 13) || '\"}' "
                    "FROM range($total) r(i)", {"n": contacts, "total": contacts * events_per_contact})
        con.execute("INSERT INTO consent_ledger (contact_key, channel, purpose, status, recorded_at, source, method, "
                    "evidence, ingested_at) SELECT contact_key, 'email', 'marketing', 'opted_in', now(), 'shop', "
                    "'form', 'web form', now() FROM contacts")
        con.execute("INSERT INTO identities SELECT 'upload', contact_key, contact_key, '{}', now() FROM contacts")
        con.execute("INSERT INTO acknowledged SELECT 'upload', contact_key, md5(contact_key), 'subscribed', 1, now() "
                    "FROM contacts")
        con.execute("INSERT INTO segment_snapshots SELECT 1, 'gold', contact_key, now() FROM contacts")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events-per-contact", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.contacts, args.events_per_contact)
        store = root / "store.duckdb"
        address = f"person{args.contacts // 2}@example.com"
        size = store.stat().st_size
        segsync = Path(sys.executable).with_name("segsync")
        start = time.perf_counter()
        result = subprocess.run([str(segsync), "--config", str(root / "segsync.toml"), "forget", "--yes", "--json",
                                 address], capture_output=True, text=True, env={**os.environ, "SEGSYNC_PLUGINS": "files"})
        elapsed = time.perf_counter() - start
        left = address.encode() in b"".join(p.read_bytes() for p in root.iterdir()
                                            if p.name.startswith("store.duckdb") and p.is_file())
        print(f"contacts={args.contacts} events={args.contacts * args.events_per_contact} "
              f"store={size / 1e6:.1f} MB -> {store.stat().st_size / 1e6:.1f} MB  forget: {elapsed:.2f} s "
              f"(exit {result.returncode})  address bytes left: {left}")


if __name__ == "__main__":
    main()

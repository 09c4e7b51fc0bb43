"""``segsync contacts show``: one person as the store holds them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import json_option
from segsync.cli.output import console, echo_json
from segsync.cli.store import read_store
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.store import Store


@click.group()
def contacts() -> None:
    """Look up people in the store."""


@contacts.command("show")
@click.argument("email")
@json_option()
@click.option("--events", "event_limit", default=20, show_default=True, help="How many recent events.")
@pass_ctx
def contacts_show(ctx: Context, email: str, as_json: bool, event_limit: int) -> None:
    """One person's record, identities, recent events and consent ledger."""
    from segsync.model import InvalidEmail, mask_email, normalize_email

    try:
        key = normalize_email(email)
    except InvalidEmail as exc:
        raise click.BadParameter(f"{email!r}: {exc}") from None
    with read_store(ctx) as store:
        record = contact_record(store, key, event_limit)
    if record is None:
        raise click.ClickException(f"no contact {mask_email(key)} in the store")
    if as_json:
        echo_json(record)
        return
    out = console()
    out.print(f"[bold]{record['email']}[/bold]  (first seen {record['first_seen_at']}, updated by {record['updated_by']})")
    for name, value in record["attributes"].items():
        out.print(f"  {name}: {value}", markup=False)
    out.print("Identities: " + (", ".join(f"{i['connection']}={i['external_id']}" for i in record["identities"]) or "none"))
    out.print("Consent ledger:")
    for c in record["consent"]:
        out.print(f"  {c['recorded_at']} {c['channel']}/{c['purpose']} {c['status']} via {c['method']} from {c['source']}", markup=False)
    out.print(f"Recent events ({len(record['events'])}):")
    for e in record["events"]:
        out.print(f"  {e['occurred_at']} {e['type']} {e['source']}:{e['source_event_id']}", markup=False)


def contact_record(store: Store, key: str, event_limit: int) -> dict[str, Any] | None:
    from segsync.store import dicts as store_dicts

    rows = store_dicts(store.con, "SELECT * FROM contacts WHERE contact_key = ?", [key])
    if not rows:
        return None
    row = rows[0]
    attributes = {k: v for k, v in row.items()
                  if k not in ("contact_key", "custom", "first_seen_at", "updated_at", "updated_by") and v is not None}
    attributes.update(json.loads(row["custom"] or "{}"))

    def dicts(sql: str, params: list[Any]) -> list[dict[str, Any]]:
        return store_dicts(store.con, sql, params)

    return {
        "email": key,
        "first_seen_at": row["first_seen_at"],
        "updated_at": row["updated_at"],
        "updated_by": row["updated_by"],
        "attributes": attributes,
        "identities": dicts("SELECT connection, external_id, properties, seen_at FROM identities WHERE contact_key = ? ORDER BY connection", [key]),
        "consent": dicts("SELECT id, channel, purpose, status, recorded_at, source, method, evidence FROM consent_ledger WHERE contact_key = ? ORDER BY recorded_at, id", [key]),
        "events": dicts("SELECT type, occurred_at, source, source_event_id, value, currency, url, category, properties FROM events WHERE contact_key = ? ORDER BY occurred_at DESC LIMIT ?", [key, event_limit]),
        "destinations": dicts("SELECT destination, status, acked_at, run_id FROM acknowledged WHERE contact_key = ? ORDER BY destination", [key]),
    }


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(contacts)

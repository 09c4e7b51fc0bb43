"""``segsync triggers``: each configured trigger and the state of its outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import json_option
from segsync.cli.output import console, echo_json
from segsync.cli.store import read_store
from segsync.hookspecs import hookimpl

STATES = ("pending", "sending", "failed", "delivered", "rejected", "blocked")


@click.command()
@json_option()
@pass_ctx
def triggers(ctx: Context, as_json: bool) -> None:
    """[[triggers]]: what each one does, and its deliveries by state (pending, sending: in doubt
    after a crash, failed: retried by the next sync, delivered, rejected, blocked by consent)."""
    config = ctx.config()
    counts: dict[str, dict[str, int]] = {}
    last: dict[str, Any] = {}
    if Path(config.store_path).exists():
        with read_store(ctx) as store:
            for trigger, status, n in store.con.execute(
                    "SELECT trigger, status, count(*) FROM trigger_outbox GROUP BY ALL").fetchall():
                counts.setdefault(trigger, {})[status] = n
            last = dict(store.con.execute(
                "SELECT trigger, max(delivered_at) FROM trigger_outbox GROUP BY ALL").fetchall())
    from segsync.http import safe_url

    rows = []
    for t in config.triggers:
        target = {"event": f"{t.connection}: event {t.event}", "tag": f"{t.connection}: tag {t.tag}",
                  "webhook": f"webhook {safe_url(t.url or '')}", "file": f"file {t.path}"}[t.action]
        rows.append({"name": t.name, "segment": t.segment, "on": t.on, "action": t.action, "target": target,
                     "deliveries": {s: counts.get(t.name, {}).get(s, 0) for s in STATES},
                     "last_delivered_at": last.get(t.name)})
    # Rows of triggers since removed from segsync.toml: never delivered, shown so they are not lost.
    for name in sorted(set(counts) - {t.name for t in config.triggers}):
        rows.append({"name": name, "segment": None, "on": None, "action": None, "target": "(no longer configured)",
                     "deliveries": {s: counts[name].get(s, 0) for s in STATES}, "last_delivered_at": last.get(name)})
    if as_json:
        echo_json(rows, redact=True)
        return
    if not rows:
        click.echo("No [[triggers]] in segsync.toml; see docs/triggers.md.")
        return
    from rich.table import Table

    table = Table(title="Triggers", title_justify="left")
    for col in ("trigger", "segment", "on", "does", *STATES):
        table.add_column(col, justify="right" if col in STATES else "left")
    for r in rows:
        table.add_row(r["name"], r["segment"] or "-", r["on"] or "-", r["target"],
                      *(str(r["deliveries"][s]) for s in STATES))
    console().print(table)
    owed = sum(r["deliveries"][s] for r in rows for s in ("pending", "sending", "failed"))
    if owed:
        click.echo(f"{owed} deliveries are owed: the next `segsync sync` sends them "
                   "(`segsync runs --errors` says why earlier attempts failed).")


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(triggers)

"""``segsync suppress``, ``segsync forget`` and ``segsync consent show|export``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import LazyChoice, json_option
from segsync.cli.output import console, echo_json
from segsync.cli.store import read_store, write_store
from segsync.hookspecs import hookimpl

if TYPE_CHECKING:
    from segsync.config import ProjectConfig
    from segsync.engines import Engine


@contextmanager
def project_engine(ctx: Context, config: ProjectConfig) -> Iterator[Engine | None]:
    """The project's external engine, open (None on the embedded store; docs/scale.md)."""
    from segsync.config import external_engine

    with external_engine(config, ctx.host) as engine:
        yield engine


def _channels() -> tuple[str, ...]:
    from segsync.consent.suppression import CHANNELS

    return CHANNELS


def _reasons() -> list[str]:
    from segsync.consent.suppression import REASONS

    return [r for r in REASONS if r != "erasure"]  # erasure: only `segsync forget` records it


def _keys(emails: tuple[str, ...], file: Path | None = None) -> list[str]:
    from segsync.model import InvalidEmail, mask_email, normalize_email

    raw = list(emails)
    if file is not None:
        raw += [line.strip() for line in file.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    if not raw:
        raise click.UsageError("give at least one address (or --file)")
    keys = []
    for value in raw:
        try:
            keys.append(normalize_email(value))
        except InvalidEmail as exc:
            raise click.BadParameter(f"{mask_email(value.strip())}: {exc}") from None
    return list(dict.fromkeys(keys))


# -- suppress ------------------------------------------------------------------------------


@click.group()
def suppress() -> None:
    """The global suppression list: nobody on it is subscribed anywhere, on any purpose."""


@suppress.command("add")
@click.argument("emails", nargs=-1)
@click.option("--channel", type=LazyChoice(_channels), default="email", show_default=True)
@click.option("--reason", type=LazyChoice(_reasons),
              default="opt_out", show_default=True)
@click.option("--note", help="Free text kept with the entry (e.g. a ticket number).")
@click.option("--source", default="cli", show_default=True, help="Who asked for it.")
@pass_ctx
def suppress_add(ctx: Context, emails, channel, reason, note, source) -> None:
    """Suppress addresses; the next sync unsubscribes them wherever they are held."""
    from segsync.consent import suppression

    keys = _keys(emails)
    with write_store(ctx) as store:
        for key in keys:
            entry, created = suppression.add(store.con, key, channel=channel, reason=reason,
                                             source=source, note=note)
            click.echo(f"{'suppressed' if created else 'already suppressed'}: {key} "
                       f"({channel}, {reason}, entry {entry})")


@suppress.command("remove")
@click.argument("emails", nargs=-1)
@click.option("--channel", type=LazyChoice(_channels), help="Only this channel's entries.")
@click.option("--note", help="Why (kept with the entry).")
@click.option("--by", "removed_by", default="cli", show_default=True)
@pass_ctx
def suppress_remove(ctx: Context, emails, channel, note, removed_by) -> None:
    """Lift suppressions (also an erased person's hash). Consent still decides afterwards."""
    from segsync.consent import suppression

    keys = _keys(emails)
    with write_store(ctx) as store:
        for key in keys:
            n = suppression.remove(store.con, key, channel=channel, removed_by=removed_by, note=note)
            click.echo(f"{key}: {n} entr{'y' if n == 1 else 'ies'} lifted")


@suppress.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Also lifted entries.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def suppress_list(ctx: Context, include_removed: bool, as_json: bool) -> None:
    """The suppression list (erased people appear only as a hash)."""
    from segsync.consent import suppression

    with read_store(ctx) as store:
        rows = suppression.entries(store.con, include_removed=include_removed)
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        who = r["contact_key"] or f"(erased) sha256:{r['address_hash'][:12]}…"
        lifted = f"  lifted {r['removed_at']:%Y-%m-%d} by {r['removed_by']}" if r["removed_at"] else ""
        console().print(f"{r['id']:>5} {who:<40} {r['channel']:<6} {r['reason']:<10} "
                        f"{r['source']:<10} {r['created_at']:%Y-%m-%d %H:%M}{lifted}", markup=False)
    click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


# -- forget --------------------------------------------------------------------------------


@click.command()
@click.argument("emails", nargs=-1)
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file with one address per line (# comments allowed).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def forget(ctx: Context, emails, file, as_json: bool, yes: bool) -> None:
    """Erase people: from the store and every connected system; keep only a hashed suppression."""
    from segsync.consent import erasure
    from segsync.model import mask_email
    from segsync.redaction import for_output
    from segsync.sync.runner import Runner

    keys = _keys(emails, file)
    if not yes and not as_json:
        click.confirm(f"Erase {len(keys)} person(s) from the store and every connected system?",
                      abort=True)
    config = ctx.config()
    runner = Runner(config, ctx.host)
    connectors = runner.connectors()
    engine, engine_error = _erasure_engine(config, ctx)
    try:
        with write_store(ctx, config.store_path) as store:
            reports = erasure.forget(store, connectors, ctx.host, keys, engine=engine,
                                     engine_error=engine_error)
    finally:
        for connector in connectors.values():
            connector.close()
        if engine is not None and engine_error is None:
            engine.close()
    if as_json:
        echo_json([r.to_dict() for r in reports])
    else:
        for r in reports:
            rows = sum(r.removed_rows.values())
            click.echo(f"{mask_email(r.email)}: removed from the store ({rows} rows); "
                       "a hashed suppression entry blocks re-imports")
            if r.store_error:
                click.echo(f"  store: {for_output(r.store_error)}")
            for t in r.targets:
                click.echo(f"  {t.connection:<16} {t.method:<8} {for_output(t.describe())}")
            if r.left:
                click.echo(f"  left (still holding the person): {', '.join(t.connection for t in r.left)}")
    if not all(r.done for r in reports):
        sys.exit(1)


def _erasure_engine(config: ProjectConfig, ctx: Context) -> tuple[Engine | None, str | None]:
    """The project's external engine, opened (None on the embedded store), and why it could not
    be opened: the erasure there then stays pending (retried by the next sync)."""
    from segsync.config import open_engine
    from segsync.engines import DEFAULT_ENGINE, EngineUnavailable

    if config.store_engine == DEFAULT_ENGINE:
        return None, None
    engine = open_engine(config, ctx.host)
    try:
        engine.open()
    except EngineUnavailable as exc:
        return engine, str(exc)
    return engine, None


# -- consent show / export -----------------------------------------------------------------


@click.group()
def consent() -> None:
    """One person's consent: the ledger, what decides it, what each system was told."""


@consent.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def consent_show(ctx: Context, email: str, as_json: bool) -> None:
    """The ledger, effective status per channel and purpose, and each destination's state."""
    from segsync.config import consent_settings
    from segsync.consent import audit

    key = _keys((email,))[0]
    config = ctx.config()
    settings = consent_settings(config, ctx.host.consent_policies())
    with read_store(ctx) as store, project_engine(ctx, config) as engine:
        data = audit.show(store.con, key, settings, destinations=list(config.connections), engine=engine)
    if as_json:
        echo_json(data)
        return
    console().print(f"[bold]{key}[/bold]")
    console().print("Ledger:")
    for r in data["ledger"]:
        flag = "  (echo of segsync's push: ignored)" if r["echo"] else ""
        console().print(f"  #{r['id']} {r['recorded_at']:%Y-%m-%d %H:%M:%S} {r['channel']}/{r['purpose']} "
                        f"{r['status']} via {r['method']} from {r['source']}{flag}", markup=False)
    console().print("Effective:")
    for e in data["effective"]:
        decided = e["decided_by"] or {}
        if "suppression" in decided:
            by = f"suppression #{decided['suppression']['id']} ({decided['suppression']['reason']})"
        elif "ledger" in decided and decided["ledger"]:
            by = f"ledger #{decided['ledger']['id']} ({decided['ledger']['status']} via {decided['ledger']['method']})"
        else:
            by = "no record"
        console().print(f"  {e['channel']}/{e['purpose']}: {e['status']}  [policy {e['policy']}; decided by {by}]",
                        markup=False)
    if data["suppressions"]:
        console().print("Suppressions:")
        for s in data["suppressions"]:
            state = f"lifted {s['removed_at']}" if s["removed_at"] else "active"
            console().print(f"  #{s['id']} {s['channel']} {s['reason']} from {s['source']} {s['created_at']} {state}",
                            markup=False)
    console().print("Destinations:")
    for d in data["destinations"]:
        holds = d["holds"]
        last = d["last_status_change"]
        held = f"holds {holds['status']} (acknowledged {holds['acked_at']:%Y-%m-%d %H:%M:%S}, run {holds['run_id']})" \
            if holds else "holds nothing from segsync"
        change = (f"; last status change {last['before_status'] or '-'} → {last['after_status']} "
                  f"{last['outcome']} {last['changed_at']:%Y-%m-%d %H:%M:%S} (run {last['run_id']})") if last else ""
        console().print(f"  {d['destination']}: should hold {d['should_hold']} [policy {d['policy']}]; {held}{change}",
                        markup=False)


@consent.command("export")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="JSON (the only format; accepted for clarity).")
@pass_ctx
def consent_export(ctx: Context, email: str, as_json: bool) -> None:
    """Everything the store holds about a person, as JSON (for access requests)."""
    from segsync.consent import audit
    from segsync.model import mask_email

    key = _keys((email,))[0]
    with read_store(ctx) as store:
        data = audit.export(store.con, key)
    if data is None:
        raise click.ClickException(f"the store holds nothing about {mask_email(key)}")
    echo_json(data)


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(suppress)
    cli.add_command(forget)
    cli.add_command(consent)

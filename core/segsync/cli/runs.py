"""``segsync runs``: the run history, readable while a sync is running."""

from __future__ import annotations

from typing import Any

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import json_option
from segsync.cli.output import echo_json
from segsync.cli.store import read_store
from segsync.hookspecs import hookimpl
from segsync.statuses import PartStatus, RunStatus


@click.command()
@json_option()
@click.option("--limit", default=20, show_default=True)
@click.option("--errors", "show_errors", is_flag=True, help="Also list record errors of each run.")
@pass_ctx
def runs(ctx: Context, as_json: bool, limit: int, show_errors: bool) -> None:
    """Run history, newest first (during a sync: as of its start, plus its live progress)."""
    from segsync.store.status import describe, running_status

    path = ctx.store_path()
    live = running_status(path)
    if live is not None:
        # A sync holds the store (DuckDB admits no reader meanwhile): show what it published.
        click.echo(f"a sync is running ({describe(live)}); history as of its start", err=True)
        if show_errors:
            click.echo("record errors are in the store: `segsync runs --errors` lists them once the "
                       "sync ends (or add --wait SECONDS)", err=True)
        history = [{**run, "phase": live["phase"], "done": live["done"], "total": live["total"]}
                   if run["id"] == live["run_id"] else run for run in live["history"]][:limit]
        if as_json:
            echo_json(history, redact=True)
        else:
            print_runs(history, {}, hint=False)
        return
    with read_store(ctx, path) as store:
        history = store.runs(limit)
        errors: dict[int, list[dict[str, Any]]] = {}
        if show_errors:
            for run_id, conn, phase, record, field, reason, retryable in store.con.execute(
                "SELECT run_id, connection, phase, record, field, reason, retryable FROM record_errors "
                "WHERE run_id IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?) ORDER BY occurred_at",
                [limit],
            ).fetchall():
                errors.setdefault(run_id, []).append(
                    {"connection": conn, "phase": phase, "record": record, "field": field,
                     "reason": reason, "retryable": retryable}
                )
    if as_json:
        for run in history:
            if show_errors:
                run["errors"] = errors.get(run["id"], [])
        echo_json(history, redact=True)
        return
    print_runs(history, errors, hint=not show_errors)


def print_runs(history: list[dict[str, Any]], errors: dict[int, list[dict[str, Any]]], hint: bool) -> None:
    """The history as a plain table, columns aligned (no terminal library: `segsync runs` is
    the command people run most often, and rich alone took a tenth of its start-up)."""
    from segsync.redaction import for_output

    rows = [("id", "started", "finished", "status", "destinations")]
    for run in history:
        dests = "; ".join(
            f"{d['destination']}: {d['records_written']} written"
            + (f", {d['records_rejected']} rejected" if d["records_rejected"] else "")
            + (f", {d['records_retrying']} retrying" if d["records_retrying"] else "")
            + f" / {d['write_calls']} calls"
            + (f" ({d['status']})" if d["status"] != PartStatus.OK else "")
            for d in run["destinations"]
        )
        status = run["status"] + (f" ({run['phase']})" if run.get("phase") else "")
        rows.append((str(run["id"]), run["started_at"][:19], (run["finished_at"] or "")[:19], status,
                     for_output(dests or "-")))
    click.echo(aligned(rows))
    if hint and any(r["status"] in (RunStatus.WITH_REJECTIONS, RunStatus.PARTIAL, RunStatus.FAILED) for r in history):
        click.echo("Rejected and retrying records: `segsync runs --errors`.")
    for run in history:
        for e in errors.get(run["id"], []):
            click.echo(for_output(f"  run {run['id']} {e['connection']} {e['record']} [{e['field'] or '-'}]: {e['reason']}"))


def aligned(rows: list[tuple[str, ...]]) -> str:
    """``rows`` (the first is the header) as text columns, each as wide as its widest cell and
    two spaces apart, with a rule under the header; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells[:-1], widths)) + "  " + cells[-1]

    return "\n".join([line(rows[0]), line(tuple("-" * w for w in widths)), *map(line, rows[1:])])


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(runs)

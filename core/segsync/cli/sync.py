"""``segsync sync``: pull every source, plan every destination, push the changes."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from segsync.cli.context import Context, pass_ctx
from segsync.cli.options import as_of_option, json_option
from segsync.cli.output import console, echo_json, sync_json
from segsync.hookspecs import hookimpl
from segsync.statuses import RunStatus

if TYPE_CHECKING:
    from segsync.sync.summary import RunSummary

# `segsync sync` exit codes: 0 succeeded (or dry run), 1 failed or partial, 2 usage or
# configuration error, 3 finished but some records were rejected (`segsync runs --errors`).
EXIT_FAILED = 1
EXIT_REJECTIONS = 3


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing anywhere.")
@click.option("--full-refresh", is_flag=True, help="Ignore cursors: read every source from the start.")
@as_of_option("Evaluate as of this instant (ISO 8601 with a zone, default: now).")
@json_option("Print the run summary as JSON.")
@pass_ctx
def sync(ctx: Context, dry_run: bool, full_refresh: bool, as_of: datetime | None, as_json: bool) -> None:
    """Pull every source, plan every destination, push the changes."""
    from segsync.progress import Reporter
    from segsync.sync.runner import RunOptions, Runner

    options = RunOptions(dry_run=dry_run, full_refresh=full_refresh, as_of=as_of)
    reporter = Reporter(quiet=as_json)
    summary = Runner(ctx.config(), ctx.host, reporter).run(options)
    if as_json:
        echo_json(sync_json(summary.to_dict(), summary.history,
                            {"full_refresh": full_refresh, "dry_run": dry_run}), redact=True)
    else:
        print_summary(summary)
    if summary.failed:
        sys.exit(EXIT_FAILED)
    if summary.status == RunStatus.WITH_REJECTIONS:
        sys.exit(EXIT_REJECTIONS)


def print_summary(summary: RunSummary) -> None:
    from rich.table import Table

    from segsync.redaction import for_output

    title = "Dry run: nothing was changed" if summary.dry_run else f"Run {summary.run_id}: {summary.status}"
    if summary.sources:
        table = Table(title=f"{title} — sources", title_justify="left")
        for col in ("source", "status", "contacts", "consent", "events", "rejected rows"):
            table.add_column(col, justify="right" if col not in ("source", "status") else "left")
        for s in summary.sources:
            table.add_row(
                s.name, s.status,
                *(str(s.loaded.get(k, "-")) for k in ("contacts", "consent", "events")),
                str(sum(s.rejected.values())),
            )
        console().print(table)
    table = Table(title=f"{title} — destinations", title_justify="left")
    for col in ("destination", "status", "planned", "written", "rejected", "retrying", "write calls"):
        table.add_column(col, justify="left" if col in ("destination", "status", "planned") else "right")
    for d in summary.destinations:
        planned = ", ".join(f"{k} {v}" for k, v in sorted(d.planned.items())) or "no change"
        table.add_row(d.name, d.status, planned, str(d.records_written), str(d.records_rejected),
                      str(d.records_retrying), str(d.write_calls))
    console().print(table)
    for d in summary.destinations:
        if d.rejections_renewed:
            console().print(f"{d.name}: {d.rejections_renewed} rejected record(s) planned again "
                            "(the connection's settings, segment mapping or schema changed)")
        if d.error:
            console().print(f"{d.name}: {for_output(d.error)}", style="red", markup=False)
        for row in d.sample:
            console().print(f"  {d.name}: {row['action']:<11} {row['contact']:<28} status={row['status']}"
                            + (f" +tags={row['tags_add']}" if row["tags_add"] else "")
                            + (f" -tags={row['tags_remove']}" if row["tags_remove"] else ""))
    if summary.triggers:
        table = Table(title=f"{title} — triggers", title_justify="left")
        for col in ("trigger", "status", "action", "queued", "delivered", "blocked", "rejected", "retrying"):
            table.add_column(col, justify="left" if col in ("trigger", "status", "action") else "right")
        for t in summary.triggers:
            table.add_row(t.name, t.status, t.action, str(t.queued), str(t.delivered), str(t.blocked),
                          str(t.rejected), str(t.failed))
        console().print(table)
        for t in summary.triggers:
            if t.error:
                console().print(f"{t.name}: {for_output(t.error)}", style="red", markup=False)
    for s in summary.sources:
        if s.error:
            console().print(f"{s.name}: {for_output(s.error)}", style="red", markup=False)
    for reason in summary.segment_errors.values():
        click.echo(for_output(reason))  # not wrapped: the caret must stay under the rule
    if summary.segment_errors:
        click.echo("Those segments kept their last membership everywhere (nothing entered or "
                   "left them); `segsync check` lists every rule problem.")
    if any(e["phase"] != "evaluate" for e in summary.errors):
        console().print(f"Record errors (first {len(summary.errors)}; all in `segsync runs --errors`):")
        for e in summary.errors:
            if e["phase"] == "evaluate":
                continue  # segment errors: printed in full above
            field = f" [{e['field']}]" if e["field"] else ""
            console().print(for_output(f"  {e['connection']} {e['record']}{field}: {e['reason']}"), markup=False)


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(sync)

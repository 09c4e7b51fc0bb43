"""The plugin: ``segsync serve`` and the live part of ``segsync demo --serve``.

Kept cheap to import (``segsync --help`` loads it): the server, Starlette, uvicorn and the
receivers are imported inside the command.
"""

from __future__ import annotations

from typing import Any

import click

from segsync import hookimpl


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--every", "every", type=float, metavar="MINUTES", help="Run a full sync every MINUTES.")
@click.option("--cron", metavar="EXPR", help="Run a full sync on this cron expression (UTC), e.g. '*/15 * * * *'.")
@click.option("--public-url", metavar="URL",
              help="Register the webhooks with every service that sends them, at this URL (where the "
                   "services reach this server, e.g. https://hooks.example.com).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, every: float | None, cron: str | None,
          public_url: str | None) -> None:
    """Take webhooks from Mailchimp and Brevo and push opt-outs everywhere within seconds; run
    scheduled syncs; /healthz and /metrics.

    The webhook secret comes from the environment: SEGSYNC_SERVE_WEBHOOK_SECRET.
    """
    from pydantic import ValidationError

    from segsync.live import project_of

    from segsync_serve.schedule import Schedule, ScheduleError
    from segsync_serve.server import Service, ServeSettings

    try:
        schedule = Schedule(every, cron)
    except ScheduleError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        settings = ServeSettings()
    except ValidationError:
        # A configuration error, as the core's: one line, exit code 2.
        click.echo("error: set SEGSYNC_SERVE_WEBHOOK_SECRET (in the environment or .env) to a random text "
                   "of at least 16 characters: the services must present it with every webhook", err=True)
        ctx.exit(2)
    service = Service(project_of(), settings.webhook_secret, schedule=schedule, host=host, port=port).bind()
    if public_url:
        for line in service.register_webhooks(public_url):
            click.echo(line)
    receivers = ", ".join(f"{name} ({service.webhook_url(name).split('?')[0]})" for name in service.endpoints)
    click.echo(f"segsync serve on {service.url}: webhooks from {receivers or 'no connection'}; "
               f"{schedule.describe()}; /healthz, /metrics. Ctrl-C stops.")
    try:
        service.serve_forever()
    except KeyboardInterrupt:  # uvicorn stops on Ctrl-C, then raises it again: a normal end here
        pass
    click.echo("segsync serve stopped (the run going on, if any, finished first).")


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    cli.add_command(serve)


@hookimpl
def segsync_demo_serve(project: Any, emulated: Any, forever: bool) -> bool:
    from segsync_serve.demo import live_demo

    live_demo(project, emulated, forever=forever)
    return True

"""``segsync report --html FILE``: write the project's figures as one self-contained page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click


def _as_of(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    from segsync.insights import parse_as_of

    try:
        return None if value is None else parse_as_of(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("report")
@click.option("--html", "html", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the report to this file (one HTML page that loads nothing: share it as is).")
@click.option("--as-of", "as_of", callback=_as_of,
              help="Evaluate the segments as of this instant (ISO 8601 with a zone; default: now).")
@click.option("--window", default="30d", show_default=True,
              help="The performance window before --as-of (24h, 30d, 2w…).")
@click.option("--runs", default=30, show_default=True, type=click.IntRange(min=1),
              help="How many of the latest runs the history shows per segment.")
def report(html: Path, as_of: datetime | None, window: str, runs: int) -> None:
    """An HTML report: segment sizes and history, entries and exits per run, group splits, the
    overlap heat map, performance per segment, predicted scores and consent per system."""
    from segsync.insights import open_insights, parse_window

    from segsync_report.figures import collect
    from segsync_report.page import render

    try:
        span = parse_window(window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    with open_insights(as_of=as_of) as view:
        figures = collect(view, window, span, runs)
    text = render(figures)
    try:
        html.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write the report to {html}: {exc.strerror or exc}") from None
    click.echo(f"Wrote {html} ({len(text.encode('utf-8')):,} bytes): {len(figures.segments)} segments, "
               f"as of {figures.as_of:%Y-%m-%d %H:%M} UTC")

"""segsync-report: ``segsync report --html FILE``, a project's figures as one HTML page.

segsync imports this module at every start (``segsync --help`` included), so it only registers
the command; the command imports Jinja2, DuckDB and the rest when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segsync import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def segsync_register_commands(cli: click.Group) -> None:
    from segsync_report.command import report

    cli.add_command(report)

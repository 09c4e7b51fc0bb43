"""Printing: the terminal console (rich, loaded when first used) and JSON output."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console


@cache
def console() -> Console:
    from rich.console import Console

    return Console()


def echo_json(data: Any, *, redact: bool = False) -> None:
    """``data`` as indented JSON on stdout; ``redact``: known secrets removed and addresses
    masked (for data that may hold a system's own error texts)."""
    text = json.dumps(data, indent=2, default=str)
    if redact:
        from segsync.redaction import for_output

        text = for_output(text)
    click.echo(text)

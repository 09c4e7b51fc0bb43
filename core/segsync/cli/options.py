"""Options and argument parsing shared by the commands."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import click


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 instant with a zone (``Z`` or an offset), in UTC; None stays None."""
    if value is None:
        return None
    from segsync.insights import parse_as_of

    try:
        return parse_as_of(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def as_of_option(help: str):
    return click.option("--as-of", "as_of", callback=lambda ctx, param, value: parse_time(value), help=help)


def json_option(help: str | None = None):
    return click.option("--json", "as_json", is_flag=True, help=help)


class LazyChoice(click.Choice):
    """A :class:`click.Choice` whose values come from ``load()`` when first needed (parsing or
    a command's help), so defining the command does not import the module that holds them."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True) -> None:
        self._load = load
        super().__init__((), case_sensitive)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._load())

    @choices.setter
    def choices(self, value: object) -> None:
        pass  # click.Choice.__init__ assigns it; the values are load()'s

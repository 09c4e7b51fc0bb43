"""Progress for long phases: a bar per phase on a terminal, plain lines otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Advance(Protocol):
    def __call__(self, amount: int = 1) -> None: ...


class Reporter:
    """``with reporter.phase("push crm", total=1200) as advance: advance(500)``."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        # Called with (phase, done, total) at a phase's start and on every advance, quiet or not
        # (the running sync's status file listens: segsync.store.status).
        self.listeners: list[Callable[[str, int, int | None], None]] = []

    @contextmanager
    def phase(self, description: str, total: int | None = None) -> Iterator[Advance]:
        if not self.listeners:
            with self._phase(description, total) as advance:
                yield advance
            return
        done = 0
        for listener in self.listeners:
            listener(description, done, total)
        with self._phase(description, total) as shown:

            def advance(amount: int = 1) -> None:
                nonlocal done
                done += amount
                shown(amount)
                for listener in self.listeners:
                    listener(description, done, total)

            yield advance

    @contextmanager
    def _phase(self, description: str, total: int | None) -> Iterator[Advance]:
        if self.quiet:
            yield lambda amount=1: None
            return
        if self.console.is_terminal:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            ) as progress:
                task = progress.add_task(description, total=total)
                yield lambda amount=1: progress.advance(task, amount)
            return
        done = 0
        step = max(1, (total or 0) // 4)
        next_report = step
        self.console.print(f"{description}: started" + (f" ({total} to do)" if total else ""))

        def advance(amount: int = 1) -> None:
            nonlocal done, next_report
            done += amount
            if total and done >= next_report and done < total:
                self.console.print(f"{description}: {done}/{total}")
                next_report += step

        yield advance
        self.console.print(f"{description}: done ({done})")

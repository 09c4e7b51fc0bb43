"""Opening the project's store from a command."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from segsync.store import Store

    from segsync.cli.context import Context


def read_store(ctx: Context, path: Path | None = None) -> Store:
    """The store (default: the project's), read-only: a sync may hold it, so wait up to
    ``--wait`` seconds for the sync to release it."""
    from segsync.store import Store

    Store.reader_wait = ctx.wait
    return Store(ctx.config().store_path if path is None else path, read_only=True)


def write_store(ctx: Context, path: Path | None = None) -> Store:
    """The store (default: the project's), for writing (refused while a sync holds it)."""
    from segsync.store import Store

    return Store(ctx.config().store_path if path is None else path)

"""Reading ``segsync.toml`` as TOML, without checking its shape (no pydantic).

:func:`segsync.config.load_config` builds on this to validate the whole project; commands that
need only where the store is (``segsync runs``) use :func:`store_location`, so they start
without the settings machinery and the rule engine, and still work while a connection's
settings have a mistake.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "segsync.toml"
DEFAULT_STORE = "segsync.duckdb"

# Deeper than any real project file goes (segments.NAME.destinations.DEST.KEY is 4 levels);
# bounds what a hostile or broken file can make the validators walk.
MAX_NESTING = 16


class ConfigError(Exception):
    """The project file or a connection's settings are wrong; the message says where.

    ``problems`` holds one line per problem (``TOML.path: what is wrong``).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def find_config(explicit: str | Path | None = None) -> Path:
    candidate = Path(explicit or os.environ.get("SEGSYNC_CONFIG") or DEFAULT_CONFIG)
    if candidate.is_dir():
        candidate = candidate / DEFAULT_CONFIG
    if not candidate.exists():
        raise ConfigError(
            f"no project file at {candidate}; create one with `segsync init` "
            "or point to one with --config"
        )
    return candidate.resolve()


def read_toml(config_path: Path) -> dict[str, Any]:
    """The file's TOML as a dict; unreadable, non-UTF-8, malformed or absurdly nested files are
    a :class:`ConfigError` naming the file (and the key, for nesting)."""
    try:
        data = config_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read the project file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{config_path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(
            f"{config_path}: arrays or inline tables nest deeper than {MAX_NESTING} levels"
        ) from None
    too_deep = _too_deep(raw)
    if too_deep is not None:
        raise ConfigError(f"{config_path}: {too_deep}: nests deeper than {MAX_NESTING} levels")
    return raw


def _too_deep(raw: dict[str, Any]) -> str | None:
    """The TOML path of the first value nested deeper than MAX_NESTING (iteratively: no
    recursion on hostile input), or None."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_NESTING:
            return where
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = ((f"[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        for key, child in items:
            path = f"{where}{key}" if str(key).startswith("[") or not where else f"{where}.{key}"
            stack.append((child, path, depth + 1))
    return None


def resolve_store_path(config_path: Path, value: str) -> Path | str:
    """``[store] path`` of the file at ``config_path``, resolved against the project folder."""
    if value == ":memory:":
        return value
    path = (config_path.parent / value).resolve()
    if path.is_dir():
        raise ConfigError(f"{config_path}: store.path: {path} is a directory, not a database file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{config_path}: store.path: {path} is not a regular file")
    return path


def store_location(explicit: str | Path | None = None) -> Path | str:
    """Where the project's store is: ``[store] path`` (default ``segsync.duckdb``) of the project
    file ``explicit`` (or ``$SEGSYNC_CONFIG``, or ``./segsync.toml``), the rest of the file unchecked."""
    config_path = find_config(explicit)
    store = read_toml(config_path).get("store", {})
    value = store.get("path", DEFAULT_STORE) if isinstance(store, dict) else None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{config_path}: store.path: a non-empty string (the store file) is required")
    return resolve_store_path(config_path, value)

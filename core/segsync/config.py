"""The project file (``segsync.toml``) and each connection's settings.

A project is a folder holding ``segsync.toml``; paths in it are relative to that folder. Each
``[connections.NAME]`` table names a connector ``type`` plus that connector's non-secret
settings; ``pull``/``push`` say whether the runner reads from it and writes to it. Secrets
(settings typed ``SecretStr``) come only from the environment or the project's ``.env``, as
``SEGSYNC_<NAME>_<FIELD>``, never from the file.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from segsync import redaction
from segsync.connector import Connector, ConnectorSettings
from segsync.segments import SegmentError, SegmentsConfig
from segsync.segments.packs import SegmentPack, expand_packs

DEFAULT_CONFIG = "segsync.toml"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ConfigError(Exception):
    """The project file or a connection's settings are wrong; the message says where."""


@dataclass
class ConnectionConfig:
    name: str
    type: str
    options: dict[str, Any]
    pull: bool | None = None  # None: whatever the connector can read
    push: bool | None = None  # None: whatever the connector can write


@dataclass
class ProjectConfig:
    path: Path
    store_path: Path | str
    connections: dict[str, ConnectionConfig]
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def project_dir(self) -> Path:
        return self.path.parent


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


def load_config(
    path: str | Path | None = None, packs: Mapping[str, SegmentPack] | None = None
) -> ProjectConfig:
    """Read ``segsync.toml``; ``[packs.NAME]`` tables expand into segments and groups.

    ``packs`` defaults to the packs the installed plugins register (only looked up when the
    file enables one).
    """
    config_path = find_config(path)
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    store = raw.get("store", {})
    store_path: Path | str = store.get("path", "segsync.duckdb")
    if store_path != ":memory:":
        store_path = (config_path.parent / str(store_path)).resolve()
    connections = {}
    for name, table in (raw.get("connections") or {}).items():
        if not _NAME.match(name):
            raise ConfigError(
                f"{config_path}: connection name {name!r} must be lower-case letters, digits "
                "and underscores, starting with a letter (it becomes part of SEGSYNC_<NAME>_*)"
            )
        if not isinstance(table, dict) or "type" not in table:
            raise ConfigError(f"{config_path}: [connections.{name}] needs a type = \"...\"")
        options = dict(table)
        type_name = options.pop("type")
        pull = options.pop("pull", None)
        push = options.pop("push", None)
        connections[name] = ConnectionConfig(name, type_name, options, pull, push)
    declared = list(raw.get("segments", []))
    groups = dict(raw.get("groups", {}))
    if raw.get("packs"):
        declared, groups = _with_packs(config_path, raw["packs"], declared, groups, packs)
    try:
        segments = SegmentsConfig(segments=declared, groups=groups)
    except (ValidationError, SegmentError) as exc:
        raise ConfigError(f"{config_path}: segments: {exc}") from None
    for segment in segments.segments:
        unknown = set(segment.destinations) - set(connections)
        if unknown:
            raise ConfigError(
                f"{config_path}: segment {segment.name!r} names destinations that are not "
                f"connections: {', '.join(sorted(unknown))}"
            )
    return ProjectConfig(config_path, store_path, connections, segments, raw)


def _with_packs(
    config_path: Path,
    tables: Any,
    declared: list[Any],
    groups: dict[str, Any],
    packs: Mapping[str, SegmentPack] | None,
) -> tuple[list[Any], dict[str, Any]]:
    """``declared``/``groups`` plus the enabled packs' segments and groups."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{config_path}: [packs] must hold one [packs.NAME] table per pack")
    if packs is None:
        from segsync.plugins import PluginHost  # the host imports plugin modules that import this one

        packs = PluginHost().segment_packs()
    try:
        pack_segments, pack_groups = expand_packs(tables, packs)
    except (ValidationError, SegmentError) as exc:
        raise ConfigError(f"{config_path}: packs: {exc}") from None
    names = {s.get("name") for s in declared if isinstance(s, dict)}
    for segment in pack_segments:
        if segment.name in names:
            raise ConfigError(
                f"{config_path}: segment {segment.name!r} is declared under [[segments]] and by "
                "an enabled pack; rename yours or switch the pack off (enabled = false)"
            )
    for group in pack_groups:
        if group in groups:
            raise ConfigError(
                f"{config_path}: group {group!r} is declared under [groups] and by an enabled pack"
            )
    return [*declared, *pack_segments], {**groups, **pack_groups}


def env_prefix(connection: str) -> str:
    return f"SEGSYNC_{connection.upper()}_"


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def secret_fields(settings_cls: type[ConnectorSettings]) -> list[str]:
    return [n for n, f in settings_cls.model_fields.items() if _is_secret(f.annotation)]


def connection_settings(
    connector_cls: type[Connector], connection: ConnectionConfig, project_dir: Path
) -> ConnectorSettings:
    """Build a connection's settings from its table, the environment and ``.env``."""
    settings_cls = connector_cls.Settings
    fields = settings_cls.model_fields
    where = f"connection {connection.name!r} (type {connection.type})"
    for key in connection.options:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown setting {key!r}{hint}")
    prefix = env_prefix(connection.name)
    for key in secret_fields(settings_cls):
        if key in connection.options:
            raise ConfigError(
                f"{where}: {key} is a secret and is not read from the config file; "
                f"set {prefix}{key.upper()} in the environment or in {project_dir / '.env'}"
            )
    # Unknown keys are caught above; the environment and .env hold other connections' variables.
    bound = type(
        settings_cls.__name__,
        (settings_cls,),
        {
            "model_config": SettingsConfigDict(
                env_prefix=prefix,
                env_file=project_dir / ".env",
                env_file_encoding="utf-8",
                extra="ignore",
            )
        },
    )
    try:
        settings = bound(**connection.options)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            message = error["msg"]
            if error["type"] == "missing" and name in secret_fields(settings_cls):
                message += f" (set {prefix}{name.upper()} in the environment or .env)"
            problems.append(f"{name}: {message}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None
    redaction.remember(settings)  # its secrets are masked in everything printed or stored
    return settings

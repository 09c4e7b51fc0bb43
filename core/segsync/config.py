"""The project file (``segsync.toml``), each connection's settings and the consent settings.

A project is a folder holding ``segsync.toml``; paths in it are relative to that folder. The
whole file is one pydantic model, :class:`ProjectFile`: an unknown table or key anywhere is an
error naming its TOML path and the closest known key. Each ``[connections.NAME]`` table names a
connector ``type`` plus that connector's non-secret settings (checked against the connector's
own ``Settings`` model: by :func:`load_config` when the connector is installed, in full by
:func:`connection_settings`); ``pull``/``push`` say whether the runner reads from it and writes
to it. Secrets (settings typed ``SecretStr``) come only from the environment or the project's
``.env``, as ``SEGSYNC_<NAME>_<FIELD>``, never from the file. ``[packs.NAME]`` tables are
checked against the packs the plugin host offers.

``[consent]`` says which policy applies where, and the clock-skew allowance
(:func:`consent_settings` resolves the names against the installed policies)::

    [consent]
    policy = "default"            # the project's policy (default: "default")
    clock_skew_seconds = 300      # see docs/consent.md, "Clocks"

    [consent.connections]         # a connection's own policy replaces the project's for it
    brevo = "strict_double_opt_in"

    [consent.countries]           # a contact's country adds its policy: the stricter result wins
    CA = "casl"
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from segsync import redaction
from segsync.connector import Connector
from segsync.connector_settings import ConnectorSettings
from segsync.consent.policies import DEFAULT, DEFAULT_CLOCK_SKEW, ConsentPolicy
from segsync.plugins import PluginError, PluginHost
from segsync.project_file import (
    DEFAULT_STORE,
    ConfigError,  # raised here too; defined without pydantic for the commands that need no validation
    find_config,
    read_toml,
    resolve_store_path as _store_path,
)
from segsync.segments import GroupDef, SegmentDef, SegmentError, SegmentsConfig
from segsync.segments.packs import SegmentPack, expand_packs
from segsync.triggers.definitions import TriggerDef

if TYPE_CHECKING:
    from segsync.engines import Engine, EngineSettings


# DuckDB's memory for the store during a sync: its buffer cache otherwise keeps every block a
# big load writes (peak RSS grew with the file), up to 80 % of the machine's memory.
DEFAULT_MEMORY_LIMIT = "2GB"
MAX_CLOCK_SKEW_SECONDS = 7 * 86_400
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


# -- the file's shape --------------------------------------------------------------------------


class _Table(BaseModel):
    # Strict: TOML values are typed, so "true" (a string) is not a boolean.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StoreTable(_Table):
    """``[store]``: where the embedded DuckDB file lives (relative to the project folder), and
    the engine segments and consent are evaluated on (docs/scale.md). Keys besides these are
    the engine's settings (``url``, ``master``, ``tables``…), checked against its ``Settings``
    by :func:`engine_settings`."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    engine: str = Field(default="duckdb", pattern=r"^[a-z][a-z0-9_]*$")
    path: str = Field(default=DEFAULT_STORE, min_length=1)
    # DuckDB's memory for the store; past it, it spills to disk (see docs/configuration.md).
    memory_limit: str = Field(default=DEFAULT_MEMORY_LIMIT, pattern=r"^[1-9][0-9]*(\.[0-9]+)?\s*(MB|GB|TB|MiB|GiB|TiB)$")


class ConnectionTable(BaseModel):
    """``[connections.NAME]``: ``type``, ``pull``, ``push``; every other key is a setting of the
    connector, checked against its ``Settings`` model by :func:`connection_settings`."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    type: str = Field(min_length=1)
    pull: bool | None = None  # None: whatever the connector can read
    push: bool | None = None  # None: whatever the connector can write

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]


class ConsentTable(_Table):
    """``[consent]``: policy names (resolved against the installed policies by
    :func:`consent_settings`) and the clock-skew allowance."""

    policy: str = DEFAULT.name
    clock_skew_seconds: float = Field(
        default=DEFAULT_CLOCK_SKEW.total_seconds(), ge=0, le=MAX_CLOCK_SKEW_SECONDS
    )
    connections: dict[str, str] = Field(default_factory=dict)
    countries: dict[CountryCode, str] = Field(default_factory=dict)


class ProjectFile(_Table):
    """The whole of ``segsync.toml``."""

    store: StoreTable = Field(default_factory=StoreTable)
    connections: dict[str, ConnectionTable] = Field(default_factory=dict)
    segments: list[SegmentDef] = Field(default_factory=list)
    groups: dict[str, GroupDef] = Field(default_factory=dict)
    # A pack's parameters depend on the pack: SegmentPack.values() checks them.
    packs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    consent: ConsentTable = Field(default_factory=ConsentTable)
    triggers: list[TriggerDef] = Field(default_factory=list)

    @field_validator("connections")
    @classmethod
    def _connection_names(cls, tables: dict[str, ConnectionTable]) -> dict[str, ConnectionTable]:
        for name in tables:
            if not _NAME.match(name):
                raise ValueError(
                    f"connection name {name!r} must be lower-case letters, digits and "
                    "underscores, starting with a letter (it becomes part of SEGSYNC_<NAME>_*)"
                )
        return tables


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
    consent: ConsentTable = field(default_factory=ConsentTable)
    store_memory_limit: str = DEFAULT_MEMORY_LIMIT
    # [store] engine and its settings (docs/scale.md); "duckdb" is the embedded store alone.
    store_engine: str = "duckdb"
    store_options: dict[str, Any] = field(default_factory=dict)
    triggers: list[TriggerDef] = field(default_factory=list)

    @property
    def project_dir(self) -> Path:
        return self.path.parent


@dataclass(frozen=True)
class ConsentSettings:
    """``[consent]`` resolved against the installed policies."""

    policy: ConsentPolicy = DEFAULT
    connections: Mapping[str, ConsentPolicy] = field(default_factory=dict)
    countries: Mapping[str, ConsentPolicy] = field(default_factory=dict)
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW

    def for_connection(self, connection: str | None) -> ConsentPolicy:
        if connection is None:
            return self.policy
        return self.connections.get(connection, self.policy)


def consent_settings(config: ProjectConfig | None, policies: Mapping[str, ConsentPolicy]) -> ConsentSettings:
    """Resolve ``[consent]`` (its shape is checked with the rest of the file by
    :class:`ProjectFile`) against ``policies``, the installed ones."""
    table = config.consent if config else ConsentTable()
    where = f"{config.path}: consent" if config else "consent"

    def policy(name: str, what: str) -> ConsentPolicy:
        if name not in policies:
            raise ConfigError(f"{where}.{what}: no consent policy {name!r} "
                              f"(installed: {', '.join(sorted(policies))})")
        return policies[name]

    return ConsentSettings(
        policy(table.policy, "policy"),
        {name: policy(value, f"connections.{name}") for name, value in table.connections.items()},
        {code: policy(value, f"countries.{code}") for code, value in table.countries.items()},
        timedelta(seconds=table.clock_skew_seconds),
    )


def load_config(
    path: str | Path | None = None,
    host: PluginHost | None = None,
    *,
    packs: Mapping[str, SegmentPack] | None = None,
) -> ProjectConfig:
    """Read and check ``segsync.toml``; ``[packs.NAME]`` tables expand into segments and groups.

    The packs are ``packs`` when given, else those ``host``'s plugins register. Raises
    :class:`ConfigError` listing every problem with its TOML path.
    """
    config_path = find_config(path)
    raw = read_toml(config_path)
    try:
        parsed = ProjectFile.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error, raw) for error in exc.errors()]
        raise _config_error(config_path, problems) from None
    store_path = _store_path(config_path, parsed.store.path)
    connections = {
        name: ConnectionConfig(name, table.type, table.options, table.pull, table.push)
        for name, table in parsed.connections.items()
    }
    if host is not None:
        problems = _unknown_settings(connections, host)
        if problems:
            raise _config_error(config_path, problems)
    declared, groups = list(parsed.segments), dict(parsed.groups)
    if parsed.packs:
        if packs is None:
            if host is None:
                raise TypeError("load_config() needs the plugin host (or packs) to expand [packs]")
            packs = host.segment_packs()
        problems = _unknown_packs(parsed.packs, packs)
        if problems:
            raise _config_error(config_path, problems)
        declared, groups = _with_packs(config_path, parsed.packs, declared, groups, packs)
    try:
        segments = SegmentsConfig(segments=declared, groups=groups)
    except (ValidationError, SegmentError) as exc:
        raise ConfigError(f"{config_path}: segments: {_plain(exc)}") from None
    problems = []
    for segment in segments.segments:
        unknown = sorted(set(segment.destinations) - set(connections))
        if unknown:
            problems.append(
                f"segments.{segment.name}.destinations: names destinations that are not "
                f"connections: {', '.join(unknown)}{_did_you_mean(unknown[0], connections)}"
            )
    for name in parsed.consent.connections:
        if name not in connections:
            problems.append(f"consent.connections.{name}: {name!r} is not a connection"
                            f"{_did_you_mean(name, connections)}")
    problems += _trigger_problems(parsed.triggers, segments, connections)
    if problems:
        raise _config_error(config_path, problems)
    store_options = dict(parsed.store.model_extra or {})
    if parsed.store.engine == "duckdb":  # the other keys are an external engine's settings
        problems += [f"store.{key}: {_unknown('key', key, _known_keys(('store',)))}"
                     + (" (an external engine's setting: set store.engine, docs/scale.md)"
                        if key in ENGINE_KEYS else "") for key in sorted(store_options)]
    if host is not None and parsed.store.engine not in host.engines():
        problems.append(f"store.engine: no engine {parsed.store.engine!r} (installed: "
                        f"{', '.join(sorted(host.engines()))}; `segsync install segsync-"
                        f"{parsed.store.engine}` adds a packaged one)")
    if problems:
        raise _config_error(config_path, problems)
    return ProjectConfig(config_path, store_path, connections, segments, raw, parsed.consent,
                         store_memory_limit=parsed.store.memory_limit,
                         store_engine=parsed.store.engine, store_options=store_options,
                         triggers=list(parsed.triggers))


def _trigger_problems(
    triggers: list[TriggerDef], segments: SegmentsConfig, connections: Mapping[str, ConnectionConfig]
) -> list[str]:
    """``triggers.NAME.KEY: ...`` for a duplicate name, an unknown segment or connection."""
    problems, seen = [], set()
    names = [s.name for s in segments.segments]
    for trigger in triggers:
        where = f"triggers.{trigger.name}"
        if trigger.name in seen:
            problems.append(f"{where}.name: two triggers are called {trigger.name!r}")
        seen.add(trigger.name)
        if trigger.segment not in names:
            problems.append(f"{where}.segment: {trigger.segment!r} is not a segment"
                            f"{_did_you_mean(trigger.segment, names)}")
        if trigger.connection is not None and trigger.connection not in connections:
            problems.append(f"{where}.connection: {trigger.connection!r} is not a connection"
                            f"{_did_you_mean(trigger.connection, connections)}")
    return problems


def store_problem(path: Path | str) -> str | None:
    """Why the store file at ``path`` cannot be a DuckDB database, or None (missing is fine:
    the first sync creates it). Cheap: reads the file's header only."""
    if path == ":memory:" or not Path(path).exists():
        return None
    try:
        with open(path, "rb") as handle:
            header = handle.read(12)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if header[8:12] != _DUCKDB_MAGIC:
        return f"{path} is not a DuckDB database file"
    return None


# -- error rendering ---------------------------------------------------------------------------

_TOML_TYPES = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a float",
    list: "an array", dict: "a table",
}
_EXPECTED = {
    "model_type": "a table", "model_attributes_type": "a table", "dict_type": "a table",
    "list_type": "an array", "string_type": "a string", "bool_type": "true or false",
    "int_type": "an integer", "float_type": "a number", "datetime_type": "a date-time",
}


def _config_error(config_path: Path, problems: list[str]) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(f"{config_path}: {problems[0]}", problems)
    lines = "\n".join(f"  {p}" for p in problems)
    return ConfigError(f"{config_path}: {len(problems)} problems\n{lines}", problems)


def _toml_type(value: Any) -> str:
    for kind, name in _TOML_TYPES.items():
        if isinstance(value, kind):
            return name
    return "a date or time" if value is not None else "nothing"


def _describe(error: Mapping[str, Any], raw: Any) -> str:
    """One line (``TOML.path: what is wrong``) for a pydantic error on ``ProjectFile``."""
    loc = tuple(error["loc"])
    where = _toml_path(loc, raw) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        is_table = isinstance(error.get("input"), dict)
        what = "table" if is_table and len(loc) == 1 else "key"
        return f"{where}: {_unknown(what, str(loc[-1]), _known_keys(loc[:-1]))}"
    if kind in _EXPECTED:
        return f"{where}: expected {_EXPECTED[kind]}, not {_toml_type(error.get('input'))}"
    if kind == "missing":
        return f"{where}: missing (required)"
    if loc[:2] == ("consent", "countries") and loc[-1] == "[key]":
        code = where.removesuffix(".[key]")
        return f"{code}: not a country code (two capital letters, ISO 3166-1, e.g. CA)"
    if loc == ("store", "memory_limit") and kind == "string_pattern_mismatch":
        return f"{where}: {error.get('input')!r} is not an amount of memory (a number and MB, GB, TB, MiB, GiB or TiB, e.g. 2GB)"
    return f"{where}: {_plain_message(error['msg'])}"


def _toml_path(loc: tuple[Any, ...], raw: Any) -> str:
    """``('segments', 0, 'rul')`` → ``segments.vip.rul`` (a segment is named by its name)."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name and parts:
                parts.append(name)
            else:
                parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
            node = entry
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at ``loc`` (where an unknown key was found)."""
    node: Any = ProjectFile
    for item in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            if item not in node.model_fields:
                return []
            node = node.model_fields[item].annotation
            # bool | None and friends: the non-None member.
            args = [a for a in typing.get_args(node) if a is not type(None)]
            if typing.get_origin(node) not in (list, dict) and len(args) == 1:
                node = args[0]
        elif typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]  # this item is an index or a key: step into the value
        else:
            return []
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _plain_message(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _plain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(_plain_message(e["msg"]) for e in exc.errors())
    return str(exc)


def _unknown(what: str, name: str, known: Any) -> str:
    """``unknown key; did you mean 'x'?``, or the known names when none is close."""
    hint = _did_you_mean(name, known)
    if not hint and known:
        hint = f" (known: {', '.join(sorted(known))})"
    return f"unknown {what}{hint}"


def _did_you_mean(name: str, candidates: Any) -> str:
    match = difflib.get_close_matches(name, sorted(candidates), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


# -- packs and connections ---------------------------------------------------------------------


def _unknown_settings(connections: Mapping[str, ConnectionConfig], host: PluginHost) -> list[str]:
    """``connections.NAME.KEY: unknown key`` for each key the connection's connector has no
    setting for; a connector that is not installed is the runner's to report."""
    try:
        types = host.connector_types()
    except PluginError:  # a broken plugin: the command that needs connectors says so
        return []
    problems = []
    for name, connection in connections.items():
        cls = types.get(connection.type)
        if cls is None:
            continue
        fields = cls.Settings.model_fields
        for key in connection.options:
            if key not in fields and key not in cls.Settings.renamed_settings:
                problems.append(f"connections.{name}.{key}: {_unknown('key', key, fields)}")
    return problems


def _unknown_packs(tables: Mapping[str, Any], packs: Mapping[str, SegmentPack]) -> list[str]:
    """``packs.NAME: unknown table`` and ``packs.NAME.KEY: unknown key`` problems."""
    problems = []
    for name, table in tables.items():
        if name not in packs:
            problems.append(f"packs.{name}: {_unknown('table', name, packs)}")
            continue
        for key in table:
            if key not in packs[name].keys():
                problems.append(f"packs.{name}.{key}: {_unknown('key', key, packs[name].keys())}")
    return problems


def _with_packs(
    config_path: Path,
    tables: Mapping[str, Any],
    declared: list[SegmentDef],
    groups: dict[str, GroupDef],
    packs: Mapping[str, SegmentPack],
) -> tuple[list[SegmentDef], dict[str, GroupDef]]:
    """``declared``/``groups`` plus the enabled packs' segments and groups."""
    try:
        pack_segments, pack_groups = expand_packs(tables, packs)
    except (ValidationError, SegmentError) as exc:
        raise ConfigError(f"{config_path}: packs: {_plain(exc)}") from None
    names = {s.name for s in declared}
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


def instantiate_connection(
    connector_cls: type[Connector], connection: ConnectionConfig, project_dir: Path
) -> Connector:
    """The connector instance for ``connection``, with its settings read by
    :func:`connection_settings`; the caller closes it."""
    return connector_cls(connection.name, connection_settings(connector_cls, connection, project_dir),
                         project_dir)


def connection_settings(
    connector_cls: type[Connector], connection: ConnectionConfig, project_dir: Path
) -> ConnectorSettings:
    """Build a connection's settings from its table, the environment and ``.env``."""
    settings_cls = connector_cls.Settings
    fields = settings_cls.model_fields
    where = f"connection {connection.name!r} (type {connection.type})"
    for key in connection.options:
        if key not in fields and key not in settings_cls.renamed_settings:
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


STORE_SETTINGS = "store"  # engine secrets are SEGSYNC_STORE_<FIELD>
# [store] keys of the external engines (a hint when one is set without store.engine).
ENGINE_KEYS = ("url", "master", "tables", "schema_name", "password")


def engine_settings(engine_cls: type[Engine], config: ProjectConfig) -> EngineSettings:
    """The engine's settings from ``[store]`` (besides path and memory_limit), the environment
    and ``.env`` (secrets: ``SEGSYNC_STORE_<FIELD>``), checked like a connection's."""
    table = ConnectionConfig(STORE_SETTINGS, engine_cls.name, config.store_options)
    try:
        return connection_settings(engine_cls, table, config.project_dir)  # type: ignore[arg-type,return-value]
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"connection {STORE_SETTINGS!r} (type {engine_cls.name})",
                                           f"{config.path}: store (engine {engine_cls.name})")) from None


def open_engine(config: ProjectConfig, host: PluginHost) -> Engine:
    """The project's engine, not yet opened (``with engine:`` connects and closes)."""
    engines = host.engines()
    if config.store_engine not in engines:
        raise ConfigError(f"{config.path}: store.engine: no engine {config.store_engine!r} "
                          f"(installed: {', '.join(sorted(engines))})")
    cls = engines[config.store_engine]
    return cls(engine_settings(cls, config), config.project_dir)


@contextmanager
def external_engine(config: ProjectConfig, host: PluginHost) -> Iterator[Engine | None]:
    """The project's external engine, open for the block (None on the embedded store, where
    the store's own connection answers; docs/scale.md)."""
    from segsync.engines import DEFAULT_ENGINE

    if config.store_engine == DEFAULT_ENGINE:
        yield None
        return
    with open_engine(config, host) as engine:
        yield engine

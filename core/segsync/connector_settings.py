"""``ConnectorSettings``, the base of every connector's settings (pydantic-settings).

Kept apart from :mod:`segsync.connector` so that loading connector classes (``segsync plugins``,
``--help``) does not import pydantic-settings; see :class:`segsync.connector.lazy_settings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectorSettings(BaseSettings):
    """Base class of every connector's settings.

    Non-secret fields come from the connection's table in ``segsync.toml``; fields typed
    ``SecretStr`` come only from the environment (``SEGSYNC_<CONNECTION>_<FIELD>``) or the
    project's ``.env``. The runner builds the settings with :func:`segsync.config.connection_settings`.
    """

    # defer_build: listing connector types (`segsync plugins`) imports every settings class;
    # each builds its validator when a connection is first configured, not at import.
    model_config = SettingsConfigDict(defer_build=True, extra="forbid", frozen=True)

    # Settings renamed so that every connector calls the same thing by the same name (timeout,
    # max_attempts, segment_mode, attribute_mapping): old name -> new name, and per setting old
    # value -> new value. The old ones are still read; ``segsync check`` notes each one used.
    renamed_settings: ClassVar[Mapping[str, str]] = {}
    renamed_values: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _read_renamed(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not (cls.renamed_settings or cls.renamed_values):
            return data
        data = dict(data)
        for old, new in cls.renamed_settings.items():
            if old in data:
                if new in data:
                    raise ValueError(f"{old!r} is the old name of {new!r}: give only {new!r}")
                data[new] = data.pop(old)
        for name, values in cls.renamed_values.items():
            value = data.get(name)
            if isinstance(value, str) and value in values:
                data[name] = values[value]
        return data

    @classmethod
    def deprecations(cls, options: Mapping[str, Any]) -> list[str]:
        """A note for each old setting name or value in a connection's ``options``."""
        notes = [f"setting {old!r} is deprecated: call it {new!r}"
                 for old, new in cls.renamed_settings.items() if old in options]
        for name, values in cls.renamed_values.items():
            for key in [name, *(old for old, new in cls.renamed_settings.items() if new == name)]:
                value = options.get(key)
                if isinstance(value, str) and value in values:
                    notes.append(f"{key} = {value!r} is deprecated: use {values[value]!r}")
        return notes

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        # Unbound (built directly, e.g. in a test), settings read only their arguments: a
        # stray HOST or API_KEY in the environment must never leak into a connection.
        if not cls.model_config.get("env_prefix"):
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings, file_secret_settings)

"""The ``[consent]`` table of ``segsync.toml``: which policy applies where, and the clock-skew allowance.

```toml
[consent]
policy = "default"            # the project's policy (default: "default")
clock_skew_seconds = 300      # see docs/consent.md, "Clocks"

[consent.connections]         # a connection's own policy replaces the project's for it
brevo = "strict_double_opt_in"

[consent.countries]           # a contact's country adds its policy: the stricter result wins
CA = "casl"
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from segsync.config import ConfigError, ProjectConfig
from segsync.consent.policies import DEFAULT, ConsentPolicy

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
_KEYS = {"policy", "clock_skew_seconds", "connections", "countries"}
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class ConsentSettings:
    policy: ConsentPolicy = DEFAULT
    connections: Mapping[str, ConsentPolicy] = field(default_factory=dict)
    countries: Mapping[str, ConsentPolicy] = field(default_factory=dict)
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW

    def for_connection(self, connection: str | None) -> ConsentPolicy:
        if connection is None:
            return self.policy
        return self.connections.get(connection, self.policy)


def load_settings(config: ProjectConfig | None, policies: Mapping[str, ConsentPolicy]) -> ConsentSettings:
    """Read and check ``[consent]``; unknown keys, policies and connections are errors."""
    raw: dict[str, Any] = dict((config.raw if config else {}).get("consent") or {})
    where = f"{config.path}: [consent]" if config else "[consent]"
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(_KEYS))}")

    def policy(name: Any, what: str) -> ConsentPolicy:
        if name not in policies:
            raise ConfigError(f"{where}: {what}: no consent policy {name!r} "
                              f"(installed: {', '.join(sorted(policies))})")
        return policies[name]

    project = policy(raw.get("policy", DEFAULT.name), "policy")
    connections = {}
    for name, value in (raw.get("connections") or {}).items():
        if config is not None and name not in config.connections:
            raise ConfigError(f"{where}.connections: {name!r} is not a connection")
        connections[name] = policy(value, f"connections.{name}")
    countries = {}
    for code, value in (raw.get("countries") or {}).items():
        if not _COUNTRY.match(str(code)):
            raise ConfigError(f"{where}.countries: {code!r} is not an upper-case ISO 3166-1 alpha-2 code")
        countries[code] = policy(value, f"countries.{code}")
    skew = raw.get("clock_skew_seconds", DEFAULT_CLOCK_SKEW.total_seconds())
    if not isinstance(skew, (int, float)) or isinstance(skew, bool) or skew < 0:
        raise ConfigError(f"{where}: clock_skew_seconds must be a number of seconds >= 0")
    return ConsentSettings(project, connections, countries, timedelta(seconds=skew))

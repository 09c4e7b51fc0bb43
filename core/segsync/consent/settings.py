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

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from segsync.config import ConfigError, ConsentTable, ProjectConfig
from segsync.consent.policies import DEFAULT, ConsentPolicy

DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


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
    """Resolve ``[consent]`` (its shape is checked with the rest of the file by
    :class:`segsync.config.ProjectFile`) against the installed policies."""
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

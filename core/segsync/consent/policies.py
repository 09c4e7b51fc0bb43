"""Consent policies: how the ledger is read for one person, as data the rule engine turns into SQL.

A policy never runs Python per contact: it says which records count, which opt-ins are explicit
enough to lift a sticky opt-out, and how long implied consent lasts; :mod:`.rules` compiles that
into one SQL statement over the ledger. ``DEFAULT`` is the engine's fallback when nothing is
configured; :mod:`segsync.default_plugins.consent_policies` defines the other built-ins and
registers all of them through the same ``segsync_register_consent_policies`` hook a third party
uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from segsync.vocabulary import CONSENT_METHODS

# The methods that carry the person's own consent: they filled in a form, or confirmed a double
# opt-in. Only these lift a sticky opt-out. ``api`` is not one: a system's generic API source is
# whatever another tool (or a plugin going around the gate) wrote there, not the person's
# statement. Imports, syncs, admin actions, purchases and inquiries merely *say* someone is
# subscribed. docs/consent.md maps each connector's sources onto these methods.
EXPLICIT_METHODS = frozenset({"form", "double_opt_in"})
CONFIRMED_METHODS = frozenset({"double_opt_in"})
# How far apart two systems' clocks may be (docs/consent.md, "Clocks"); [consent] clock_skew_seconds.
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


class PolicyError(ValueError):
    """A policy that cannot be compiled (unknown method names, negative durations)."""


@dataclass(frozen=True)
class ConsentPolicy:
    """How effective consent is derived from the ledger.

    * ``explicit_methods`` — opt-in (or pending) records with these methods lift a sticky
      opt-out, complaint or hard bounce when they are newer than it; no other record does.
    * ``counted_opt_in_methods`` — when set, ``opted_in`` records with other methods are not
      consent at all (strict double opt-in: only confirmations count). None: every method.
    * ``implied`` — method → how long an ``opted_in`` record with that method lasts (implied
      consent, e.g. CASL: ``purchase`` two years, ``inquiry`` six months). Past that, the record
      no longer counts. Methods not listed never expire.
    """

    name: str
    description: str
    explicit_methods: frozenset[str] = EXPLICIT_METHODS
    counted_opt_in_methods: frozenset[str] | None = None
    implied: Mapping[str, timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        methods = set(self.explicit_methods) | set(self.counted_opt_in_methods or ()) | set(self.implied)
        unknown = methods - set(CONSENT_METHODS)
        if unknown:
            raise PolicyError(
                f"consent policy {self.name!r} names unknown methods {sorted(unknown)}; "
                f"known: {', '.join(CONSENT_METHODS)}"
            )
        if any(d <= timedelta(0) for d in self.implied.values()):
            raise PolicyError(f"consent policy {self.name!r}: implied consent must last a positive time")


DEFAULT = ConsentPolicy(
    "default",
    "Opt-out, complaint and hard bounce are sticky; only the person's own newer opt-in (a form or "
    "a double opt-in confirmation) lifts them. Pending and no record are not consent.",
)

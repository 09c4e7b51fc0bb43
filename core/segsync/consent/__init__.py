"""The consent engine: effective consent, policies, suppressions, erasure and the audit views.

See docs/consent.md for the rules in plain words. Everything here is registered or called by the
core: policies through ``segsync_register_consent_policies`` (built-ins in :mod:`segsync.default_plugins.consent_policies`),
its commands live in the CLI (:mod:`segsync.cli.consent`). A sync run builds one
:class:`~segsync.consent.rules.EffectiveConsent` and hands it to its diff, its consent gate
(:mod:`segsync.sync.gate`) and its acknowledgement (:mod:`segsync.sync.ack`, which audits every
status change; :mod:`.audit` shows that audit per person).
"""

from segsync.lazy import lazy_exports

# Imported on first use: the CLI and the plugin host import parts of this package (policies,
# suppression constants) without the rule engine (DuckDB, sqlglot).
__getattr__, __dir__ = lazy_exports(__name__, {
    "DEFAULT": "segsync.consent.policies",
    "ConsentPolicy": "segsync.consent.policies",
    "effective_status_sql": "segsync.consent.rules",
})

__all__ = ["DEFAULT", "ConsentPolicy", "effective_status_sql"]

"""The consent engine: effective consent, policies, the gate, suppressions, erasure and audit.

See docs/consent.md for the rules in plain words. Everything here is registered or called by the
core: policies through ``segsync_register_consent_policies`` (built-ins in :mod:`.policies`),
CLI commands through ``segsync_register_commands`` (:mod:`.commands`), and the runner calls the
engine between diff and push (:mod:`.gate`) and records every status change (:mod:`.audit`).
"""

from segsync.consent.policies import CASL, DEFAULT, STRICT_DOUBLE_OPT_IN, ConsentPolicy
from segsync.consent.rules import effective_status_sql

__all__ = ["CASL", "DEFAULT", "STRICT_DOUBLE_OPT_IN", "ConsentPolicy", "effective_status_sql"]

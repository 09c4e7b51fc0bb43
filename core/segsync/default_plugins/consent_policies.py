"""The built-in consent policies (docs/consent.md), registered like a third party's."""

from __future__ import annotations

from datetime import timedelta

from segsync.consent.policies import CONFIRMED_METHODS, DEFAULT, ConsentPolicy
from segsync.hookspecs import hookimpl

STRICT_DOUBLE_OPT_IN = ConsentPolicy(
    "strict_double_opt_in",
    "As default, but only confirmed (double opt-in) opt-ins are consent; other opt-ins count as "
    "no record.",
    explicit_methods=CONFIRMED_METHODS,
    counted_opt_in_methods=CONFIRMED_METHODS,
)
# CASL s. 10(10): implied consent from an existing business relationship lasts two years from a
# purchase and six months from an inquiry. 730 and 183 days: the statute's years and months.
CASL = ConsentPolicy(
    "casl",
    "Canada's CASL: as default, plus implied consent from a purchase (2 years) or an inquiry "
    "(6 months) that expires on its own.",
    implied={"purchase": timedelta(days=730), "inquiry": timedelta(days=183)},
)
BUILT_IN = (DEFAULT, STRICT_DOUBLE_OPT_IN, CASL)


@hookimpl
def segsync_register_consent_policies(register):  # noqa: ANN001 - pluggy hook
    for policy in BUILT_IN:
        register(policy)

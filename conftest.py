"""Repository-wide pytest set-up."""

import os

from hypothesis import HealthCheck, settings

# Shared CI machines have noisy timing: no per-example deadlines, a fixed example budget.
settings.register_profile(
    "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

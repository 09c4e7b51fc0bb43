"""Repository-wide pytest set-up."""

import os

from hypothesis import HealthCheck, settings

# Shared CI machines have noisy timing: no per-example deadlines, a fixed example budget.
settings.register_profile(
    "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The per-account HTTP slot files (segsync.http.budget) of test runs go to a folder of this run,
# inherited by the processes tests start; not to the machine's shared one.
if "SEGSYNC_HTTP_BUDGET_DIR" not in os.environ:
    import tempfile

    os.environ["SEGSYNC_HTTP_BUDGET_DIR"] = tempfile.mkdtemp(prefix="segsync-http-budget-")

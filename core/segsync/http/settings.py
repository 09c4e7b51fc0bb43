"""Settings every HTTP connector shares, under the same names in every connector.

Subclass :class:`HttpSettings` instead of :class:`segsync.ConnectorSettings`; change a
default or a bound by declaring the field again (Mailchimp caps ``max_connections`` at 10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from segsync.connector_settings import ConnectorSettings

if TYPE_CHECKING:  # the policy (and tenacity) loads with the first session, not with the settings
    from segsync.http.retry import RetryPolicy


class HttpSettings(ConnectorSettings):
    timeout: float = Field(default=30.0, gt=0, description="seconds to wait for each answer")
    max_attempts: int = Field(default=6, ge=1, description="tries per request on 429/5xx/timeouts/resets")
    retry_wait_initial: float = Field(default=0.5, ge=0, description="first back-off in seconds (doubles per try)")
    retry_wait_max: float = Field(default=30.0, ge=0, description="longest wait between tries, Retry-After included")
    max_connections: int = Field(default=10, ge=1, description="simultaneous requests of this connection")

    def retry_policy(self) -> RetryPolicy:
        from segsync.http.retry import RetryPolicy

        return RetryPolicy(attempts=self.max_attempts, wait_initial=self.retry_wait_initial,
                           wait_max=self.retry_wait_max)

"""Brevo's retry hint for the kit's policy: Retry-After, else the rate-limit window's reset."""

from __future__ import annotations

from segsync_brevo.api import BrevoApiError, RetryableApiError


def test_a_429_waits_for_the_window_to_reset() -> None:
    limited = RetryableApiError(429, "too_many_requests", "slow down",
                                {"x-sib-ratelimit-remaining": "0", "x-sib-ratelimit-reset": "2.5"})
    assert limited.retryable and limited.retry_after == 2.51
    assert RetryableApiError(429, "x", "y", {"Retry-After": "4"}).retry_after == 4.0
    assert RetryableApiError(503, "x", "y", {"x-sib-ratelimit-reset": "2.5"}).retry_after is None
    assert RetryableApiError(0, "transport", "reset").retry_after is None
    assert not BrevoApiError(400, "invalid_parameter", "bad").retryable

"""The HTTP kit for connectors: ``requests`` sessions with the framework's retry policy,
rate-limit pacing, a per-account concurrency cap, call counting and secret-safe logging, plus
pagination helpers. Documented in docs/http-kit.md.

Everything here is importable from ``segsync.http`` and loaded on first use (``requests`` and
``tenacity`` are not imported by ``import segsync.http``).
"""

from segsync.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "HttpBudget": "segsync.http.budget",
    "Slot": "segsync.http.budget",
    "CallCounter": "segsync.http.counting",
    "RateLimitHeaders": "segsync.http.pacing",
    "RatePacer": "segsync.http.pacing",
    "PaginationError": "segsync.http.pagination",
    "cursor_pages": "segsync.http.pagination",
    "link_pages": "segsync.http.pagination",
    "offset_pages": "segsync.http.pagination",
    "RetryPolicy": "segsync.http.retry",
    "is_retryable": "segsync.http.retry",
    "is_retryable_status": "segsync.http.retry",
    "parse_retry_after": "segsync.http.retry",
    "safe_error": "segsync.http.safelog",
    "safe_headers": "segsync.http.safelog",
    "safe_url": "segsync.http.safelog",
    "HttpSettings": "segsync.http.settings",
    "HttpError": "segsync.http.session",
    "HttpSession": "segsync.http.session",
    "new_session": "segsync.http.session",
    "raise_for_status": "segsync.http.session",
})

__all__ = [
    "CallCounter", "HttpBudget", "HttpError", "HttpSession", "HttpSettings", "PaginationError", "RateLimitHeaders",
    "RatePacer", "RetryPolicy", "Slot", "cursor_pages", "is_retryable", "is_retryable_status",
    "link_pages", "new_session", "offset_pages", "parse_retry_after", "raise_for_status",
    "safe_error", "safe_headers", "safe_url",
]

"""Logging set-up: every log line passes through :func:`segsync.redaction.redact`.

Known secret values are replaced in every line, whoever logged it (a connector's exception text,
DuckDB's error quoting a raw line); email addresses are masked unless ``SEGSYNC_LOG_EMAILS=1``
(for debugging on a trusted machine). Redaction is done by the handler's formatter, on the
finished line, so tracebacks and ``%``-arguments are covered too.
"""

from __future__ import annotations

import logging

from segsync.redaction import mask_emails, redact, show_emails as _show_emails

__all__ = ["RedactingFormatter", "configure", "mask_emails"]


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, *, show_emails: bool = False) -> None:
        super().__init__(fmt)
        self.show_emails = show_emails

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), emails=self.show_emails)


def configure(level: int = logging.INFO, *, show_emails: bool | None = None) -> None:
    """Send segsync's (and plugins') logs to stderr, redacted."""
    if show_emails is None:
        show_emails = _show_emails()
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            show_emails=show_emails))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_segsync", False):
            root.removeHandler(existing)
    handler._segsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)

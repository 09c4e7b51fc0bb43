"""Logging set-up: email addresses are masked in every log line unless asked otherwise.

Secrets never reach a log line in the first place (settings hold them as ``SecretStr``, whose
``str`` and ``repr`` are masked); addresses are personal data, so the handler masks them too.
``SEGSYNC_LOG_EMAILS=1`` shows them, for debugging on a trusted machine.
"""

from __future__ import annotations

import logging
import os
import re

from segsync.model import mask_email

_EMAIL = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+\.[^\s@<>()\[\]\"',;:]+")


def mask_emails(text: str) -> str:
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_emails(super().format(record))


def configure(level: int = logging.INFO, *, show_emails: bool | None = None) -> None:
    """Send segsync's (and plugins') logs to stderr, masked."""
    if show_emails is None:
        show_emails = os.environ.get("SEGSYNC_LOG_EMAILS") == "1"
    handler = logging.StreamHandler()
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if show_emails else MaskingFormatter(fmt))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_segsync", False):
            root.removeHandler(existing)
    handler._segsync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)

"""One place that decides what of a message may be printed or stored.

Error texts come from everywhere (DuckDB quotes the raw line it could not read, a connector puts
its request or its API key in an exception), so whatever segsync prints or stores passes
through :func:`redact`:

* every known secret value is replaced by ``***`` — always, whatever the settings;
* email addresses (also written ``ann%40example.com`` or ``ann\\u0040example.com``) are masked
  as :func:`segsync.model.mask_email` does (``a***@e***.com``), which keeps errors useful;
  printed output shows them when ``SEGSYNC_LOG_EMAILS=1``, stored text never does.

Known secrets are the values of every ``SecretStr`` field of every connection's settings built
in this process (:func:`remember`, called by :func:`segsync.config.connection_settings`) and of
the environment variables ``SEGSYNC_*_KEY``, ``*_TOKEN``, ``*_SECRET`` and ``*_PASSWORD``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

SECRET_MASK = "***"
# Shorter values would mask ordinary words; no real credential is that short.
MIN_SECRET_LENGTH = 6
_SECRET_ENV = re.compile(r"^SEGSYNC_\w+_(KEY|TOKEN|SECRET|PASSWORD)$")
# The local part's usual characters (not & ? = / * %, so an address inside a query string or
# an already masked one is matched alone); the domain needs a dot.
_EMAIL = re.compile(r"[\w.+\-'!#$^`{|}~]+(?:@|%40|\\u0040)[\w\-]+(?:\.[\w\-]+)+", re.IGNORECASE)

_remembered: set[str] = set()


def remember(settings: BaseModel) -> None:
    """Treat every ``SecretStr`` value of ``settings`` as a secret from now on."""
    # Imported here: every command's start sets up logging (this module) and most never build
    # settings, so they need not load pydantic for it.
    from pydantic import SecretStr

    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            _remembered.add(value.get_secret_value())


def forget_remembered() -> None:
    """Drop the remembered secrets (tests)."""
    _remembered.clear()


def known_secrets() -> list[str]:
    """Every known secret value, longest first (so a secret containing another is masked whole)."""
    values = set(_remembered)
    values.update(v for k, v in os.environ.items() if _SECRET_ENV.match(k.upper()))
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def show_emails() -> bool:
    return os.environ.get("SEGSYNC_LOG_EMAILS") == "1"


def mask_email(address: str) -> str:
    """``ann.lee@example.com`` → ``a***@e***.com``: enough to tell records apart in logs."""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    host, dot, tld = domain.rpartition(".")
    return f"{local[:1]}***@{(host or tld)[:1]}***{dot}{tld if dot else ''}"


def mask_emails(text: str) -> str:
    def masked(match: re.Match[str]) -> str:
        address = re.sub(r"%40|\\u0040", "@", match.group(0), flags=re.IGNORECASE)
        return mask_email(address)

    return _EMAIL.sub(masked, text)


def redact(text: str, *, emails: bool = False, secrets: Iterable[str] | None = None) -> str:
    """``text`` with known secrets replaced and addresses masked (kept when ``emails``)."""
    for secret in known_secrets() if secrets is None else secrets:
        text = text.replace(secret, SECRET_MASK)
    return text if emails else mask_emails(text)


def for_output(text: str) -> str:
    """What may be printed: secrets never, addresses only with ``SEGSYNC_LOG_EMAILS=1``."""
    return redact(text, emails=show_emails())


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside lists and dicts (for stored JSON)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value

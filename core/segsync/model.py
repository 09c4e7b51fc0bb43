"""The core model: contacts, events and consent records, and the rules that normalize them.

The pydantic models are the typed view of a record (what plugins construct and what the CLI
shows). Bulk ingestion applies the same rules set-based inside the store
(:mod:`segsync.store.ingest`); both share the constants and :func:`normalize_email` here.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Re-exported: defined apart so that start-up code can name them without importing pydantic.
from segsync.redaction import mask_email  # noqa: F401
from segsync.vocabulary import CONSENT_METHODS, KNOWN_ATTRIBUTES


class InvalidEmail(ValueError):
    """An address that cannot be a contact key; the message says why."""


# Addresses of this shape normalize to their lower-cased form under email-validator's rules too
# (a property test holds the two together), so bulk ingestion can normalize them in SQL and only
# send the rest (Unicode, quoted local parts, odd domains) through email-validator.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
FAST_EMAIL_PATTERN = (
    rf"{_ATEXT}+(\.{_ATEXT}+)*"
    r"@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
# Special-use TLDs (RFC 6761 and friends) that email-validator rejects; they take the slow path.
SLOW_PATH_TLDS = ("arpa", "invalid", "local", "localhost", "onion", "test")
_FAST_EMAIL = re.compile(FAST_EMAIL_PATTERN)


def fast_path_email(raw: str) -> str | None:
    """The normalized key when ``raw`` is a plain ASCII address, else None (use the slow path)."""
    candidate = raw.strip().lower()
    if (
        len(candidate) > 254
        or "--" in candidate
        or not _FAST_EMAIL.fullmatch(candidate)
        or len(candidate.partition("@")[0]) > 64
        or candidate.rpartition(".")[2] in SLOW_PATH_TLDS
    ):
        return None
    return candidate


@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> str:
    """Normalize an address to its contact key: trimmed, lower-cased, ASCII (IDNA) domain.

    ``Ann@Example.COM `` and ``ann@example.com`` give the same key, and so do a domain written
    in Unicode and in punycode. Raises :class:`InvalidEmail` with the reason otherwise.
    """
    if not isinstance(raw, str):
        raise InvalidEmail("not a string")
    fast = fast_path_email(raw)
    if fast is not None:
        return fast
    candidate = raw.strip()
    if not candidate:
        raise InvalidEmail("empty")
    # Only addresses off the fast path need it; importing it here keeps every command's start
    # (which imports this module for the consent policies) ~20 ms shorter.
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return f"{info.local_part.lower()}@{info.ascii_domain.lower()}"


class Channel(str, enum.Enum):
    EMAIL = "email"
    SMS = "sms"


class ConsentStatus(str, enum.Enum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    PENDING = "pending"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


DEFAULT_PURPOSE = "marketing"

LIFECYCLE_STAGES = ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist", "other")

_COUNTRY = re.compile(r"[A-Z]{2}")


@lru_cache(maxsize=1)
def timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone; write it as ISO 8601 with an offset or Z")
    return value.astimezone(timezone.utc)


class Attributes(BaseModel):
    """Typed attributes; anything else lives in ``custom``."""

    # defer_build (here and below): a model's validator is built on its first use, not at import;
    # every command's start imports this module (the built-in consent policies use its constants)
    # and most never validate a contact.
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True)

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    department: str | None = None
    industry: str | None = None
    company_size: int | None = Field(default=None, ge=0)
    country: str | None = None
    timezone: str | None = None
    lifecycle_stage: str | None = None
    created_at: datetime | None = None
    custom: dict[str, Any] = Field(default_factory=dict)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.upper()
        if not _COUNTRY.fullmatch(value):
            raise ValueError("country must be an ISO 3166-1 alpha-2 code such as 'DE'")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in timezone_names():
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @field_validator("created_at")
    @classmethod
    def _created_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)


class Contact(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    email: str = Field(description="contact key: the normalized email address")
    attributes: Attributes = Field(default_factory=Attributes)
    external_ids: dict[str, str] = Field(
        default_factory=dict, description="connection name → that system's id"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)


class Event(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    email: str
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
    timestamp: datetime
    source: str
    id: str = Field(min_length=1, description="source event id: the deduplication key")
    value: float | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    url: str | None = None
    category: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    _email = field_validator("email")(lambda cls, v: normalize_email(v))
    _timestamp = field_validator("timestamp")(lambda cls, v: _utc(v))


class ConsentRecord(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    email: str
    channel: Channel = Channel.EMAIL
    purpose: str = DEFAULT_PURPOSE
    status: ConsentStatus
    timestamp: datetime
    source: str
    method: str = "import"
    evidence: str | None = None

    _email = field_validator("email")(lambda cls, v: normalize_email(v))
    _timestamp = field_validator("timestamp")(lambda cls, v: _utc(v))

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value not in CONSENT_METHODS:
            raise ValueError(f"unknown method {value!r}; one of {', '.join(CONSENT_METHODS)}")
        return value

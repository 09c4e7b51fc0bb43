"""Normalization and validation of the core model."""

from __future__ import annotations

import string

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from segsync.model import (
    Attributes,
    ConsentRecord,
    Contact,
    Event,
    InvalidEmail,
    fast_path_email,
    mask_email,
    normalize_email,
)

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
local_parts = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join)
labels = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
domains = st.tuples(st.lists(labels, min_size=1, max_size=3), st.sampled_from(
    ["com", "org", "de", "test", "local", "museum", "io", "C0M", "x", "123"]
)).map(lambda parts: ".".join([*parts[0], parts[1]]))
addresses = st.tuples(local_parts, domains).map(lambda p: f"{p[0]}@{p[1]}")
padding = st.sampled_from(["", " ", "  ", "\t"])


def _reference(raw: str) -> str | None:
    """The key email-validator alone would give (None: invalid)."""
    try:
        info = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return f"{info.local_part.lower()}@{info.ascii_domain.lower()}"


@given(addresses)
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    fast = fast_path_email(address)
    reference = _reference(address)
    if fast is not None:
        # Whatever the SQL-side fast path accepts, email-validator accepts with the same key.
        assert reference == fast
    # And normalize_email (fast path plus fallback) always matches the reference.
    if reference is None:
        with pytest.raises(InvalidEmail):
            normalize_email(address)
    else:
        assert normalize_email(address) == reference


@given(addresses, padding, padding)
def test_normalization_ignores_case_and_surrounding_space(address, left, right) -> None:
    assume(_reference(address) is not None)
    key = normalize_email(address)
    assert normalize_email(f"{left}{address.upper()}{right}") == key
    assert normalize_email(key) == key  # idempotent


@pytest.mark.parametrize(
    "unicode_form, punycode_form",
    [("ann@bücher.de", "ann@xn--bcher-kva.de"), ("Ann@MÜNCHEN.example", "ann@xn--mnchen-3ya.example")],
)
def test_idna_domain_in_unicode_and_punycode_is_one_person(unicode_form, punycode_form) -> None:
    assert normalize_email(unicode_form) == normalize_email(punycode_form) == punycode_form.lower()


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ann", "@-sign"),
        ("ann@", "after the @-sign"),
        ("ann@@example.com", "@"),
        ("ann..lee@example.com", "period"),
        ("ann@localhost", "should have a period"),
        ("ann@example.test", "special-use"),
    ],
)
def test_invalid_addresses_raise_with_a_reason(raw, reason) -> None:
    with pytest.raises(InvalidEmail) as info:
        normalize_email(raw)
    assert reason.lower() in str(info.value).lower()


def test_mask_email_keeps_first_letters_and_tld() -> None:
    assert mask_email("ann.lee@example.com") == "a***@e***.com"
    assert mask_email("x@localhost") == "x***@l***"
    assert mask_email("garbage") == "***"


def test_contact_normalizes_key_and_types_attributes() -> None:
    contact = Contact(
        email=" Ann@Example.COM ",
        attributes={"country": "de", "timezone": "Europe/Berlin", "company_size": 12,
                    "created_at": "2024-01-01T10:00:00+02:00", "custom": {"tier": "gold"}},
    )
    assert contact.email == "ann@example.com"
    assert contact.attributes.country == "DE"
    assert contact.attributes.created_at.isoformat() == "2024-01-01T08:00:00+00:00"
    assert contact.attributes.custom == {"tier": "gold"}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("country", "Germany", "alpha-2"),
        ("timezone", "Mars/Olympus", "time zone"),
        ("company_size", -1, "greater than or equal"),
        ("created_at", "2024-01-01T10:00:00", "time zone"),
        ("favourite", "x", "Extra inputs"),
    ],
)
def test_attributes_reject_bad_values_naming_the_field(field, value, message) -> None:
    with pytest.raises(ValidationError) as info:
        Attributes(**{field: value})
    error = info.value.errors()[0]
    assert error["loc"][0] == field
    assert message.lower() in str(info.value).lower()


def test_event_requires_timezone_and_dotted_type() -> None:
    event = Event(email="A@B.co", type="order.completed", timestamp="2024-05-01T10:00:00Z",
                  source="shop", id="o-1", value=12.5, currency="EUR")
    assert event.email == "a@b.co" and event.timestamp.tzinfo is not None
    with pytest.raises(ValidationError, match="time zone"):
        Event(email="a@b.co", type="email.opened", timestamp="2024-05-01T10:00:00", source="s", id="1")
    with pytest.raises(ValidationError, match="type"):
        Event(email="a@b.co", type="Opened", timestamp="2024-05-01T10:00:00Z", source="s", id="1")
    with pytest.raises(ValidationError, match="email"):
        Event(email="nope", type="email.opened", timestamp="2024-05-01T10:00:00Z", source="s", id="1")


def test_consent_record_defaults_and_method_vocabulary() -> None:
    record = ConsentRecord(email="a@b.co", status="opted_out", timestamp="2024-05-01T10:00:00Z", source="crm")
    assert (record.channel.value, record.purpose, record.method) == ("email", "marketing", "import")
    with pytest.raises(ValidationError, match="unknown method"):
        ConsentRecord(email="a@b.co", status="opted_in", timestamp="2024-05-01T10:00:00Z", source="crm", method="telepathy")
    with pytest.raises(ValidationError, match="status"):
        ConsentRecord(email="a@b.co", status="maybe", timestamp="2024-05-01T10:00:00Z", source="crm")


def test_an_ok_outcome_built_without_init_equals_one_built_with_it() -> None:
    from dataclasses import FrozenInstanceError

    from segsync import Outcome
    from segsync.statuses import OutcomeStatus

    ok = Outcome.ok("ann@example.com", external_id="x-1")
    assert type(ok) is Outcome and ok.status is OutcomeStatus.OK
    assert ok == Outcome("ann@example.com", OutcomeStatus.OK, None, None, "x-1")
    assert hash(ok) == hash(Outcome("ann@example.com", OutcomeStatus.OK, None, None, "x-1"))
    assert vars(ok) == {"contact_key": "ann@example.com", "status": OutcomeStatus.OK, "reason": None,
                        "field": None, "external_id": "x-1"}
    with pytest.raises(FrozenInstanceError):
        ok.status = OutcomeStatus.REJECTED  # type: ignore[misc]

    class Mine(Outcome):
        pass

    assert type(Mine.ok("bo@example.com")) is Mine  # a subclass is built by its own __init__

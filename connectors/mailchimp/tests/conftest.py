"""Fixtures: a fresh emulator per test and connectors that reach it through the real SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from segsync_mailchimp import MailchimpConnector, MailchimpSettings
from segsync_mailchimp.emulator import MailchimpEmulator

API_KEY = "0123456789abcdef0123456789abcdef-us1"
LIST_ID = "aud0001"
MERGE_FIELDS = {"first_name": "FNAME", "last_name": "LNAME", "company": "COMPANY", "company_size": "SIZE"}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture
def emulator() -> Iterator[MailchimpEmulator]:
    em = MailchimpEmulator(api_key=API_KEY)
    em.state.create_audience(
        LIST_ID,
        merge_fields=[("COMPANY", "Company", "text"), ("SIZE", "Company size", "number"),
                      ("SEGMENTS", "Segments", "text")],
    )
    em.start()
    yield em
    em.stop()


@pytest.fixture
def make_connector(emulator: MailchimpEmulator, tmp_path: Path) -> Iterator[Callable[..., MailchimpConnector]]:
    made: list[MailchimpConnector] = []

    def make(**overrides: Any) -> MailchimpConnector:
        options: dict[str, Any] = {
            "api_key": API_KEY, "list_id": LIST_ID, "host": emulator.url, "timeout": 5.0,
            "retry_wait_initial": 0.01, "retry_wait_max": 0.5, "merge_fields": MERGE_FIELDS,
        }
        options.update(overrides)
        connector = MailchimpConnector("mailchimp_test", MailchimpSettings(**options), tmp_path)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


@pytest.fixture
def connector(make_connector: Callable[..., MailchimpConnector]) -> MailchimpConnector:
    return make_connector()

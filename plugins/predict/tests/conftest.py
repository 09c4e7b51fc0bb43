"""A small synthetic business with a planted signal: engaged people keep opening and buying,
some leave for good at a random date, each opens at a preferred hour."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from segsync.testing import Project

AS_OF = datetime(2025, 6, 1, tzinfo=timezone.utc)
START = AS_OF - timedelta(days=420)

CONFIG = """
    [store]
    path = "store.duckdb"

    [connections.shop]
    type = "files"
    contacts = "data/contacts.csv"
    consent = "data/consent.csv"
    events = "data/events.jsonl"
"""


def event(email: str, type_: str, at: datetime, event_id: str, **top: object) -> str:
    if type_ == "order.completed":
        top = {"value": 20.0, "currency": "EUR", **top}
    return json.dumps({"email": email, "type": type_, "timestamp": at.isoformat(), "id": event_id,
                       **top}) + "\n"


def business(contacts: int, seed: int = 3, until: datetime = AS_OF) -> tuple[str, str]:
    """(contacts.csv, events.jsonl) of ``contacts`` people over the 420 days before ``until``."""
    rng = random.Random(seed)
    people, lines = ["email,created_at"], []
    for i in range(contacts):
        email = f"p{i}@example.com"
        joined = START + timedelta(days=rng.randrange(0, 200))
        people.append(f"{email},{joined.isoformat()}")
        activity = rng.betavariate(0.8, 2.0)
        leaves = joined + timedelta(days=rng.randrange(30, 900))
        hour = rng.choice([7, 9, 12, 18, 21])
        week = 0
        while (sent := joined + timedelta(days=7 * week, hours=8)) < until:
            week += 1
            lines.append(event(email, "email.sent", sent, f"s{i}-{week}"))
            if sent >= leaves or rng.random() > activity:
                continue
            opened = sent.replace(hour=hour if rng.random() < 0.7 else rng.randrange(24)) + timedelta(days=1)
            if opened >= until:
                continue
            lines.append(event(email, "email.opened", opened, f"o{i}-{week}"))
            if rng.random() < activity:
                lines.append(event(email, "email.clicked", opened + timedelta(minutes=2), f"c{i}-{week}"))
                if rng.random() < 0.35:
                    lines.append(event(email, "order.completed", opened + timedelta(minutes=20),
                                       f"b{i}-{week}", value=round(rng.uniform(10, 200), 2),
                                       currency="EUR"))
    return "\n".join(people) + "\n", "".join(lines)


def make_project(root, contacts: int = 300, seed: int = 3) -> Project:
    project = Project(root)
    project.write_config(CONFIG)
    people, events = business(contacts, seed)
    project.write("contacts.csv", people)
    project.write("events.jsonl", events)
    project.write("consent.csv", "email,status,timestamp,method\n")
    return project


@pytest.fixture
def shop(tmp_path) -> Project:
    return make_project(tmp_path / "shop")

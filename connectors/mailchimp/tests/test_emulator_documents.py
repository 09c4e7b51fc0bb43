"""The emulator's answers for a fixed sequence of writes, held to a recording.

The emulator keeps its members compactly and builds documents only when a call answers with
them (see ``segsync_mailchimp.emulator.state``). This test replays one long, seeded sequence of
batch-subscribes (new, updated, refused, duplicate, archived and forgotten addresses, merge
fields valid and not, tags added and synced, every flag and query option), segment and tag
calls, archives and permanent deletions, then reads every document back: each batch's answer
(``errors[]`` per member included), every member by ``GET``, the member list under each status
filter, every segment's members, the audience and its segments. ``recordings/documents.jsonl`` was recorded
with the emulator as it was before its CPU work (main at 38bb9b6, where every document was built
eagerly); the answers must stay equal field by field.

Regenerate (only for a deliberate change of what the emulator answers):
``SEGSYNC_RECORD_DOCUMENTS=1 .venv/bin/python -m pytest connectors/mailchimp/tests/test_emulator_documents.py``
"""

from __future__ import annotations

import json
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from segsync_mailchimp.emulator import ApiProblem, EmulatorState

RECORDING = Path(__file__).parent / "recordings" / "documents.jsonl"
LIST_ID = "aud0001"
STRICT_LIST = "aud0002"  # an audience with a required merge field
TAGS = ["gold", "silver", "every-3rd", "vip list"]
STATUSES = ["subscribed", "unsubscribed", "cleaned", "pending", "transactional", None]


class Clock:
    """A clock the test moves: documents must not depend on how often the emulator reads it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(seconds=61)


def _address(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.04:
        return rng.choice(["not-an-address", "a@b", " spaced out@example.com", ""])
    n = rng.randrange(60)
    address = f"person{n}@example.com"
    return address.upper() if roll > 0.95 else address  # the same member, spelt otherwise


def _entry(rng: random.Random) -> dict[str, Any]:
    entry: dict[str, Any] = {"email_address": _address(rng)}
    status = rng.choice(STATUSES)
    if status is not None:
        entry["status"] = status
    if rng.random() < 0.8:
        fields: dict[str, Any] = {"FNAME": rng.choice(["Ann", "Bo", "", "Zoë"]), "LNAME": rng.choice(["Li", "Ng"])}
        extra = rng.random()
        if extra < 0.1:
            fields["BIRTHDAY"] = rng.choice(["01/02", "13-1"])
        elif extra < 0.2:
            fields["SIZE"] = rng.choice([7, "12", "many", ""])
        elif extra < 0.25:
            fields["ADDRESS"] = rng.choice([{"addr1": "1 Road", "city": "X", "state": "", "zip": "1", "country": "DE"},
                                            "1 Road"])
        elif extra < 0.3:
            fields["SINCE"] = rng.choice(["2024-02-30", "2024-02-03"])
        elif extra < 0.35:
            fields["UNKNOWN"] = "kept as sent"
        entry["merge_fields"] = fields
    if rng.random() < 0.7:
        entry["tags"] = rng.sample(TAGS, rng.randrange(len(TAGS) + 1))
    for name, values in (("email_type", ["html", "text"]), ("language", ["en", "fr"]), ("vip", [True, False]),
                         ("ip_signup", ["10.0.0.1"]), ("ip_opt", ["10.0.0.2"]),
                         ("timestamp_signup", ["2025-05-06T07:08:09+00:00"]),
                         ("timestamp_opt", ["2025-06-07T08:09:10+02:00", "2025-06-07 08:09:10"])):
        if rng.random() < 0.1:
            entry[name] = rng.choice(values)
    return entry


def _query(rng: random.Random) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    if rng.random() < 0.2:
        query["skip_merge_validation"] = ["true"]
    if rng.random() < 0.2:
        query["skip_duplicate_check"] = [rng.choice(["true", "1"])]
    return query


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiProblem as exc:
        document = exc.document()
        del document["instance"]  # a fresh id per problem
        return {"problem": document}


def replay() -> list[Any]:
    """Every answer of the sequence, in order, as JSON-ready values."""
    rng = random.Random(20261201)
    clock = Clock()
    state = EmulatorState(clock=clock)
    state.create_audience(LIST_ID, merge_fields=[("SIZE", "Size", "number"), ("SINCE", "Since", "date")])
    state.create_audience(STRICT_LIST, merge_fields=[("SIZE", "Size", "number", True)])
    state.seed_member(LIST_ID, "person1@example.com", "unsubscribed", merge_fields={"FNAME": "Seeded"},
                      tags=["gold"], unsubscribe_reason="N/A (Unsubscribe link)")
    state.seed_member(LIST_ID, "person2@example.com", "cleaned")
    answers: list[Any] = []
    for step in range(120):
        clock.tick()
        list_id = STRICT_LIST if step % 10 == 9 else LIST_ID
        roll = rng.random()
        if roll < 0.75:
            body = {"members": [_entry(rng) for _ in range(rng.randrange(1, 16))],
                    "update_existing": rng.random() < 0.7, "sync_tags": rng.random() < 0.2}
            answers.append(["batch", _call(state.batch_subscribe, list_id, body, _query(rng),
                                           member_docs=rng.random() < 0.5)])
        elif roll < 0.83:
            key = _address(rng)
            answers.append(["archive", key, _call(state.archive_member, list_id, key)])
        elif roll < 0.86:
            key = _address(rng)
            answers.append(["forget", key, _call(state.delete_permanent, list_id, key)])
        elif roll < 0.94:
            segments = state.list_segments(list_id, {"count": ["1000"]})["segments"]
            if segments:
                segment = rng.choice(segments)["id"]
                body = {"members_to_add": [_address(rng) for _ in range(rng.randrange(4))],
                        "members_to_remove": [_address(rng) for _ in range(rng.randrange(3))]}
                answers.append(["segment", _call(state.batch_segment, list_id, str(segment), body,
                                                 member_docs=rng.random() < 0.7)])
        else:
            key = _address(rng)
            body = {"tags": [{"name": rng.choice(TAGS), "status": rng.choice(["active", "inactive"])}],
                    "is_syncing": rng.random() < 0.5}
            answers.append(["tags", key, _call(state.update_member_tags, list_id, key, body)])
    for list_id in (LIST_ID, STRICT_LIST):
        answers.append(["list", state.list_doc(list_id)])
        for status in (None, "unsubscribed", "pending", "archived"):
            query = {"count": ["1000"], **({"status": [status]} if status else {})}
            answers.append(["members", status, state.list_members(list_id, query)])
        by_change = state.list_members(list_id, {"count": ["1000"], "sort_field": ["last_changed"],
                                                 "sort_dir": ["DESC"]})
        answers.append(["members by last_changed", [m["id"] for m in by_change["members"]]])
        for n in range(60):
            key = f"person{n}@example.com"
            answers.append(["member", key, _call(state.get_member, list_id, key)])
        segments = state.list_segments(list_id, {"count": ["1000"]})
        answers.append(["segments", segments])
        for segment in segments["segments"]:
            answers.append(["segment members", segment["name"],
                            state.segment_members(list_id, str(segment["id"]), {"count": ["1000"]})])
    answers.append(["outbox", state.outbox, "automations", state.automation_starts])
    return json.loads(json.dumps(answers, default=str))


def test_documents_equal_the_recording_field_by_field() -> None:
    answers = replay()
    if os.environ.get("SEGSYNC_RECORD_DOCUMENTS"):
        RECORDING.write_text("".join(json.dumps(a, sort_keys=True) + "\n" for a in answers))
        pytest.skip("recorded")
    recorded = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    assert len(answers) == len(recorded)
    for i, (got, want) in enumerate(zip(answers, recorded)):
        assert got == want, f"answer {i} ({want[0]}) differs"
    # The sequence exercises what it claims to (a recording of nothing would prove nothing).
    batches = [a[1] for a in recorded if a[0] == "batch" and "problem" not in a[1]]
    codes = {e["error_code"] for b in batches for e in b["errors"]}
    fields = {e["field"] for b in batches for e in b["errors"]}
    assert codes == {"ERROR_GENERIC", "ERROR_CONTACT_EXISTS"}
    assert {"email_address", "status", "BIRTHDAY", "SIZE", "SINCE"} <= fields
    assert sum(b["total_created"] for b in batches) > 50 and sum(b["total_updated"] for b in batches) > 100
    assert sum(len(b["new_members"]) + len(b["updated_members"]) for b in batches) > 100
    assert any(a[0] == "member" and "problem" not in a[2] and a[2]["tags"] for a in recorded)

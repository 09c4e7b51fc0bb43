"""The files destination rewrites its audience once per run, however many changes the run has.

It declares no ``max_batch_size`` and offers a write session: the push stage hands it the diff
a page at a time (10,000 changes) and commits once, which rewrites the audience once (before
the fix, it cut the diff into batches of 10,000 and every batch re-sorted, re-serialised and
fsynced the whole audience: 3 rewrites for 25,000 changes, 81 for 1,000,000).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import segsync_files.audience as audience_module
from segsync.testing import Project
from segsync_files.connector import FilesConnector

CONTACTS = 25_000  # more than the 10,000 changes a page of the diff holds

CONFIG = """
[store]
path = "store.duckdb"

[connections.shop]
type = "files"
contacts = "data/contacts.csv"
consent = "data/consent.csv"

[connections.upload]
type = "files"
output = "out/audience"

[[segments]]
name = "even"
rule = 'attr.tier == "even"'
"""


def _project(root: Path, opted_out: range = range(0)) -> None:
    (root / "data").mkdir(exist_ok=True)
    (root / "segsync.toml").write_text(CONFIG)
    with (root / "data/contacts.csv").open("w") as out:
        out.write("email,tier\n")
        out.writelines(f"c{i:05}@example.com,{'even' if i % 2 == 0 else 'odd'}\n" for i in range(CONTACTS))
    with (root / "data/consent.csv").open("w") as out:
        out.write("email,status,timestamp,method\n")
        out.writelines(f"c{i:05}@example.com,opted_in,2024-01-01T00:00:00Z,form\n" for i in range(CONTACTS))
        out.writelines(f"c{i:05}@example.com,opted_out,2024-02-01T00:00:00Z,email_link\n" for i in opted_out)


class Counted:
    """Counts the files connector's write calls, the pages of its write sessions and their
    commits, and the audience files it replaces."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[int] = []
        self.pages: list[int] = []
        self.commits = 0
        self.replaced: list[str] = []
        write, atomic_write = FilesConnector.write, audience_module._atomic_write
        page, commit = audience_module.AudienceWrite.write, audience_module.AudienceWrite.commit

        def counted_write(connector, changes):
            self.writes.append(len(changes))
            return write(connector, changes)

        def counted_page(session, changes):
            self.pages.append(len(changes))
            return page(session, changes)

        def counted_commit(session):
            self.commits += 1
            return commit(session)

        def counted_atomic_write(path, fill):
            self.replaced.append(path.name)
            return atomic_write(path, fill)

        monkeypatch.setattr(FilesConnector, "write", counted_write)
        monkeypatch.setattr(audience_module.AudienceWrite, "write", counted_page)
        monkeypatch.setattr(audience_module.AudienceWrite, "commit", counted_commit)
        monkeypatch.setattr(audience_module, "_atomic_write", counted_atomic_write)


def _run(root: Path):
    return Project(root).run()


def _audience(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "out/audience.jsonl").read_text().splitlines()]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files")
    return tmp_path


def test_a_sync_of_25000_changes_is_one_write_and_one_rewrite_acknowledged_once(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(root)
    counted = Counted(monkeypatch)
    summary = _run(root)
    upload = summary.destinations[0]
    assert (summary.status, upload.status) == ("succeeded", "ok")
    assert (counted.writes, counted.pages, counted.commits) == ([], [10_000, 10_000, 5_000], 1)
    assert counted.replaced == ["audience.jsonl", "audience.csv"]
    assert (upload.planned, upload.records_written, upload.write_calls) == ({"add": CONTACTS}, CONTACTS, 2)
    rows = _audience(root)
    assert len(rows) == CONTACTS
    assert rows[0] == {"email": "c00000@example.com", "status": "subscribed", "tags": ["even"],
                       "attributes": {"tier": "even"}}
    assert rows[-1] == {"email": "c24999@example.com", "status": "subscribed", "tags": [],
                        "attributes": {"tier": "odd"}}
    assert Project(root).query(
        "SELECT count(*), count(DISTINCT contact_key) FROM acknowledged WHERE destination = 'upload'"
    ) == [(CONTACTS, CONTACTS)]
    assert Project(root).query(
        "SELECT count(*) FROM acknowledged_memberships WHERE destination = 'upload' AND segment = 'even'"
    ) == [(CONTACTS // 2,)]

    # Acknowledged once, for all of them: the next run plans and writes nothing.
    again = _run(root)
    assert (again.destinations[0].planned, again.destinations[0].write_calls) == ({}, 0)
    assert (counted.writes, counted.pages, counted.commits) == ([], [10_000, 10_000, 5_000], 1)


def test_opt_outs_and_updates_of_one_run_are_still_one_write(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(root)
    _run(root)
    _project(root, opted_out=range(0, CONTACTS, 2))  # 12,500 unsubscribes in one run
    counted = Counted(monkeypatch)
    upload = _run(root).destinations[0]
    assert upload.planned == {"unsubscribe": CONTACTS // 2}
    assert (counted.writes, counted.pages, counted.commits) == ([], [10_000, CONTACTS // 2 - 10_000], 1)
    assert counted.replaced == ["audience.jsonl", "audience.csv"]
    statuses = [row["status"] for row in _audience(root)]
    assert (statuses.count("unsubscribed"), statuses.count("subscribed")) == (CONTACTS // 2, CONTACTS // 2)


def test_a_failed_rewrite_acknowledges_nothing_and_the_next_run_writes_everything_once(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(root)
    with monkeypatch.context() as failing:
        def full_disk(self) -> int:
            raise OSError(28, "No space left on device")

        failing.setattr(audience_module.AudienceWrite, "commit", full_disk)
        upload = _run(root).destinations[0]
    assert (upload.status, upload.records_written, upload.records_retrying) == ("failed", 0, CONTACTS)
    assert upload.error.endswith("(connection 'upload') failed writing: OSError: [Errno 28] No space left on device")
    assert not (root / "out/audience.jsonl").exists()

    counted = Counted(monkeypatch)
    upload = _run(root).destinations[0]
    assert (upload.status, upload.planned, upload.records_written) == ("ok", {"add": CONTACTS}, CONTACTS)
    assert (counted.pages, counted.commits) == ([10_000, 10_000, 5_000], 1)
    assert len(_audience(root)) == CONTACTS

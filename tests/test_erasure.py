"""Erasure end to end through the CLI: nothing of the address left in the store's bytes, a crash
before the file is rewritten finished by the next writer, and a report that says what is left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from segsync.plugins import PluginHost
from segsync.store import Store
from segsync.store import store as store_module

from .conftest import BASIC_CONFIG
from .esp_fixtures import brevo, esp, mailchimp  # noqa: F401  (fixtures)

ANN = "ann.zed@example.com"
SEGMENTS = """
    [[segments]]
    name = "gold"
    rule = 'attr.tier == "gold"'
"""


def _cli(project, *args):
    host = project.host()
    host.add_commands(cli)
    return CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), *args], obj=host)


def _encodings(address: str) -> dict[str, bytes]:
    """Every plausible way the address's bytes may be written."""
    local, _, domain = address.partition("@")
    forms = {
        "plain": address.encode(),
        "upper": address.upper().encode(),
        "percent-encoded": f"{local}%40{domain}".encode(),
        "percent-encoded upper": f"{local}%40{domain}".upper().encode(),
        "json-escaped": f"{local}\\u0040{domain}".encode(),
        "utf-16-le": address.encode("utf-16-le"),
        "utf-16-be": address.encode("utf-16-be"),
    }
    return forms


def _store_files(root: Path) -> list[Path]:
    """The store file, its WAL, DuckDB's temp directory and anything else named after it."""
    found = []
    for path in root.iterdir():
        if path.name.startswith("store.duckdb"):
            found += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return found


def _traces(root: Path, address: str) -> list[tuple[str, str]]:
    """(file, encoding) of every byte sequence of ``address`` in the store's files."""
    hits = []
    for path in _store_files(root):
        data = path.read_bytes()
        for name, needle in _encodings(address).items():
            if needle in data or needle.lower() in data.lower():
                hits.append((path.name, name))
    return hits


@pytest.fixture
def shop(project):
    """A realistic first sync: Ann pulled in upper case, with events, consent evidence naming her,
    record errors quoting her address, a segment, and another person's data mentioning her."""
    project.write_config(BASIC_CONFIG + SEGMENTS)
    project.write("contacts.csv", """
        email,first_name,tier,company_size
        ANN.Zed@Example.COM,Ann,gold,10
        bo@example.com,Bo,gold,5
        ann.zed@example.com,Ann,gold,lots
    """)
    project.write("consent.csv", """
        email,status,timestamp,method,evidence
        ann.zed@example.com,opted_in,2024-01-01T00:00:00Z,form,"web form, typed ANN.ZED@EXAMPLE.COM"
        bo@example.com,opted_in,2024-01-01T00:00:00Z,double_opt_in,
    """)
    project.write("events.jsonl", r"""
        {"email": "ANN.ZED@example.com", "type": "email.opened", "timestamp": "2024-02-01T00:00:00Z", "id": "e1", "properties": {"link": "https://shop.test/?u=ann.zed%40example.com"}}
        {"email": "bo@example.com", "type": "page.viewed", "timestamp": "2024-02-02T00:00:00Z", "id": "e2", "url": "https://shop.test/r?by=ann.zed%40example.com", "properties": {"referrer": "Ann.Zed@Example.com", "escaped": "ann.zed\u0040example.com"}}
        {"email": "ann.zed@example.com", "type": "no.such.type", "timestamp": "2024-02-03T00:00:00Z", "id": "e3"}
        {"email": "ann.zed@@example.com", "type": "email.opened", "timestamp": "2024-02-03T00:00:00Z", "id": "e4"}
    """)
    run = project.run()
    # The fixture's deliberately bad rows (company_size "lots", e3, e4) are rejected: the run says so.
    assert run.status == "with-rejections"
    assert run.sources[0].rejected == {"contacts": 1, "consent": 0, "events": 2}
    assert _cli(project, "suppress", "add", "bo@example.com", "--note", f"asked by {ANN}").exit_code == 0
    # The fixture really is a test of something: the address is in the store's bytes.
    assert ("store.duckdb", "plain") in _traces(project.root, ANN)
    return project


def test_forget_leaves_no_byte_of_the_address_in_the_store_files(shop) -> None:
    result = _cli(shop, "forget", "--yes", "--json", ANN.upper())
    report = json.loads(result.output)[0]
    assert report["store_rewritten"] is True and report["store_error"] is None

    assert _traces(shop.root, ANN) == []
    assert sorted(p.name for p in _store_files(shop.root)) == ["store.duckdb", "store.duckdb.lock"]
    with Store(shop.root / "store.duckdb", read_only=True) as store:
        # Bo's data is intact, with Ann masked where it named her.
        assert store.con.execute(
            "SELECT url, properties->>'referrer', properties->>'escaped' FROM events WHERE contact_key = 'bo@example.com'"
        ).fetchall() == [("https://shop.test/r?by=a***@e***.com", "a***@e***.com", "a***@e***.com")]
        assert store.con.execute("SELECT contact_key, note FROM suppressions WHERE reason = 'opt_out'").fetchall() == [
            ("bo@example.com", "asked by a***@e***.com")]
        assert store.scalar("SELECT count(*) FROM contacts") == 1
        assert store.scalar("SELECT count(*) FROM segment_snapshots WHERE contact_key = 'bo@example.com'") == 1
        # The rewritten file is a working store: sequences go on where they were.
        assert store.scalar("SELECT max(id) FROM runs") == 1
    again = shop.run()
    assert again.status == "succeeded" and again.run_id == 2
    assert _traces(shop.root, ANN) == []


def test_a_crash_before_the_file_is_rewritten_is_finished_by_the_next_writer(shop, monkeypatch) -> None:
    real_replace = os.replace

    def crash_on_store(src, dst, *args, **kwargs):
        if str(dst).endswith("store.duckdb"):
            raise OSError("simulated power cut")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "replace", crash_on_store)
    result = _cli(shop, "forget", "--yes", ANN)
    assert result.exit_code == 1
    assert ("  store: the store file could not be rewritten (OSError: simulated power cut); deleted rows may "
            "remain in its free space until the next segsync command that writes to the store") in result.output
    # The old file is still in place and usable; the copy and the marker are left behind.
    assert (shop.root / "store.duckdb.rewrite-pending").exists()
    assert ("store.duckdb", "plain") in _traces(shop.root, ANN)
    with Store(shop.root / "store.duckdb", read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM contacts WHERE contact_key = ?", [ANN]) == 0
    monkeypatch.setattr(store_module.os, "replace", real_replace)

    Store(shop.root / "store.duckdb").close()  # any writer (sync, suppress, forget) finishes it

    assert _traces(shop.root, ANN) == []
    assert sorted(p.name for p in _store_files(shop.root)) == ["store.duckdb", "store.duckdb.lock"]


def test_forget_says_what_is_left_and_exits_non_zero_when_a_source_still_holds_the_person(shop) -> None:
    text = _cli(shop, "forget", "--yes", "bo@example.com")
    assert text.exit_code == 1
    assert text.output.splitlines()[1:] == [
        "  shop             manual   NOT DELETED: segsync cannot write to this connection; its contacts, "
        "consent records and events still hold the person: remove them there by hand (a re-import is dropped)",
        "  upload           delete   deleted",
        "  left (still holding the person): shop",
    ]
    report = json.loads(_cli(shop, "forget", "--yes", "--json", ANN).output)[0]
    assert (report["done"], report["left"]) == (False, ["shop"])
    assert [(s["connection"], s["status"]) for s in report["systems"]] == [("shop", "left"), ("upload", "done")]


def test_forget_exits_zero_only_when_every_system_deleted(project) -> None:
    project.write_config("""
        [store]
        path = "store.duckdb"

        [connections.upload]
        type = "files"
        output = "out/audience"
    """)
    project.run()
    result = _cli(project, "forget", "--yes", "--json", "ann@example.com")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)[0]
    assert (report["done"], report["left"], report["store_rewritten"]) == (True, [], True)


def test_brevo_refusing_to_delete_the_account_owner_is_reported_as_left_not_done(esp) -> None:  # noqa: F811
    esp.append("contacts.csv", "owner@example.com,Owner,\n")
    esp.sync()
    host = PluginHost()
    host.add_commands(cli)
    result = CliRunner().invoke(cli, ["--config", str(esp.root / "segsync.toml"), "forget", "--yes", "--json",
                                      "owner@example.com"], obj=host)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)[0]
    assert (report["done"], report["left"]) == (False, ["brevo"])
    systems = {s["connection"]: s for s in report["systems"]}
    assert (systems["mc"]["status"], systems["mc"]["action"]) == ("done", "deleted")
    assert systems["brevo"]["status"] == "left"
    assert systems["brevo"]["error"].startswith(
        "rejected: Brevo refuses to delete this contact (405: a registered email of the account cannot be deleted)")
    assert "owner@example.com" in esp.brevo_contacts()
    # Not retried: the next sync sends Brevo no delete.
    again = esp.sync()
    assert [w for w in again.brevo_writes if w[0] == "DELETE"] == []

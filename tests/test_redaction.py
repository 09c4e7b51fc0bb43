"""Addresses masked and secrets removed in everything segsync prints or stores, whoever raised
the error: DuckDB quoting a raw CSV line, a connector putting its API key in an exception."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from segsync import Capability, Connector, ConnectorSettings, ContactChange, Outcome, Stream, WriteResult, hookimpl
from segsync.cli import cli
from segsync.redaction import for_output, redact
from segsync.store import Store

CARL = "carl.quote@example.com"
API_KEY = "sk-live-4f8a2c9e1b7d"  # from the environment (SEGSYNC_LEAKY_API_KEY)
TOKEN = "tok-93be71c0aa42"  # a SecretStr whose variable name says nothing (SEGSYNC_LEAKY_CREDENTIALS)


class LeakySettings(ConnectorSettings):
    api_key: SecretStr
    credentials: SecretStr


class LeakyConnector(Connector):
    """Puts its secrets and the person's address in every error, as careless SDKs do."""

    type_name = "leaky"
    capabilities = frozenset({Capability.READ_CONSENT, Capability.WRITE_CONTACTS})
    Settings = LeakySettings
    settings: LeakySettings

    def read(self, stream: Stream, cursor: Any | None):
        key = self.settings.api_key.get_secret_value()
        raise RuntimeError(f"GET /consent?apikey={key}&owner={CARL} answered 401")

    def write(self, changes: Sequence[ContactChange]) -> WriteResult:
        token = self.settings.credentials.get_secret_value()
        return WriteResult([Outcome.rejected(c.contact_key, f"{c.contact_key.upper()} refused for token {token}")
                            for c in changes], calls=1)


class LeakyPlugin:
    @hookimpl
    def segsync_register_connectors(self, register):
        register(LeakyConnector)


def _cli(project, *args):
    host = project.host(LeakyPlugin())
    host.add_commands(cli)
    return CliRunner().invoke(cli, ["--config", str(project.root / "segsync.toml"), *args], obj=host)


def _unwrapped(output: str) -> str:
    """The output with the terminal's line wrapping undone."""
    return " ".join(output.split())


def _store_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.iterdir() if p.name.startswith("store.duckdb") and p.is_file())


def test_an_address_quoted_from_a_broken_csv_line_is_masked_in_output_and_store(project) -> None:
    # Line 3 is not UTF-8 (DuckDB's reader used to fail on it, quoting Carl's line); Carl's
    # company size is invalid, so Carl is never loaded: his address has no business being
    # anywhere in the store. Each line is now its own record error, naming line and field.
    (project.data / "contacts.csv").write_bytes(
        f"email,first_name,tier,company_size\n{CARL},Carl,,lots\nbo@example.com,B\xffo,,5\n".encode("latin-1"))
    sync = _cli(project, "sync")
    runs = _cli(project, "runs", "--errors")
    runs_json = _cli(project, "runs", "--errors", "--json")
    assert "shop data/contacts.csv line 2 [company_size]" in sync.output
    assert "shop data/contacts.csv line 3 [first_name]: not UTF-8" in sync.output
    for output in (sync.output, runs.output, runs_json.output):
        assert CARL not in output.lower()
    assert CARL.encode() not in _store_bytes(project.root)
    with Store(project.root / "store.duckdb", read_only=True) as store:
        reasons = [r[0] for r in store.con.execute("SELECT reason FROM record_errors").fetchall()]
    assert reasons and all(CARL not in r for r in reasons)


def test_segsync_log_emails_shows_addresses_in_printed_output_but_never_in_the_store(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_LOG_EMAILS", "1")
    monkeypatch.setenv("SEGSYNC_LEAKY_API_KEY", API_KEY)
    monkeypatch.setenv("SEGSYNC_LEAKY_CREDENTIALS", TOKEN)
    project.write_config("""
        [store]
        path = "store.duckdb"

        [connections.leaky]
        type = "leaky"
    """)
    sync = _cli(project, "sync")
    # Printed as raised, secrets excepted; stored masked.
    assert (f"failed reading consent: RuntimeError: GET /consent?apikey=***&owner={CARL} answered 401"
            in _unwrapped(sync.stdout))
    with Store(project.root / "store.duckdb", read_only=True) as store:
        stored = store.con.execute("SELECT record, reason FROM record_errors").fetchall()
    assert [(record, reason.split("RuntimeError: ")[1]) for record, reason in stored] == [
        ("leaky", "GET /consent?apikey=***&owner=c***@e***.com answered 401")]


def test_a_connector_that_puts_secrets_in_its_errors_never_gets_them_printed_or_stored(project, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_LEAKY_API_KEY", API_KEY)
    monkeypatch.setenv("SEGSYNC_LEAKY_CREDENTIALS", TOKEN)
    project.write_config("""
        [store]
        path = "store.duckdb"

        [connections.shop]
        type = "files"
        contacts = "data/contacts.csv"
        consent = "data/consent.csv"

        [connections.leaky]
        type = "leaky"
    """)
    as_json = _cli(project, "sync", "--json")
    sync = _cli(project, "-v", "sync", "--full-refresh")
    runs = _cli(project, "runs", "--errors")
    runs_json = _cli(project, "runs", "--errors", "--json")
    assert sync.exit_code == 1
    outputs = {"sync": sync.output, "sync --json": as_json.output, "runs": runs.output, "runs --json": runs_json.output}
    for name, output in outputs.items():
        assert API_KEY not in output and TOKEN not in output, name
    assert "RuntimeError: GET /consent?apikey=***&owner=c***@e***.com answered 401" in _unwrapped(sync.stdout)
    assert "ERROR segsync.sync.pull: plugin" in sync.stderr and "apikey=***&owner=c***@e***.com" in sync.stderr
    summary = json.loads(as_json.stdout)
    leaky_source = next(s for s in summary["sources"] if s["name"] == "leaky")
    assert leaky_source["error"].endswith("RuntimeError: GET /consent?apikey=***&owner=c***@e***.com answered 401")
    assert [(e["connection"], e["record"], e["reason"]) for e in summary["errors"] if e["phase"] == "push"] == [
        ("leaky", "a***@e***.com", "A***@E***.COM refused for token ***"),
        ("leaky", "b***@e***.com", "B***@E***.COM refused for token ***")]
    data = _store_bytes(project.root)
    assert API_KEY.encode() not in data and TOKEN.encode() not in data
    with Store(project.root / "store.duckdb", read_only=True) as store:
        rejected = store.con.execute("SELECT contact_key, reason FROM rejected ORDER BY contact_key").fetchall()
    assert rejected == [("ann@example.com", "A***@E***.COM refused for token ***"),
                        ("bo@example.com", "B***@E***.COM refused for token ***")]


def test_redact_masks_every_form_of_an_address_and_every_known_secret(monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_CRM_TOKEN", "crm-token-1234")
    monkeypatch.setenv("SEGSYNC_CRM_HOST", "api.crm.test")  # not a secret by its name
    text = "Ann.Lee@Example.com / ann.lee%40example.com / ann.lee\\u0040example.com via crm-token-1234 at api.crm.test"
    assert redact(text) == "A***@E***.com / a***@e***.com / a***@e***.com via *** at api.crm.test"
    monkeypatch.setenv("SEGSYNC_LOG_EMAILS", "1")
    assert for_output(text) == text.replace("crm-token-1234", "***")
    assert redact("a short secret: abc", secrets=["abc"]) == "a short secret: ***"

"""`segsync sync` and the segment commands on each engine: the same project gives the same runs,
the same audience and the same command output (docs/scale.md)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from segsync.cli import cli
from segsync.testing import SAMPLE_FILES, Project

from .conftest import ENGINES

_schemas = itertools.count(1)
AS_OF = datetime(2024, 3, 1, tzinfo=timezone.utc)
CONFIG = """
[store]
path = "store.duckdb"
{engine}
[connections.shop]
type = "files"
contacts = "data/contacts.csv"
consent = "data/consent.csv"
events = "data/events.jsonl"
push = false

[connections.upload]
type = "files"
output = "out/audience"

[[segments]]
name = "openers"
rule = "opens(90d) >= 1"
destinations = {{ upload = {{ tag = "openers" }} }}

[[segments]]
name = "gold"
rule = 'attr.tier == "gold" or bucket("g") < 0.3'
destinations = {{ upload = {{ tag = "gold" }} }}
"""


def _engine_table(name: str, request) -> str:
    if name == "duckdb":
        return ""
    if name == "postgres":
        cluster = request.getfixturevalue("postgres_cluster")
        return f'engine = "postgres"\nurl = "{cluster.url}"\nschema_name = "sync{os.getpid()}_{next(_schemas)}"\n'
    if name == "spark":
        request.getfixturevalue("spark_session")  # the engine joins the test run's session
        return 'engine = "spark"\n'
    raise AssertionError(f"add {name} to _engine_table")


def _without_clock(data):
    """``data`` without the wall-clock instants of ingestion and acknowledgement."""
    if isinstance(data, dict):
        return {k: _without_clock(v) for k, v in data.items()
                if k not in ("ingested_at", "acked_at", "changed_at")}
    if isinstance(data, list):
        return [_without_clock(v) for v in data]
    return data


# Sends and an order in the window of `segments report` (they move no segment of CONFIG).
PERFORMANCE_EVENTS = (
    '{"email": "ann@example.com", "type": "email.sent", "timestamp": "2024-01-31T00:00:00Z", "id": "s1"}\n'
    '{"email": "cy@example.com", "type": "email.sent", "timestamp": "2024-01-31T00:00:00Z", "id": "s2"}\n'
    '{"email": "ann@example.com", "type": "order.completed", "timestamp": "2024-02-02T00:00:00Z", '
    '"id": "o1", "value": 42.5}\n'
)


def _commands(project: Project) -> dict:
    """What every read command prints (JSON where it has it) about the synced project."""
    runner = CliRunner()
    config = str(project.root / "segsync.toml")
    at = ["--as-of", AS_OF.isoformat()]
    commands = {}
    for args in (["segments", "list", "--json", *at], ["segments", "members", "openers", "--json", *at],
                 ["segments", "overlap", "--json", *at], ["segments", "preview", "gold", "--json", *at],
                 ["segments", "history", "gold", "--json"], ["segments", "history", "openers", "--json"],
                 ["segments", "report", "openers", "gold", "--window", "90d", "--json", *at]):
        result = runner.invoke(cli, ["--config", config, *args])
        assert result.exit_code == 0, result.output
        commands[" ".join(args[:3])] = json.loads(result.output)
    result = runner.invoke(cli, ["--config", config, "segments", "show", "gold", *at])
    assert result.exit_code == 0, result.output
    commands["segments show gold"] = result.output
    for key in ("cy@example.com", "bo@example.com"):
        result = runner.invoke(cli, ["--config", config, "segments", "explain", "gold", key, *at])
        assert result.exit_code == 0, result.output
        commands[f"explain gold {key}"] = result.output
    for key in ("ann@example.com", "bo@example.com", "cy@example.com"):
        result = runner.invoke(cli, ["--config", config, "consent", "show", key, "--json"])
        assert result.exit_code == 0, result.output
        commands[f"consent show {key}"] = _without_clock(json.loads(result.output))
    page = project.root / "report.html"
    result = runner.invoke(cli, ["--config", config, "report", "--html", str(page), "--window", "90d", *at])
    assert result.exit_code == 0, result.output
    commands["report --html"] = page.read_text(encoding="utf-8")
    return commands


def _keep_only_segsyncs_state(project: Project) -> None:
    """Empty the embedded store's contacts, events and consent ledger (as when they live only in
    tables mapped onto the user's): what a read command answers must then come from the engine."""
    from segsync.store import Store

    with Store(project.root / "store.duckdb") as store:
        for table in ("contacts", "events", "consent_ledger"):
            store.con.execute(f"DELETE FROM {table}")


def _shown_sql_runs_there(project: Project) -> None:
    """The SQL `segments show --sql` and `segments explain --sql` print on an engine is the text
    the engine runs: run as printed there, it gives the members and the explanation's values."""
    from segsync.config import load_config, open_engine

    runner = CliRunner()
    config = str(project.root / "segsync.toml")
    at = ["--as-of", AS_OF.isoformat()]
    shown = runner.invoke(cli, ["--config", config, "segments", "show", "gold", "--sql", *at])
    explained = runner.invoke(cli, ["--config", config, "segments", "explain", "gold", "cy@example.com",
                                    "--sql", *at])
    members = runner.invoke(cli, ["--config", config, "segments", "members", "gold", "--json", *at])
    assert shown.exit_code == explained.exit_code == members.exit_code == 0, shown.output + explained.output
    with open_engine(load_config(config, project.host()), project.host()) as engine:
        assert sorted(k for (k,) in engine.rows(shown.output.split("\n\n", 1)[1])) == json.loads(members.output)
        row = engine.rows(explained.output.split("\n\n", 1)[1])
    # One row, Cy's: his key, the segment's flag, then each step's value (his tier among them).
    assert len(row) == 1 and row[0][0] == "cy@example.com" and "silver" in row[0]
    assert "      attr.tier  =>  'silver'\n" in explained.output


def _outcome(project: Project, engine: str) -> dict:
    project.append("events.jsonl", PERFORMANCE_EVENTS)
    first = project.run(as_of=AS_OF)
    project.append("consent.csv", "bo@example.com,opted_out,2024-02-20T00:00:00Z,form\n")
    project.append("events.jsonl", '{"email": "cy@example.com", "type": "email.opened", '
                                   '"timestamp": "2024-02-25T00:00:00Z", "id": "e2"}\n')
    second = project.run(as_of=AS_OF)
    third = project.run(as_of=AS_OF)
    commands = _commands(project)
    if engine != "duckdb":
        _shown_sql_runs_there(project)
        _keep_only_segsyncs_state(project)
        assert _commands(project) == commands, "a read command answered from the embedded store"
    return {
        "runs": [(r.status, r.segments, [(d.name, d.status, d.planned) for d in r.destinations])
                 for r in (first, second, third)],
        "audience": project.audience(),
        "commands": commands,
    }


@pytest.mark.parametrize("name", sorted(set(ENGINES) - {"duckdb"}))
def test_a_project_syncs_the_same_on_every_engine(name, tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres,spark,report")
    outcomes = {}
    for engine in ("duckdb", name):
        project = Project(tmp_path / engine / "shop")  # one name: the report's title shows it
        project.write_config(CONFIG.format(engine=_engine_table(engine, request)))
        for file, text in SAMPLE_FILES.items():
            project.write(file, text)
        outcomes[engine] = _outcome(project, engine)
    assert outcomes[name] == outcomes["duckdb"]
    runs = outcomes["duckdb"]["runs"]
    # The runs did something: adds, then Bo's opt-out (Cy, an opener now, has no consent), then
    # nothing.
    assert runs[0][2][0][2] == {"add": 2}
    assert runs[1][2][0][2] == {"unsubscribe": 1}
    assert runs[2][2][0][2] == {}
    commands = outcomes[name]["commands"]
    assert commands["segments members openers"] == ["ann@example.com", "cy@example.com"]
    # History from the engine's snapshots: Cy's open (run 2) makes him an opener; gold is steady.
    assert [(h["run_id"], h["size"], h["entries"], h["exits"]) for h in commands["segments history openers"]] == [
        (1, 1, 1, 0), (2, 2, 1, 0), (3, 2, 0, 0)]
    assert [h["as_of"] for h in commands["segments history gold"]] == [AS_OF.isoformat()] * 3
    # Performance from the engine's events: two sends, one open, one order of 42.50 among openers.
    openers = next(r for r in commands["segments report openers"] if r["segment"] == "openers")
    assert (openers["members"], openers["sends"], openers["opens"], openers["orders"], openers["revenue"]) == (
        2, 2, 2, 1, 42.5)
    page = commands["report --html"]
    assert "<title>openers: 21.25</title>" in page  # revenue per send: 42.50 over two sends
    # The report's consent counts: the ledger and effective consent read on the engine.
    assert "<title>shop: reported: unsubscribed 1 (50.0%)</title>" in page
    assert "<title>policy default: effective: unsubscribed 1 (33.3%)</title>" in page
    # preview against the latest run: a later as-of moves nobody here, the run was at AS_OF.
    preview = commands["segments preview gold"]
    assert (preview["since_run"], preview["entries"], preview["exits"]) == (3, 0, 0)
    # bucket() is md5 of "salt:key", its first 8 hex digits over 2**32 (docs/rules.md).
    cy_bucket = int(hashlib.md5(b"g:cy@example.com").hexdigest()[:8], 16) / 2**32
    assert commands["explain gold cy@example.com"].splitlines()[1:] == [
        f"  attr.tier == \"gold\" or bucket(\"g\") < 0.3  =>  {cy_bucket < 0.3}",
        "    attr.tier == \"gold\"  =>  False",
        "      attr.tier  =>  'silver'",
        f"    bucket(\"g\") < 0.3  =>  {cy_bucket < 0.3}",
        f"      bucket(\"g\")  =>  {cy_bucket!r}",
    ]
    bo = commands["consent show bo@example.com"]["effective"]
    assert [(e["channel"], e["status"], e["decided_by"]["ledger"]["status"]) for e in bo] == [
        ("email", "unsubscribed", "opted_out")]



def test_check_reports_the_engine(tmp_path, request, monkeypatch) -> None:
    monkeypatch.setenv("SEGSYNC_PLUGINS", "postgres")
    cluster = request.getfixturevalue("postgres_cluster")
    project = Project(tmp_path)
    runner = CliRunner()
    config = str(tmp_path / "segsync.toml")
    schema = f"check{os.getpid()}"
    project.write_config(f'[store]\nengine = "postgres"\nurl = "{cluster.url}"\nschema_name = "{schema}"\n'
                         f'[store.tables]\nevents = "{schema}_user.events"\n')
    result = runner.invoke(cli, ["--config", config, "check"])
    assert result.exit_code == 1
    assert "✗ engine postgres\n" in result.output
    assert f"    table events (mapped to {schema}_user.events) is missing\n" in result.output
    assert "    note: table contacts is missing (segsync creates it on the first sync)\n" in result.output
    project.write_config(f'[store]\nengine = "postgres"\nurl = "{cluster.url}"\nschema_name = "{schema}"\n')
    result = runner.invoke(cli, ["--config", config, "sync"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["--config", config, "check"])
    assert (result.exit_code, "✓ engine postgres\n" in result.output, "note:" in result.output) == (0, True, False)
    project.write_config('[store]\nengine = "postgres"\nurl = "postgresql://segsync@127.0.0.1:1/crm"\n'
                         'connect_timeout = 2\n')
    result = runner.invoke(cli, ["--config", config, "check"])
    assert result.exit_code == 1
    assert "✗ engine postgres\n    PostgreSQL at postgresql://" in result.output
    assert "/crm cannot be reached: " in result.output
    # A sync stops before anything, with the reason on one line (exit 2, no traceback).
    result = runner.invoke(cli, ["--config", config, "sync"])
    assert result.exit_code == 2
    assert result.output.startswith("error: PostgreSQL at postgresql://") and "Traceback" not in result.output


def test_demo_on_postgres_without_a_url_runs_end_to_end(tmp_path, monkeypatch) -> None:
    """`segsync demo --engine postgres`: a throwaway cluster in the demo folder, the same
    output as on the embedded store (the segment sizes and every run's plans)."""
    monkeypatch.setenv("SEGSYNC_PLUGINS", "files,postgres")
    tmp_path.chmod(0o755)  # the cluster's own user (postgres, under root) reaches the folder
    outputs = {}
    for engine in ("duckdb", "postgres"):
        result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / engine), "--contacts", "80",
                                          "--engine", engine])
        assert result.exit_code == 0, result.output
        # "Segments as of <date> <HH:MM> UTC": the two demos may run either side of a minute.
        outputs[engine] = [re.sub(r"as of \d{4}-\d\d-\d\d \d\d:\d\d UTC", "as of <now> UTC", line)
                           for line in result.output.splitlines()
                           if "evaluated on the" not in line and not line.startswith(("Explore", "Generating"))
                           and "append to postgres" not in line]
    assert outputs["postgres"] == outputs["duckdb"]
    assert "push newsletter: done (70)" in outputs["postgres"]
    config = (tmp_path / "postgres" / "segsync.toml").read_text(encoding="utf-8")
    assert config.startswith('[store]\nengine = "postgres"\n') or '\n[store]\nengine = "postgres"\n' in config

"""``segsync`` starts without importing what its commands do not need.

Start-up figures are in bench/RESULTS-startup.md (``bench/startup.py``); here, the imports a
command pays for are checked, not timed: a command runs in a fresh interpreter with every
installed connector loaded, and the modules it imported are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# What `segsync --help` must not import: the store, the rule engine, the settings machinery,
# the terminal tables and the connectors' SDKs.
HEAVY = ("duckdb", "sqlglot", "pydantic_settings", "rich", "mailchimp_marketing", "sib_api_v3_sdk",
         # What plugin distributions (engines, serving, prediction, reports) build on: a plugin
         # module that --help or `segsync plugins` loads must import them where they are used.
         "numpy", "pandas", "sklearn", "pyspark", "psycopg", "starlette", "uvicorn", "jinja2",
         "plotly", "playwright", "prometheus_client")
PYDANTIC = ("pydantic", "pydantic_core", "pydantic_settings")
CONNECTORS = ("files", "mailchimp", "brevo", "hubspot", "constantcontact")
SDKS = ("mailchimp_marketing", "sib_api_v3_sdk")
# The record models: the built-in consent policies, the log redaction and the files connector
# need only their vocabulary (segsync.vocabulary) and masking at start, not the pydantic models.
MODELS = ("segsync.model",)
# What listing the connector types must not import either: each connector's API client, readers
# and writers (and the retry library behind them) load with the first connection, not the class.
CONNECTOR_INTERNALS = (
    "tenacity",
    # Each connector names its settings class (lazy_settings): built when a connection is configured.
    "segsync_files.settings", "segsync_mailchimp.settings", "segsync_brevo.settings",
    "segsync_hubspot.settings", "segsync_constantcontact.settings",
    "segsync_mailchimp.api", "segsync_mailchimp.reader", "segsync_mailchimp.writer",
    "segsync_brevo.api", "segsync_brevo.reader", "segsync_brevo.writer", "segsync_brevo.account",
    "segsync_constantcontact.api", "segsync_constantcontact.reader", "segsync_constantcontact.writer",
    "segsync_constantcontact.directory",
)

# What the console script runs, then the modules it left imported.
PROGRAM = """
import json, sys
from segsync.cli import main
sys.argv = ["segsync", *sys.argv[1:]]
status = 0
try:
    main()
except SystemExit as exit:
    status = exit.code
print("MODULES " + json.dumps(sorted(sys.modules)))
sys.exit(status)
"""


def imported_by(*args: str, cwd=None) -> tuple[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSYNC_")}  # every plugin
    done = subprocess.run([sys.executable, "-c", PROGRAM, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    output, _, modules = done.stdout.rpartition("MODULES ")
    return output, set(json.loads(modules))


def test_help_imports_no_heavy_library_with_every_connector_loaded() -> None:
    output, modules = imported_by("--help")
    # Every connector's plugin was loaded (their commands could be listed) ...
    assert {"segsync_files", "segsync_mailchimp", "segsync_brevo"} <= modules
    for command in ("sync", "runs", "contacts", "segments", "consent", "suppress", "forget",
                    "plugins", "check", "retry-rejected", "init", "demo"):
        assert f"\n  {command} " in output
    # ... and none of the heavy libraries was imported.
    assert sorted(modules & set(HEAVY)) == []


def test_help_imports_neither_pydantic_nor_the_record_models() -> None:
    output, modules = imported_by("--help")
    assert "\n  plugins " in output
    assert sorted(m for m in modules if m == "pydantic" or m.startswith(("pydantic.", "pydantic_core"))) == []
    assert sorted(modules & set(MODELS)) == []
    assert {"segsync.consent.policies", "segsync.vocabulary"} <= modules  # the built-in policies loaded


def test_plugins_lists_every_connector_without_their_sdks() -> None:
    output, modules = imported_by("plugins", "--json")
    types = {t for plugin in json.loads(output) for t in plugin["connector_types"]}
    assert {"files", "mailchimp", "brevo"} <= types
    assert sorted(modules & set(SDKS)) == []


def test_plugins_leaves_connector_internals_unimported_in_text_and_json() -> None:
    for args in (("plugins",), ("plugins", "--json")):
        output, modules = imported_by(*args)
        assert "mailchimp" in output and "brevo" in output
        assert {"segsync_mailchimp.connector", "segsync_brevo.connector"} <= modules
        assert sorted(modules & set(CONNECTOR_INTERNALS)) == [], args
        # The files connector names the known attributes and the log set-up masks addresses:
        # neither imports the record models until a record or a message needs them.
        assert {"segsync_files.audience", "segsync.redaction"} <= modules, args
        assert sorted(modules & set(MODELS)) == [], args


def synced_project(folder) -> None:
    """`segsync init` in ``folder``, then one sync (its sample has rows it rejects: exit 3)."""
    subprocess.run([sys.executable, "-m", "segsync", "init", str(folder)], check=True, capture_output=True)
    sync = subprocess.run([sys.executable, "-m", "segsync", "sync"], cwd=folder, capture_output=True, text=True)
    assert sync.returncode == 3, sync.stderr


def pydantic_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in PYDANTIC)


def test_plugins_lists_every_connector_without_pydantic() -> None:
    output, _ = imported_by("plugins", "--json")
    types = {t for plugin in json.loads(output) for t in plugin["connector_types"]}
    assert set(CONNECTORS) <= types
    for args in (("plugins",), ("plugins", "--json")):
        output, modules = imported_by(*args)
        assert {f"segsync_{name}.connector" for name in CONNECTORS} <= modules, args
        assert pydantic_modules(modules) == [], args
        assert sorted(modules & set(HEAVY) - {"rich"}) == [], args


def test_runs_reads_the_history_without_the_rule_engine_or_the_settings(tmp_path) -> None:
    synced_project(tmp_path)
    output, modules = imported_by("runs", "--json", cwd=tmp_path)
    [run] = json.loads(output)
    assert (run["id"], run["status"]) == (1, "with-rejections")
    assert "duckdb" in modules  # the history is in the store ...
    # ... and nothing else a sync needs: no project validation, rule engine, SQL builder or models.
    assert pydantic_modules(modules) == []
    assert sorted(modules & {"sqlglot", "segsync.config", "segsync.segments", "segsync.model"}) == []


def test_runs_prints_its_table_without_rich(tmp_path) -> None:
    synced_project(tmp_path)
    output, modules = imported_by("runs", cwd=tmp_path)
    header, rule, row, hint = output.splitlines()
    assert header.split() == ["id", "started", "finished", "status", "destinations"]
    assert set(rule.replace(" ", "")) == {"-"}
    # Columns line up: each cell starts where its header does.
    assert row.index("with-rejections") == header.index("status")
    assert row[header.index("destinations"):].startswith("newsletter: ")
    assert row.endswith(" calls")
    assert hint == "Rejected and retrying records: `segsync runs --errors`."
    assert sorted(m for m in modules if m.split(".")[0] == "rich") == []


def test_runs_works_while_a_connection_setting_is_misspelt(tmp_path) -> None:
    synced_project(tmp_path)
    config = tmp_path / "segsync.toml"
    text = config.read_text()
    assert 'contacts = "' in text
    config.write_text(text.replace('contacts = "', 'contacs = "', 1))
    history = subprocess.run([sys.executable, "-m", "segsync", "runs", "--json"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert history.returncode == 0, history.stderr
    assert [run["id"] for run in json.loads(history.stdout)] == [1]
    # The commands that use the connections still refuse the file, naming the key.
    sync = subprocess.run([sys.executable, "-m", "segsync", "sync"], cwd=tmp_path, capture_output=True, text=True)
    assert sync.returncode != 0
    assert "contacs" in sync.stderr

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
HEAVY = ("duckdb", "sqlglot", "pydantic_settings", "rich", "mailchimp_marketing", "sib_api_v3_sdk")
SDKS = ("mailchimp_marketing", "sib_api_v3_sdk")
# The record models: the built-in consent policies, the log redaction and the files connector
# need only their vocabulary (segsync.vocabulary) and masking at start, not the pydantic models.
MODELS = ("segsync.model",)
# What listing the connector types must not import either: each connector's API client, readers
# and writers (and the retry library behind them) load with the first connection, not the class.
CONNECTOR_INTERNALS = (
    "tenacity",
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

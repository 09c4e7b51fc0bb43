"""Fuzzed project files through the real CLI: `check` and `sync` never print a traceback, exit
with 0, 1, 2 (or 3: a sync whose records were rejected), and an exit 2 says what is wrong and
where."""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segsync.cli import cli
from segsync.plugins import PluginHost
from segsync.store import Store

BASE = """
[store]
path = "store.duckdb"

[connections.shop]
type = "files"
contacts = "data/contacts.csv"
events = "data/events.jsonl"
push = false

[connections.out]
type = "files"
output = "out/audience"

[packs.engagement]
window = "60d"
[packs.engagement.destinations.out]
tag = true

[groups.tiers]
catch_all = "rest"

[[segments]]
name = "gold"
group = "tiers"
priority = 1
rule = 'attr.tier == "gold" and opens(30d) >= 1'
[segments.destinations.out]
tag = "Gold"

[[segments]]
name = "rest"
group = "tiers"

[consent]
policy = "default"
clock_skew_seconds = 60
"""

# Values a fuzzed key may take: every TOML type, wrong shapes, hostile store paths.
HOSTILE_STORE_PATHS = ["data", "/dev/null", "notes.txt", "cut.duckdb", "", "data/../data"]
_scalar = st.one_of(
    st.integers(-2**63, 2**63 - 1), st.booleans(), st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_STORE_PATHS),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "data").mkdir()
    (root / "data/contacts.csv").write_text("email,tier\nann@example.com,gold\nbo@example.com,\n")
    (root / "data/events.jsonl").write_text(json.dumps(
        {"email": "ann@example.com", "type": "email.opened", "timestamp": "2024-02-01T00:00:00Z", "id": "e1"}) + "\n")
    (root / "notes.txt").write_text("not a database\n")
    Store(root / "good.duckdb").close()
    (root / "cut.duckdb").write_bytes((root / "good.duckdb").read_bytes()[:6000])
    return root


@pytest.fixture(scope="module")
def host():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGSYNC_PLUGINS", "files")  # nothing that could reach a network
        yield PluginHost()


def run_cli(root: Path, host: PluginHost, document: bytes) -> None:
    (root / "segsync.toml").write_bytes(document)
    for command in (["check"], ["sync", "--json"]):
        result = CliRunner().invoke(cli, ["--config", str(root / "segsync.toml"), *command], obj=host)
        shown = f"{command}: {result.output}\n--- segsync.toml ---\n{document[:2000]!r}"
        assert result.exception is None or isinstance(result.exception, SystemExit), shown
        assert "Traceback" not in result.output, shown
        assert result.exit_code in (0, 1, 2, 3), shown  # 3: a sync with rejected records
        if result.exit_code == 2:
            message = result.stderr.strip()
            assert message.startswith("error: "), shown
            # Names the file, the store, or the connection at fault.
            assert any(part in message for part in (
                "segsync.toml", "store", "connection '", "segment '")), shown
    shutil.rmtree(root / "out", ignore_errors=True)


# -- structural mutations of a valid file ----------------------------------------------------

def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += _paths(child, (*prefix, i))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def mutate(doc: dict, rnd: random.Random, value: Any) -> dict:
    value = copy.deepcopy(value)  # never the same object twice: no cycles
    paths = _paths(doc)
    path = rnd.choice(paths)
    parent, key = _parent(doc, path), path[-1]
    kind = rnd.choice(["replace", "delete", "rename", "wrap", "nest", "add", "store"])
    if kind == "replace":
        parent[key] = value
    elif kind == "delete":
        del parent[key]
    elif kind == "rename" and isinstance(key, str):
        chars = list(key)
        del chars[rnd.randrange(len(chars))]
        parent["".join(chars) or "x"] = parent.pop(key)
    elif kind == "wrap":
        parent[key] = [parent[key]]
    elif kind == "nest":
        deep: Any = parent[key]
        for _ in range(rnd.randrange(5, 40)):
            deep = {"k": deep} if rnd.random() < 0.5 else [deep]
        parent[key] = deep
    elif kind == "add":
        target = parent[key] if isinstance(parent[key], dict) else doc
        target[rnd.choice(["rul", "typ", "stor", "polcy", "tag", "zz", "destinations"])] = value
    else:
        doc["store"] = {"path": rnd.choice(HOSTILE_STORE_PATHS)}
    return doc


def to_toml(doc: dict) -> str:
    """Top-level keys as `key = value` lines with inline tables: every document is expressible."""
    return "".join(f"{_key(k)} = {_inline(v)}\n" for k, v in doc.items())


def _key(key: str) -> str:
    return json.dumps(key)


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + "}"


def test_the_base_file_is_valid_and_round_trips(workspace: Path, host: PluginHost) -> None:
    doc = tomllib.loads(BASE)
    assert tomllib.loads(to_toml(doc)) == doc
    (workspace / "segsync.toml").write_text(to_toml(doc))
    result = CliRunner().invoke(cli, ["--config", str(workspace / "segsync.toml"), "sync"], obj=host)
    assert result.exit_code == 0, result.output


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32), mutations=st.integers(1, 3), value=_value)
def test_mutated_valid_files_never_traceback(workspace: Path, host: PluginHost, seed: int,
                                             mutations: int, value: Any) -> None:
    rnd = random.Random(seed)
    doc = tomllib.loads(BASE)
    for _ in range(mutations):
        doc = mutate(doc, rnd, value)
    run_cli(workspace, host, to_toml(doc).encode("utf-8", "surrogatepass"))


# -- TOML-ish text ---------------------------------------------------------------------------

_LINES = [
    "[store]", "[stor]", "[[store]]", 'path = "store.duckdb"', 'path = "data"', 'path = "/dev/null"',
    'path = "notes.txt"', 'path = "cut.duckdb"', "[connections.shop]", "[connections.Shop]",
    '[connections.out]', 'type = "files"', 'type = "nope"', 'output = "out/a"',
    'contacts = "data/contacts.csv"', "push = false", 'pull = "yes"', "[[segments]]",
    'name = "vip"', 'name = "vip"', 'rule = "opens(30d) > 1"', 'rule = "attr.created_at > 5"',
    'rule = "opens(99999999999999999999d) > 1"', 'rule = "1e999 > opens()"', "rul = 1",
    'group = "g"', "priority = 1", "[groups.g]", 'catch_all = "vip"', "[packs.engagement]",
    "[packs.nope]", 'window = "-1d"', "[consent]", 'policy = "strictest"', "clock_skew_seconds = -1",
    "[consent.countries]", 'ca = "casl"', "a = [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
    "[segments.destinations.out]", "tag = true", "x = {", "= 1", "[", "]]", '"unterminated',
]
_documents = st.lists(st.one_of(st.sampled_from(_LINES), st.text(max_size=10)), max_size=14).map(
    lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
_noise = st.binary(max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=_documents, noise=_noise, at=st.floats(0, 1))
def test_toml_ish_documents_never_traceback(workspace: Path, host: PluginHost, document: bytes,
                                            noise: bytes, at: float) -> None:
    cut = int(len(document) * at)
    run_cli(workspace, host, document[:cut] + noise + document[cut:])

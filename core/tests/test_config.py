"""The project file: one pydantic model, every problem named by its TOML path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from segsync.config import ConfigError, consent_settings, load_config
from segsync.plugins import PluginHost
from segsync.store import Store, StoreError

VALID = """
[store]
path = "store.duckdb"

[connections.shop]
type = "files"
contacts = "contacts.csv"

[groups.tiers]
catch_all = "rest"

[[segments]]
name = "vip"
rule = "opens(30d) > 1"

[[segments]]
name = "rest"
group = "tiers"

[consent]
policy = "default"
"""


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "segsync.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str | bytes) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_a_valid_file_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert config.store_path == tmp_path / "store.duckdb"
    assert config.connections["shop"].options == {"contacts": "contacts.csv"}
    assert [s.name for s in config.segments.segments] == ["vip", "rest"]
    assert config.consent.policy == "default"


def test_unknown_tables_and_keys_are_named_with_the_closest_known_one(tmp_path: Path) -> None:
    text = (VALID.replace('rule = "opens(30d) > 1"', 'rul = "opens(30d) > 1"')
            .replace("[store]", "[stor]")
            .replace('catch_all = "rest"', 'catch_al = "rest"')
            .replace('policy = "default"', 'polcy = "default"'))
    # Known tables first (in the model's order), then unknown ones.
    assert problems(tmp_path, text) == [
        "segments.vip.rul: unknown key; did you mean 'rule'?",
        "groups.tiers.catch_al: unknown key; did you mean 'catch_all'?",
        "consent.polcy: unknown key; did you mean 'policy'?",
        "stor: unknown table; did you mean 'store'?",
    ]
    assert problems(tmp_path, VALID + "\n[segments.destinations.shop]\ntga = 'x'\n") == [
        "segments.rest.destinations.shop.tga: unknown key; did you mean 'tag'?"
    ]
    assert problems(tmp_path, VALID + "\nzzz = 1\n") == [
        "consent.zzz: unknown key (known: clock_skew_seconds, connections, countries, policy)"
    ]


def test_the_error_message_has_one_line_per_problem(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("[store]", "[stor]").replace("polic", "polcy"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: 2 problems\n"
        "  consent.polcyy: unknown key; did you mean 'policy'?\n"
        "  stor: unknown table; did you mean 'store'?"
    )


@pytest.mark.parametrize(("text", "expected"), [
    ('store = [1, 2]\n', "store: expected a table, not an array"),
    ('[[store]]\npath = "x"\n', "store: expected a table, not an array"),
    ('segments = { vip = 1 }\n', "segments: expected an array, not a table"),
    ('[connections]\nshop = "files"\n', "connections.shop: expected a table, not a string"),
    ('[connections.shop]\ntype = "files"\npull = "yes"\n',
     "connections.shop.pull: expected true or false, not a string"),
    ('[connections.shop]\npull = true\n', "connections.shop.type: missing (required)"),
    ('[store]\npath = 3\n', "store.path: expected a string, not an integer"),
    ('[consent]\nclock_skew_seconds = true\n',
     "consent.clock_skew_seconds: expected a number, not a boolean"),
    ('[consent.countries]\nca = "casl"\n',
     "consent.countries.ca: not a country code (two capital letters, ISO 3166-1, e.g. CA)"),
    ('[[segments]]\nname = "a"\nrule = "opens(30d) > 1"\n[[segments]]\nrule = "x() > 1"\n',
     "segments[1].name: missing (required)"),
    ('[connections.Shop]\ntype = "files"\n',
     "connections: connection name 'Shop' must be lower-case letters, digits and underscores, "
     "starting with a letter (it becomes part of SEGSYNC_<NAME>_*)"),
])
def test_wrong_shapes_name_the_key_and_what_was_expected(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_destinations_and_consent_connections_must_be_connections(tmp_path: Path) -> None:
    text = VALID + '[consent.connections]\nshpo = "default"\n'
    assert problems(tmp_path, text) == [
        "consent.connections.shpo: 'shpo' is not a connection; did you mean 'shop'?"
    ]
    text = VALID.replace('group = "tiers"', 'group = "tiers"\n[segments.destinations.shpo]\ntag = "x"')
    assert problems(tmp_path, text) == [
        "segments.rest.destinations: names destinations that are not connections: shpo; "
        "did you mean 'shop'?"
    ]


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, b'[store]\npath = "caf\xe9.duckdb"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"


@pytest.mark.parametrize(("text", "where"), [
    ("a = " + "[" * 2000 + "]" * 2000 + "\n", "arrays or inline tables nest deeper than 16 levels"),
    ("a = " + "{b=" * 800 + "1" + "}" * 800 + "\n", "arrays or inline tables nest deeper than 16 levels"),
    ("[" + ".".join(["t"] * 5000) + "]\n", ".".join(["t"] * 17) + ": nests deeper than 16 levels"),
    ("x = " + "[" * 17 + "]" * 17 + "\n", "x" + "[0]" * 16 + ": nests deeper than 16 levels"),
])
def test_deep_nesting_is_refused_before_validation(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {where}"


def test_a_store_path_that_is_a_directory_or_a_device_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    path = write(tmp_path, '[store]\npath = "db"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: store.path: {tmp_path / 'db'} is a directory, not a database file"
    write(tmp_path, '[store]\npath = "/dev/null"\n')
    with pytest.raises(ConfigError, match=r"store.path: /dev/null is not a regular file$"):
        load_config(path)


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b"\0" * 100])
def test_a_store_file_that_is_not_duckdb_is_a_store_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "store.duckdb").write_bytes(content)
    for read_only in (False, True):
        with pytest.raises(StoreError, match="cannot be opened as a DuckDB database .*not a valid DuckDB database file"):
            Store(tmp_path / "store.duckdb", read_only=read_only)
    assert (tmp_path / "store.duckdb").read_bytes() == content  # left as it was


def test_a_truncated_store_is_a_store_error(tmp_path: Path) -> None:
    Store(tmp_path / "good.duckdb").close()
    data = (tmp_path / "good.duckdb").read_bytes()
    (tmp_path / "cut.duckdb").write_bytes(data[:5000])
    with pytest.raises(StoreError, match=r"the store .*cut.duckdb cannot be opened as a DuckDB database"):
        Store(tmp_path / "cut.duckdb")


def test_packs_come_from_the_host_passed_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = PluginHost(load_entry_points=False)

    def no_second_host(*args, **kwargs):
        raise AssertionError("load_config built a PluginHost of its own")

    monkeypatch.setattr(PluginHost, "__init__", no_second_host)
    config = load_config(write(tmp_path, VALID + "[packs.engagement]\n"), host)
    assert "engaged-high" in [s.name for s in config.segments.segments]
    with pytest.raises(TypeError, match="needs the plugin host"):
        load_config(tmp_path / "segsync.toml")


# One case per table of segsync.toml: a misspelt key (or table) is named by its TOML path, with
# the closest known name. The plugin host checks what only plugins know: connector settings and
# packs.
FULL = VALID.replace('catch_all = "rest"', 'catch_all = "rest"\n\n[packs.engagement]\nwindow = "30d"') + """
[segments.destinations.shop]
tag = "rest"

[consent.connections]
shop = "default"

[consent.countries]
CA = "casl"
"""


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("[store]", "[stor]", "stor: unknown table; did you mean 'store'?"),
    ('path = "store.duckdb"', 'pth = "store.duckdb"', "store.pth: unknown key; did you mean 'path'?"),
    ('contacts = "contacts.csv"', 'contats = "contacts.csv"',
     "connections.shop.contats: unknown key; did you mean 'contacts'?"),
    ('rule = "opens', 'rul = "opens', "segments.vip.rul: unknown key; did you mean 'rule'?"),
    ('tag = "rest"', 'tga = "rest"', "segments.rest.destinations.shop.tga: unknown key; did you mean 'tag'?"),
    ('catch_all = "rest"', 'catch_al = "rest"', "groups.tiers.catch_al: unknown key; did you mean 'catch_all'?"),
    ("[packs.engagement]", "[packs.engagment]", "packs.engagment: unknown table; did you mean 'engagement'?"),
    ('window = "30d"', 'windw = "30d"', "packs.engagement.windw: unknown key; did you mean 'window'?"),
    ('policy = "default"', 'polcy = "default"', "consent.polcy: unknown key; did you mean 'policy'?"),
    ('shop = "default"', 'shpo = "default"',
     "consent.connections.shpo: 'shpo' is not a connection; did you mean 'shop'?"),
    ('CA = "casl"', 'ca = "casl"',
     "consent.countries.ca: not a country code (two capital letters, ISO 3166-1, e.g. CA)"),
])
def test_each_table_refuses_an_unknown_key_naming_it_and_the_closest(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    host = PluginHost()
    path = write(tmp_path, FULL)
    assert load_config(path, host).connections["shop"].options == {"contacts": "contacts.csv"}
    assert FULL.count(old) == 1
    write(tmp_path, FULL.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_config(path, host)
    assert str(caught.value) == f"{path}: {expected}"


def test_unknown_keys_far_from_any_known_one_list_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, FULL.replace('contacts = "contacts.csv"', 'contacts = "contacts.csv"\nzzz = 1'))
    with pytest.raises(ConfigError) as caught:
        load_config(path, PluginHost())
    assert str(caught.value) == (
        f"{path}: connections.shop.zzz: unknown key (known: consent, consent_columns, contacts, "
        "contacts_columns, events, events_columns, incremental, output, timestamp_column)"
    )


def test_consent_settings_resolve_policy_names_and_name_an_unknown_one(tmp_path: Path) -> None:
    host = PluginHost(load_entry_points=False)
    config = load_config(write(tmp_path, FULL.replace('CA = "casl"', 'CA = "casl"\nUS = "default"')), host)
    settings = consent_settings(config, host.consent_policies())
    assert (settings.policy.name, settings.clock_skew) == ("default", timedelta(minutes=5))
    assert {k: p.name for k, p in settings.connections.items()} == {"shop": "default"}
    assert {k: p.name for k, p in settings.countries.items()} == {"CA": "casl", "US": "default"}
    assert settings.for_connection("shop").name == "default"
    config = load_config(write(tmp_path, FULL.replace('CA = "casl"', 'CA = "casel"')), host)
    with pytest.raises(ConfigError) as caught:
        consent_settings(config, host.consent_policies())
    assert str(caught.value) == (
        f"{config.path}: consent.countries.CA: no consent policy 'casel' "
        "(installed: casl, default, strict_double_opt_in)"
    )


def test_only_the_cli_builds_a_plugin_host() -> None:
    """Plugins load once per command: whatever needs the host (load_config for [packs] and
    connector settings) is handed the CLI's."""
    core = Path(__file__).resolve().parents[1] / "segsync"
    building = sorted(
        path.relative_to(core).as_posix()
        for path in core.rglob("*.py")
        if "PluginHost(" in path.read_text(encoding="utf-8").replace("class PluginHost(", "")
    )
    # The test kit builds the host of a test's own runs, as a third party's tests would; no
    # command runs it.
    test_kit = [p for p in building if p.startswith("testing/")]
    assert test_kit == ["testing/plugins.py", "testing/project.py"], building
    building = [p for p in building if p not in test_kit]
    assert len(building) == 1, building
    assert building[0] == "cli.py" or building[0].startswith("cli/"), building


def test_the_store_memory_limit_is_read_checked_and_set_on_the_connection(tmp_path: Path) -> None:
    from segsync.store import Store

    assert load_config(write(tmp_path, VALID)).store_memory_limit == "2GB"
    config = load_config(write(tmp_path, VALID.replace('[store]\n', '[store]\nmemory_limit = "512MiB"\n', 1)))
    assert config.store_memory_limit == "512MiB"
    with Store(tmp_path / "s.duckdb", memory_limit=config.store_memory_limit) as store:
        assert store.con.execute("SELECT current_setting('memory_limit')").fetchall() == [("512.0 MiB",)]
    assert problems(tmp_path, VALID.replace('[store]\n', '[store]\nmemory_limit = "lots"\n', 1)) == [
        "store.memory_limit: 'lots' is not an amount of memory (a number and MB, GB, TB, MiB, GiB or TiB, e.g. 2GB)"]

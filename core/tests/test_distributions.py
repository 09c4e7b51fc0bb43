"""Where a plugin's distribution was installed from (PEP 610), and what to install for a
connector type nobody provides."""

from __future__ import annotations

import json

import pytest

from segsync.distributions import InstallSource, install_source, missing_connector


class FakeDistribution:
    def __init__(self, direct_url: str | None) -> None:
        self.direct_url = direct_url

    def read_text(self, filename: str) -> str | None:
        assert filename == "direct_url.json"
        return self.direct_url


@pytest.mark.parametrize("record, expected", [
    ({"url": "file:///home/ann/segsync-acme", "dir_info": {"editable": True}},
     InstallSource("editable", "/home/ann/segsync-acme")),
    ({"url": "file:///home/ann/segsync-acme", "dir_info": {}},
     InstallSource("directory", "/home/ann/segsync-acme")),
    ({"url": "file:///tmp/dist/segsync_acme-0.1.0-py3-none-any.whl", "archive_info": {"hashes": {}}},
     InstallSource("archive", "/tmp/dist/segsync_acme-0.1.0-py3-none-any.whl")),
    ({"url": "https://ann:s3cret-token@git.example.com/acme.git", "vcs_info": {"vcs": "git", "commit_id": "ab12"}},
     InstallSource("vcs", "https://git.example.com/acme.git")),
    ({"url": "file:///home/ann/my%20plugins/acme", "dir_info": {"editable": True}},
     InstallSource("editable", "/home/ann/my plugins/acme")),
])
def test_direct_url_json_tells_where_it_came_from(record: dict, expected: InstallSource) -> None:
    assert install_source(FakeDistribution(json.dumps(record))) == expected


def test_without_direct_url_json_it_came_from_an_index() -> None:
    assert install_source(FakeDistribution(None)) == InstallSource("index")
    assert install_source(None) is None


def test_an_unreadable_direct_url_json_is_said_so() -> None:
    assert install_source(FakeDistribution("{not json")) == InstallSource("unknown (unreadable direct_url.json)")
    assert install_source(FakeDistribution('{"dir_info": {}}')) == InstallSource("unknown (unreadable direct_url.json)")


def test_a_first_party_type_names_its_distribution() -> None:
    assert missing_connector("hubspot", ["files", "mailchimp"]) == (
        "no connector of type 'hubspot' (installed: files, mailchimp); it comes with the "
        "distribution segsync-hubspot: segsync install segsync-hubspot")


def test_another_type_follows_the_naming_convention() -> None:
    assert missing_connector("constant_contact_eu", []) == (
        "no connector of type 'constant_contact_eu' (installed: none); by the naming convention "
        "its distribution is segsync-constant-contact-eu: segsync install segsync-constant-contact-eu")


def test_a_typo_of_an_installed_type_is_pointed_out_first() -> None:
    assert missing_connector("mailchimpp", ["mailchimp", "files"]) == (
        "no connector of type 'mailchimpp' (installed: files, mailchimp); did you mean "
        "'mailchimp'? If not, by the naming convention its distribution is segsync-mailchimpp: "
        "segsync install segsync-mailchimpp")


def test_demo_with_a_type_nobody_provides_says_what_to_install(tmp_path) -> None:
    from click.testing import CliRunner

    from segsync.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo"), "--contacts", "5",
                                      "--with", "acme"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        "Error: --with acme: no connector of type 'acme' (installed: ")
    assert result.output.splitlines()[-1].endswith(
        "); by the naming convention its distribution is segsync-acme: segsync install segsync-acme")

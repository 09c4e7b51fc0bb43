"""Connectors call the same thing by the same name (timeout, max_attempts, segment_mode,
segment_attribute, attribute_mapping); the old names keep working, and `segsync check` notes them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError
from segsync_brevo import BrevoSettings
from segsync_brevo.emulator import BrevoEmulator
from segsync_mailchimp import MailchimpSettings
from segsync_mailchimp.emulator import MailchimpEmulator

from segsync.cli import cli

MC_KEY = "0123456789abcdef0123456789abcdef-us1"
BREVO_KEY = "brevo-key-123456"


def test_old_mailchimp_names_and_values_are_read_as_the_new_ones() -> None:
    old = MailchimpSettings(api_key=MC_KEY, list_id="l1", merge_fields={"company": "COMPANY"},
                            segment_merge_field="SEGS", segments_as="merge_field")
    new = MailchimpSettings(api_key=MC_KEY, list_id="l1", attribute_mapping={"company": "COMPANY"},
                            segment_attribute="SEGS", segment_mode="attribute")
    assert old == new
    assert (new.attribute_mapping, new.segment_attribute, new.segment_mode) == ({"company": "COMPANY"}, "SEGS", "attribute")
    assert MailchimpSettings.deprecations({"merge_fields": {}, "segments_as": "merge_field", "list_id": "l1"}) == [
        "setting 'segments_as' is deprecated: call it 'segment_mode'",
        "setting 'merge_fields' is deprecated: call it 'attribute_mapping'",
        "segments_as = 'merge_field' is deprecated: use 'attribute'"]
    assert MailchimpSettings.deprecations({"attribute_mapping": {}, "segment_mode": "tags"}) == []
    assert MailchimpSettings.deprecations({"segment_mode": "merge_field"}) == [
        "segment_mode = 'merge_field' is deprecated: use 'attribute'"]


def test_old_brevo_names_are_read_as_the_new_ones() -> None:
    old = BrevoSettings(api_key=SecretStr(BREVO_KEY), timeout_seconds=7.5)
    assert old.timeout == 7.5
    assert old == BrevoSettings(api_key=SecretStr(BREVO_KEY), timeout=7.5)
    assert BrevoSettings.deprecations({"timeout_seconds": 1, "segment_mode": "lists"}) == [
        "setting 'timeout_seconds' is deprecated: call it 'timeout'"]


def test_an_old_and_a_new_name_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="'timeout_seconds' is the old name of 'timeout': give only 'timeout'"):
        BrevoSettings(api_key=SecretStr(BREVO_KEY), timeout_seconds=5, timeout=6)


def test_check_accepts_the_old_names_and_notes_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MailchimpEmulator(api_key=MC_KEY) as mc, BrevoEmulator(api_key=BREVO_KEY) as brevo:
        mc.state.create_audience("aud0001")
        (tmp_path / "segsync.toml").write_text(textwrap.dedent(f"""
            [store]
            path = "store.duckdb"

            [connections.mc]
            type = "mailchimp"
            list_id = "aud0001"
            host = "{mc.url}"
            merge_fields = {{ first_name = "FNAME" }}
            segments_as = "merge_field"
            segment_merge_field = "FNAME"

            [connections.brevo]
            type = "brevo"
            host = "{brevo.url}"
            timeout_seconds = 5.0
            attribute_mapping = {{}}
        """))
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("SEGSYNC_PLUGINS", "files,mailchimp,brevo")
        monkeypatch.setenv("SEGSYNC_MC_API_KEY", MC_KEY)
        monkeypatch.setenv("SEGSYNC_BREVO_API_KEY", BREVO_KEY)
        checked = CliRunner().invoke(cli, ["check", "mc"])
        assert checked.exit_code == 0, checked.output
        assert checked.output == (
            "✓ mc (mailchimp)\n"
            "    note: setting 'segments_as' is deprecated: call it 'segment_mode'\n"
            "    note: setting 'merge_fields' is deprecated: call it 'attribute_mapping'\n"
            "    note: setting 'segment_merge_field' is deprecated: call it 'segment_attribute'\n"
            "    note: segments_as = 'merge_field' is deprecated: use 'attribute'\n")
        checked = CliRunner().invoke(cli, ["check", "brevo"])
        assert "    note: setting 'timeout_seconds' is deprecated: call it 'timeout'\n" in checked.output
        assert "unknown setting" not in checked.output

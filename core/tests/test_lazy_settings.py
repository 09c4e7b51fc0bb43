"""``lazy_settings``: a connector names its settings class; it is imported on first access."""

from __future__ import annotations

import sys

import pytest

import segsync
import segsync.connector
from segsync import Capability, Connector, lazy_settings


def test_settings_named_by_module_and_class_is_the_class_itself() -> None:
    from segsync_files import FilesConnector
    from segsync_files.settings import FilesSettings

    assert FilesConnector.Settings is FilesSettings
    assert FilesConnector.__dict__["Settings"].target == "segsync_files.settings:FilesSettings"
    built = FilesConnector.Settings(output="out/list")
    assert isinstance(built, segsync.ConnectorSettings) and built.output == "out/list"


def test_the_module_is_imported_on_first_access_only(tmp_path, monkeypatch) -> None:
    (tmp_path / "late_settings.py").write_text(
        "from segsync import ConnectorSettings\n"
        "class LateSettings(ConnectorSettings):\n"
        "    colour: str = 'blue'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    class Late(Connector):
        type_name = "late"
        capabilities = frozenset({Capability.WRITE_CONTACTS})
        Settings = lazy_settings("late_settings:LateSettings")

    assert "late_settings" not in sys.modules
    assert Late.Settings().colour == "blue"
    assert "late_settings" in sys.modules
    assert Late("c", Late.Settings(), tmp_path).Settings is Late.Settings  # instances see the class too
    monkeypatch.delitem(sys.modules, "late_settings")


def test_a_target_without_a_class_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match=r"lazy_settings needs 'module:Class', got 'late_settings'"):
        lazy_settings("late_settings")


def test_a_missing_module_fails_when_the_settings_are_first_needed() -> None:
    class Broken(Connector):
        type_name = "broken"
        Settings = lazy_settings("no_such_module_here:Settings")

    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        Broken.Settings


def test_connector_settings_is_still_importable_from_the_connector_module() -> None:
    assert segsync.connector.ConnectorSettings is segsync.ConnectorSettings
    assert Connector.Settings is segsync.ConnectorSettings

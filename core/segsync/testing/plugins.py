"""What the installed plugins register, loaded the way segsync loads them (entry points)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segsync import Connector


def plugin_load_failures() -> list[str]:
    """The error of each installed plugin that failed to load (what ``segsync plugins`` shows)."""
    from segsync.plugins import PluginHost

    return [failure.message() for failure in PluginHost().failures]


def registered_connectors(plugin: str) -> dict[str, type[Connector]]:
    """The connector classes the installed plugin ``plugin`` (its entry point's name) registers,
    by ``type_name``. Raises ``LookupError`` when no such plugin loaded, naming its load error."""
    from segsync.plugins import PluginHost

    host = PluginHost()
    failure = next((f for f in host.failures if f.name == plugin), None)
    if failure is not None:
        raise LookupError(failure.message())
    if host.pm.get_plugin(plugin) is None:
        raise LookupError(f"no plugin {plugin!r} is installed (entry point group 'segsync')")
    return {name: cls for name, cls in host.connector_types().items() if host.connector_plugin(name) == plugin}
